"""Task specs: shipped YAMLs load, invalid specs fail naming the field, custom tasks need no code."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ade_distill.errors import ConfigError
from ade_distill.tasks import BUILTIN_TASKS, TaskSpec, load_task

GENE_DISEASE = """
name: gene-disease
description: Genes whose variants the text associates with a disease.
unit: document
entities:
  - {label: GENE, key: gene, definition: A gene or gene product.}
  - {label: DISEASE, key: disease, definition: A disease or phenotype.}
relations:
  - {label: ASSOCIATED, head: GENE, tail: DISEASE, definition: The gene is associated with the disease.}
prompt_template: re.v1
demonstrations:
  - text: "BRCA1 mutations raise the risk of breast cancer."
    relations:
      - {gene: BRCA1, disease: breast cancer}
"""


def _base() -> dict:
    return yaml.safe_load(GENE_DISEASE)


def _write(tmp_path: Path, obj: object, name: str = "task.yaml") -> Path:
    p = tmp_path / name
    p.write_text(obj if isinstance(obj, str) else yaml.safe_dump(obj), encoding="utf-8")
    return p


def test_shipped_ade_spec() -> None:
    t = load_task("ade")
    assert (t.name, t.unit, t.primary.label) == ("ade", "sentence", "ADE")
    assert (t.head_label, t.tail_label) == ("DRUG", "ADE")
    assert t.entity_labels == ("DRUG", "ADE") and t.relation_labels == ("ADE",)
    assert (t.entity("DRUG").key, t.entity("ADE").key) == ("drug", "ade")
    assert t.prompt_template == "re.v1" and t.instructions and len(t.demonstrations) == 3
    assert any(not d.relations for d in t.demonstrations)  # a negative demonstration
    with pytest.raises(KeyError):
        t.entity("GENE")


def test_shipped_cdr_spec() -> None:
    t = load_task("cdr")
    assert (t.name, t.unit, t.head_label, t.tail_label) == ("cdr", "document", "CHEMICAL", "DISEASE")
    assert [e.key for e in t.entities] == ["chemical", "disease"] and t.relation_labels == ("CID",)


@pytest.mark.parametrize("name", BUILTIN_TASKS)
def test_shipped_specs_round_trip_through_yaml(tmp_path: Path, name: str) -> None:
    t = load_task(name)
    assert load_task(_write(tmp_path, t.to_yaml())) == t
    assert load_task(str(Path(__file__).parents[1] / "ade_distill" / "tasks" / f"{name}.yaml")) == t


def test_custom_gene_disease_task_needs_no_code(tmp_path: Path) -> None:
    t = load_task(_write(tmp_path, GENE_DISEASE))
    assert isinstance(t, TaskSpec)
    assert (t.name, t.head_label, t.tail_label, t.relation_labels) == ("gene-disease", "GENE", "DISEASE",
                                                                        ("ASSOCIATED",))
    assert t.demonstrations[0].relations == ({"gene": "BRCA1", "disease": "breast cancer"},)
    assert t.instructions == ""  # defaults apply


def test_unknown_name_or_missing_file() -> None:
    with pytest.raises(ConfigError, match=r"unknown task 'nope': expected one of \['ade', 'cdr', 'drug_dose'\]"):
        load_task("nope")


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda d: d.pop("name"), "name: Field required"),
        (lambda d: d.update(name="has space"), "name: String should match pattern"),
        (lambda d: d.update(unit="paragraph"), "unit: Input should be 'sentence' or 'document'"),
        (lambda d: d.update(entities=[]), "entities: Tuple should have at least 1 item"),
        (lambda d: d.update(relations=[]), "relations: Tuple should have at least 1 item"),
        (lambda d: d["entities"][0].pop("key"), "entities.0.key: Field required"),
        (lambda d: d["entities"][1].update(definition=""), "entities.1.definition: String should have at least 1"),
        (lambda d: d["entities"][0].update(colour="red"), "entities.0.colour: Extra inputs are not permitted"),
        (lambda d: d.update(prompt="x"), "prompt: Extra inputs are not permitted"),
        (lambda d: d["entities"][1].update(label="GENE"), "entity labels must be unique, got ['GENE', 'GENE']"),
        (lambda d: d["entities"][1].update(key="gene"), "entity output keys must be unique"),
        (lambda d: d["relations"][0].update(tail="PHENOTYPE"),
         "relation 'ASSOCIATED' tail 'PHENOTYPE' is not an entity label ['GENE', 'DISEASE']"),
        (lambda d: d["relations"].append(dict(d["relations"][0])), "relation labels must be unique"),
        (lambda d: d["demonstrations"][0]["relations"][0].pop("disease"),
         "demonstrations.0: relation keys ['gene'] != ['disease', 'gene']"),
    ],
)
def test_invalid_spec_names_the_field(tmp_path: Path, mutate, fragment: str) -> None:  # type: ignore[no-untyped-def]
    d = _base()
    mutate(d)
    p = _write(tmp_path, d)
    with pytest.raises(ConfigError) as info:
        load_task(p)
    msg = str(info.value)
    assert msg.startswith(f"{p}: invalid task spec: ")
    assert fragment in msg
    assert "Value error," not in msg


def test_demonstration_string_absent_from_its_text_is_rejected(tmp_path: Path) -> None:
    d = _base()
    d["demonstrations"][0]["relations"][0]["disease"] = "ovarian cancer"
    with pytest.raises(ConfigError, match=r"demonstrations\.0: disease 'ovarian cancer' does not occur in its text"):
        load_task(_write(tmp_path, d))
    d = _base()
    d["demonstrations"].append({"text": "BRCA1 variants cause ovarian cancer.",
                                "relations": [{"gene": "brca1", "disease": "ovarian cancer"}]})
    with pytest.raises(ConfigError, match=r"demonstrations\.1: gene 'brca1' does not occur"):  # case matters
        load_task(_write(tmp_path, d))


def test_demonstration_empty_string_is_rejected(tmp_path: Path) -> None:
    # regression: "" is a substring of every text, so it passed the occurrence check
    d = _base()
    d["demonstrations"][0]["relations"][0]["gene"] = ""
    with pytest.raises(ConfigError, match=r"demonstrations\.0: 'gene' is empty"):
        load_task(_write(tmp_path, d))


def test_demonstrations_may_use_a_secondary_relation_type(tmp_path: Path) -> None:
    d = _base()
    d["entities"].append({"label": "DRUG", "key": "drug", "definition": "A drug."})
    d["relations"].append({"label": "TREATS", "head": "DRUG", "tail": "DISEASE", "definition": "Treats."})
    d["demonstrations"].append({"text": "Tamoxifen treats breast cancer.",
                                "relations": [{"drug": "Tamoxifen", "disease": "breast cancer"}]})
    t = load_task(_write(tmp_path, d))
    assert t.primary.label == "ASSOCIATED" and t.relation_labels == ("ASSOCIATED", "TREATS")


def test_invalid_yaml_and_non_mapping_and_bad_encoding(tmp_path: Path) -> None:
    p = _write(tmp_path, "name: [unclosed\n", "bad.yaml")
    with pytest.raises(ConfigError, match=rf"^{p}: not valid YAML"):
        load_task(p)
    p = _write(tmp_path, "- a\n- b\n", "list.yaml")
    with pytest.raises(ConfigError, match=rf"^{p}: invalid task spec: expected a mapping .* found list"):
        load_task(p)
    p = _write(tmp_path, "", "empty.yaml")
    with pytest.raises(ConfigError, match="found NoneType"):
        load_task(p)
    p = tmp_path / "latin1.yaml"
    p.write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=rf"^{p}: cannot read the task file"):
        load_task(p)
