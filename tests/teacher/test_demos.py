import pytest

from ade_distill.errors import ConfigError
from ade_distill.records import AlignmentStatus, Example, Relation, Span
from ade_distill.teacher.demos import DemoSelector, example_to_demo


def _ex(i, text, drug, ade):
    d, a = text.index(drug), text.index(ade)
    return Example(id=f"p{i}", text=text, spans=(Span(id="T1", label="DRUG", start=d, end=d + len(drug), text=drug),
                                                 Span(id="T2", label="ADE", start=a, end=a + len(ade), text=ade)),
                   relations=(Relation(head="T1", tail="T2", label="ADE"),))


POOL = [
    _ex(0, "Amiodarone caused pulmonary fibrosis.", "Amiodarone", "pulmonary fibrosis"),
    _ex(1, "Severe rash developed after lamotrigine.", "lamotrigine", "rash"),
    _ex(2, "Cisplatin induced ototoxicity in a child.", "Cisplatin", "ototoxicity"),
    _ex(3, "Lithium toxicity presented as tremor.", "Lithium", "tremor"),
]


def test_invalid_pool_examples_rejected_and_counted(ade_task):
    bad = Example(id="b", text="Drug X caused Y.", spans=(Span(id="T1", label="DRUG", text="aspirin",
                                                                 alignment=AlignmentStatus.UNALIGNED),
                                                            Span(id="T2", label="ADE", start=14, end=15, text="Y")),
                  relations=(Relation(head="T1", tail="T2", label="ADE"),))
    assert example_to_demo(ade_task, bad) is None
    sel = DemoSelector(ade_task, [*POOL, bad], 2, strategy="random", seed=1)
    assert sel.rejected == 1 and len(sel.pool) == 4
    with pytest.raises(ConfigError, match="valid pool"):
        DemoSelector(ade_task, [bad], 1)


def test_random_is_seeded_and_never_the_input_itself(ade_task):
    a = DemoSelector(ade_task, POOL, 2, seed=3).select_many(["x", POOL[0].text])
    b = DemoSelector(ade_task, POOL, 2, seed=3).select_many(["x", POOL[0].text])
    assert a == b and len(a[1]) == 2 and all(d.text != POOL[0].text for d in a[1])


def test_nearest_by_embedding(ade_task):
    sel = DemoSelector(ade_task, POOL, 1, strategy="nearest")
    (demos,) = sel.select_many(["A generalized rash appeared after carbamazepine."])
    assert demos[0].text == POOL[1].text
