"""Writes notebooks/walkthrough.ipynb (kept as code so the notebook stays reviewable in diffs).

    python notebooks/build_walkthrough.py [OUT.ipynb]            # cells only
    python notebooks/build_walkthrough.py --execute [OUT.ipynb]  # cells, then run on the tiny budget: the committed file

The committed notebook is the executed one (``--execute``: ADE_NOTEBOOK_BUDGET=tiny, the budget of
tests/test_notebook.py, in a temporary work folder, no timing metadata), so a reader browsing the repository sees
its tables and figure; a few minutes on 2 CPU cores.
"""

import os
import sys
import tempfile
from pathlib import Path

import nbformat as nbf

cells = [
    nbf.v4.new_markdown_cell("""# ade-distill walkthrough: distil a recorded GPT-4 teacher into a MiniLM student

This notebook runs the offline demo end to end with the library API, one stage per cell:

1. **data** — the ADE corpus v2 (Gurulingappa et al. 2012) in the common record schema, and folds grouped by PubMed ID;
2. **teacher** — the recorded GPT-4 (gpt-4-1106-preview, JSON mode) responses replayed, parsed and grounded to
   character offsets (`replay:` teacher — no network, no cost);
3. **silver** — the teacher's grounded labels on the *training* folds' text (gold labels never used), with the
   protocol guard against test-fold text;
4. **student** — the drug-conditioned extractor of Gu et al. 2023 on the MiniLM-L6 encoder, trained on silver,
   and the same student trained on gold (supervised);
5. **evaluation** — teacher vs student vs supervised on the held-out fold, strict / lenient / text matching with
   bootstrap confidence intervals.

`BUDGET` controls the size: `"demo"` (default) uses one full fold of the 10-fold protocol; the test suite runs
it with `ADE_NOTEBOOK_BUDGET=tiny` (a few dozen documents, one short epoch) to check that every cell works.
**The outputs saved in this file come from that tiny budget** (`python notebooks/build_walkthrough.py --execute`),
so their scores say nothing about the method; run the notebook yourself for the `demo` budget's numbers.
For the full experiment use `ade-distill reproduce configs/ade_gpt4_replay.yaml`."""),
    nbf.v4.new_code_cell("""import os, json, time, warnings
from pathlib import Path

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm in a kernel without ipywidgets

os.environ.setdefault("HF_HUB_OFFLINE", "1")
BUDGET = os.environ.get("ADE_NOTEBOOK_BUDGET", "demo")
WORK = Path(os.environ.get("ADE_NOTEBOOK_WORKDIR", "../runs/notebook")).resolve()
WORK.mkdir(parents=True, exist_ok=True)
print("budget:", BUDGET)"""),
    nbf.v4.new_markdown_cell("## 1. Data: gold records and folds"),
    nbf.v4.new_code_cell("""from ade_distill.data.corpora import load_corpus
from ade_distill.data.folds import make_folds
from ade_distill.tasks import load_task

task = load_task("ade")
gold = load_corpus("ade")                      # 4,272 sentences with relations + 16,688 ADE-NEG sentences
if BUDGET == "tiny":                           # a few dozen PubMed IDs, enough to exercise every stage
    keep = sorted({e.meta["pmid"] for e in gold if e.relations})[:40]
    gold = [e for e in gold if e.meta["pmid"] in set(keep)]
folds = make_folds(gold, k=10 if BUDGET != "tiny" else 4, seed=13, corpus="ade")
TEST_FOLD = 0
test = [e for e in gold if e.id in folds.test_ids(TEST_FOLD) and e.relations]   # the paper's protocol
train_ids = folds.train_ids(TEST_FOLD)
print(f"{len(gold):,} examples, {len(test):,} test sentences with relations in fold {TEST_FOLD}")
ex = next(e for e in gold if len(e.relations) > 1)
print(ex.text)
for s in ex.spans:
    print(" ", s.label, repr(s.text), s.start, s.end)"""),
    nbf.v4.new_markdown_cell("""## 2. Teacher: replay the recorded GPT-4 run

The replayed responses go through exactly the same parsing and grounding as live API output. Refusals
(`content_filter`) and truncations are kept as such — never as "no relations"."""),
    nbf.v4.new_code_cell("""from ade_distill.experiments.protocol import strip_labels
from ade_distill.paths import data_dir
from ade_distill.teacher.label import label_examples

recording = data_dir() / "teacher_outputs" / "ade_gpt-4-1106-preview_json.jsonl"
positives = strip_labels([e for e in gold if e.relations])       # the recording covers these sentences
summary = label_examples(task, f"replay:{recording}", positives, WORK / "teacher.jsonl",
                         cache_path=WORK / "teacher_cache.sqlite", progress=False)
from ade_distill.records import read_examples
teacher_records = list(read_examples(WORK / "teacher.jsonl"))
print(json.dumps({k: summary.to_dict()[k] for k in ("records", "status")}, indent=1))"""),
    nbf.v4.new_markdown_cell("## 3. Silver: the teacher's grounded labels on the training folds only"),
    nbf.v4.new_code_cell("""from ade_distill.experiments.combine import single_teacher
from ade_distill.experiments.protocol import filter_silver

train_records = [r for r in teacher_records if any(s in train_ids for s in r.meta["source_ids"])]
train_records, guard = filter_silver(train_records, test)
silver, stats = single_teacher(train_records)
print("protocol guard:", guard.as_dict())
print("silver:", stats.as_dict())"""),
    nbf.v4.new_markdown_cell("""## 4. Students: distilled (silver) and supervised (gold)

Same architecture, same sentences, different labels. Both train on CPU in a few minutes at the `demo`
budget."""),
    nbf.v4.new_code_cell("""from ade_distill.student.model import StudentExtractor
from ade_distill.student.train import TrainConfig, train_student, split_dev

if BUDGET == "tiny":
    cfg = TrainConfig(epochs=1, batch_size=8, max_length=64, lr=1e-4, head_lr=1e-3, patience=0, threads=2)
else:
    cfg = TrainConfig(epochs=3, batch_size=16, max_length=128, lr=1e-4, head_lr=1e-3, patience=1, threads=2)
gold_train = [e for e in gold if e.id in train_ids and e.relations]
models = {}
for name, data in (("student", silver), ("supervised", gold_train)):
    tr, dev = split_dev(data, 0.1, seed=13)
    t = time.time()
    train_student(task, tr, dev, cfg, WORK / name)
    models[name] = StudentExtractor.from_pretrained(WORK / name)
    print(f"{name}: trained on {len(tr):,} sentences in {time.time() - t:.0f} s")"""),
    nbf.v4.new_markdown_cell("## 5. Evaluation: teacher vs student vs supervised on the held-out fold"),
    nbf.v4.new_code_cell("""from ade_distill.evaluation import score_systems
from ade_distill.records import Example

by_text = {r.text: r for r in teacher_records}
def teacher_pred(g):
    r = by_text[g.text]
    usable = r.meta["status"] in ("ok", "truncated")
    return Example(id=g.id, text=g.text, spans=r.spans if usable else (), relations=r.relations if usable else ())

systems = {"teacher (GPT-4)": [teacher_pred(g) for g in test]}
for name, model in models.items():
    systems[name] = model.predict(strip_labels(test))
report = score_systems(test, systems, modes=("strict", "lenient", "text"), n_boot=200 if BUDGET == "tiny" else 1000)
scores = report.to_dict()
for s in systems:
    print(f"{s:>16}: " + "  ".join(
        f"{m} F1 {100 * scores['results'][s][m]['relation']['micro']['f1']:.1f}" for m in ("strict", "lenient", "text")))"""),
    nbf.v4.new_code_cell("""import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
from IPython.display import Image, display
from ade_distill.reports.figures import f1_by_system

png = f1_by_system(scores, list(systems), ["strict", "lenient", "text"], WORK / "f1_by_system.png")
display(Image(filename=str(png)))"""),
    nbf.v4.new_markdown_cell("""### Where does the student go wrong?

The error analysis groups mistakes into boundary errors, label errors, misses, spurious predictions, wrong
pairings and ungrounded strings."""),
    nbf.v4.new_code_cell("""print(report.to_markdown()[:3000])"""),
]
nb = nbf.v4.new_notebook(cells=cells, metadata={
    "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
    "language_info": {"name": "python"},
})
args = [a for a in sys.argv[1:] if a != "--execute"]
here = Path(__file__).resolve().parent
out = Path(args[0]) if args else here / "walkthrough.ipynb"
if "--execute" in sys.argv[1:]:
    from nbclient import NotebookClient

    with tempfile.TemporaryDirectory() as work:
        os.environ.update(ADE_NOTEBOOK_BUDGET="tiny", ADE_NOTEBOOK_WORKDIR=work)  # inherited by the kernel
        NotebookClient(nb, timeout=900, kernel_name="python3", record_timing=False,
                       resources={"metadata": {"path": str(here)}}).execute()
nbf.write(nb, out)
print(f"wrote {out}")
