"""Collect the arms' results into docs/results/scratch-arms/: knowledge, probes, AND neurons,
loss curves and figures.

    .venv/bin/python docs/results/scratch-arms/analyse.py [WORK=/tmp/scratch-arms]

Reads the run folders `run.sh` made under WORK (single, multi, multi-relu and their -qa
fine-tunes and -knowledge checks).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from factscope.load import load_model
from factscope.report.scratch_plots import arms_bar, loss_curve, neuron_and_plot
from factscope.scratch.anatomy import CONDITIONS, and_neurons, probe_attribute
from factscope.scratch.corpus import Person

HERE = Path(__file__).parent
PAPER = {"single": 0.097, "multi": 0.966}  # Allen-Zhu & Li 3.1: bioS single vs multi5+permute


def people_of(corpus: Path) -> list[Person]:
    lines = (corpus / "people.jsonl").read_text().splitlines()
    return [Person(**json.loads(line)) for line in lines]


def main(work: Path) -> None:
    summary: dict[str, object] = {"work": str(work), "paper_heldout": PAPER}
    arms = {}
    for arm in ("single", "multi", "multi-relu"):
        for earlier in sorted(work.glob(f"{arm}-knowledge-*/knowledge.json")):
            summary[f"knowledge_{arm}_{earlier.parent.name.rsplit('-', 1)[1]}"] = json.loads(
                earlier.read_text()
            )
        know = work / f"{arm}-knowledge" / "knowledge.json"
        if know.is_file():
            data = json.loads(know.read_text())
            arms[arm] = {split: acc["all"] for split, acc in data["accuracy"].items()}
            summary[f"knowledge_{arm}"] = data
        for run in (arm, f"{arm}-qa"):
            history = work / run / "history.json"
            if history.is_file():
                result = json.loads((work / run / "result.json").read_text())
                summary[f"train_{run}"] = result
                fig = loss_curve(
                    json.loads(history.read_text()),
                    title=f"{run}: {result['parameters']:,} parameters",
                )
                fig.savefig(HERE / f"loss_{run}.png", dpi=110, bbox_inches="tight")
    if arms:
        fig = arms_bar(arms, PAPER)  # multi-relu: the multi arm with a plain ReLU MLP
        fig.savefig(HERE / "arms.png", dpi=110, bbox_inches="tight")

    probes = {}
    for arm in ("single", "multi", "multi-relu"):
        model = work / f"{arm}-qa" / "model"
        if model.exists():
            lm = load_model(model)
            people = people_of(work / f"{arm.split('-')[0]}-corpus")
            probes[arm] = {
                a: probe_attribute(lm, people, a).to_dict() for a in ("sport", "birth_city")
            }
    summary["probes"] = probes

    neurons = {}
    saved = work / "and.json"  # the same and_neurons results, if computed beforehand
    if saved.is_file():
        neurons = json.loads(saved.read_text())
    for arm in ("multi", "multi-relu"):
        if arm in neurons:
            continue
        model = work / arm / "model"
        if model.exists():
            lm = load_model(model)
            people = people_of(work / "multi-corpus")[:150]
            neurons[arm] = and_neurons(lm, people).to_dict()
    summary["and_neurons"] = neurons
    if neurons:
        fig = neuron_and_plot(
            {f"{k}: {v['mlp']}, layer {v['example_layer']}": v["example_rates"] or [[0.0] * 4]
             for k, v in neurons.items()},
            CONDITIONS,
            "|activation| / firing threshold, on fresh replacement names",
        )  # fmt: skip
        fig.savefig(HERE / "and_neurons.png", dpi=110, bbox_inches="tight")
    (HERE / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps({"arms": arms, "probes": {
        k: {a: [round(x, 3) for x in p["accuracy"]] for a, p in v.items()}
        for k, v in probes.items()
    }, "and": {k: (v["and_per_person"], v["people_with_and"]) for k, v in neurons.items()}},
        indent=1))  # fmt: skip


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/scratch-arms"))
