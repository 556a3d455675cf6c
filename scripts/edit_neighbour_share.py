"""How much of a batch edit other subjects' keys receive, per layer, on gemma-3-270m.

Usage: python scripts/edit_neighbour_share.py [RUN_DIR ...]
       (default: docs/results/edit-eval/memit-athlete and .../alphaedit-athlete)

A MEMIT / AlphaEdit batch adds ΔW_l to each edit layer's down_proj; a prompt whose key (the
down_proj input at its subject's last token) is k then has its MLP output moved by ΔW_l k
before the post-MLP norm. For every edited fact i, with k_i its own bare-prompt key, the share
another subject receives at layer l is ‖ΔW_l k‖ / ‖ΔW_l k_i‖ — 1 means "moved as much as the
edited subject itself". A batch moves many keys at once, in many directions, so the script also
records the part of that change along the edited subject's own, (ΔW_l k · ΔW_l k_i) / ‖ΔW_l k_i‖²
("along"): 1 means the other subject is pushed to the same new answer as hard as the edited
one. Three kinds of other subject, none of them edited in the run:

- neighbours: the fact's own neighbour prompts in the run (known athletes of the same sport);
- other sport: the known athletes of another sport that the run left unedited;
- landmarks: "{landmark} is located in the city of" for the landmarks of
  scripts/edit_landmarks.py (another relation altogether).

The edited weights come from RUN_DIR/edited.pt (`edit-eval` writes it); the facts and
neighbours are recomputed as `edit-eval` picks them (`known_facts_to_edit`). Written to
docs/results/edit-ns/result.json: per run and layer the median and quartiles of each kind's
shares over facts, and each fact's mean share of its neighbours at the last layer beside
whether its neighbours kept their answer (NS).
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
KNOW = ROOT / "docs/results/study-know/athlete_sport.json"
OUT = ROOT / "docs/results/edit-ns/result.json"
sys.path.insert(0, str(Path(__file__).parent))
from edit_landmarks import LANDMARKS, PROMPT  # noqa: E402


def quartiles(values: list[float]) -> dict[str, float]:
    q1, median, q3 = statistics.quantiles(values, n=4) if len(values) > 1 else values * 3
    return {"q1": round(q1, 3), "median": round(median, 3), "q3": round(q3, 3), "n": len(values)}


def main(argv: list[str]) -> int:
    from factscope.edit.evaluate import known_facts_to_edit
    from factscope.edit.handle import mlp_of
    from factscope.edit.request import answer_ids, build_batch, keys_at
    from factscope.load import load_model
    from factscope.registry import DEFAULT_MODEL
    from factscope.study.datasets import load_dataset

    runs = [Path(a) for a in argv] or [
        ROOT / "docs/results/edit-eval/memit-athlete",
        ROOT / "docs/results/edit-eval/alphaedit-athlete",
    ]
    lm = load_model(DEFAULT_MODEL)
    known_ids = set(json.loads(KNOW.read_text())["known_ids"])
    known = [r for r in load_dataset("athlete_sport").records if r.id in known_ids]
    by_prompt = {r.prompt: r for r in known}

    def key(prompt: str, subject: str, layer: int) -> torch.Tensor:
        batch = build_batch(
            lm.tokenizer, ["{}"], prompt, subject, answer_ids(lm.tokenizer, prompt, " x")
        )
        return keys_at(lm.model, batch, layer)[0].double()

    result: dict[str, Any] = {"model": lm.name, "runs": {}}
    for run in runs:
        saved = torch.load(run / "edited.pt", weights_only=False)
        edited_ids = list(saved["done"])
        facts = known_facts_to_edit(known, len(edited_ids), together=True)
        assert [r.id for r in facts] == edited_ids, f"{run}: facts differ from edit-eval's"
        edited = set(edited_ids)
        bystanders = [r for r in known if r.id not in edited]
        posts = {
            json.loads(line)["id"]: json.loads(line)["post"]
            for line in (run / "post/records.jsonl").read_text().splitlines()
        }
        layers = sorted(saved["weights"])
        per_layer: dict[str, Any] = {}
        last_layer_rows = []
        for layer in layers:
            original = mlp_of(lm.model, layer).down_proj.weight.detach().double()
            delta = saved["weights"][layer].double() - original  # (D, F)
            with torch.no_grad():
                keys = {r.id: key(r.prompt, r.subject, layer) for r in known}
                landmark_keys = [key(PROMPT.format(s), s, layer) for s, _ in LANDMARKS]
            change = {i: delta @ k for i, k in keys.items()}
            landmark_change = [delta @ k for k in landmark_keys]
            kinds = ("neighbours", "other sport", "landmarks")
            shares: dict[str, list[float]] = {k: [] for k in kinds}
            along: dict[str, list[float]] = {k: [] for k in kinds}
            for fact in facts:
                own = change[fact.id]
                neighbour_ids = [by_prompt[p].id for p in fact.neighbourhood]
                other = [r.id for r in bystanders if r.answer != fact.answer]
                groups = {
                    "neighbours": [change[n] for n in neighbour_ids],
                    "other sport": [change[o] for o in other],
                    "landmarks": landmark_change,
                }
                for kind, changes in groups.items():
                    shares[kind].append(
                        statistics.fmean(float(c.norm() / own.norm()) for c in changes)
                    )
                    along[kind].append(
                        statistics.fmean(float(c @ own / (own @ own)) for c in changes)
                    )
                mean_share = shares["neighbours"][-1]
                if layer == layers[-1]:
                    last_layer_rows.append({"id": fact.id, "subject": fact.subject,
                                            "neighbour_share": round(mean_share, 3),
                                            "neighbour_along": round(along["neighbours"][-1], 3),
                                            "NS": posts[fact.id]["neighbourhood"]})  # fmt: skip
            per_layer[str(layer)] = {
                **{kind: quartiles(v) for kind, v in shares.items()},
                **{f"{kind} along": quartiles(v) for kind, v in along.items()},
            }
            print(f"{run.name} layer {layer}: "
                  + ", ".join(f"{k} {q['median']:.2f} [{q['q1']:.2f}, {q['q3']:.2f}]"
                              for k, q in per_layer[str(layer)].items()), flush=True)  # fmt: skip
        kept = [r["neighbour_share"] for r in last_layer_rows if r["NS"] == 1.0]
        lost = [r["neighbour_share"] for r in last_layer_rows if r["NS"] == 0.0]
        result["runs"][run.name] = {
            "facts": len(facts), "layers": layers, "shares": per_layer,
            "last_layer_share_when_all_neighbours_kept": quartiles(kept) if kept else None,
            "last_layer_share_when_all_neighbours_lost": quartiles(lost) if lost else None,
            "facts_detail": last_layer_rows,
        }  # fmt: skip
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=1))
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
