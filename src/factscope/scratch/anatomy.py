"""Where a trained model keeps the facts it was taught: probes and AND-like neurons.

Because every fact of the corpus is invented, the answer to "does the model know X" is
known for every person, so two readings are possible that a real model rarely allows:

- `probe_attribute`: can a linear classifier read a person's attribute (e.g. sport) off the
  residual stream at the last token of their name, after each block? Fitted on some people
  and scored on others (cross-validated), so it measures a direction shared by all people,
  not a memorised lookup; chance is 1 / (number of values).
- `and_neurons`: 3Blue1Brown's picture of an MLP neuron that fires for "Michael" AND
  "Jordan" but not for either alone. For each person (first name A, last name B) we run the
  name as written (A and B), with another first name (B only), another last name (A only)
  and both replaced (neither), and count neurons at the last name token that fire strongly
  for the real name and weakly in all three others. The other names are drawn twice: the
  neurons are picked on the first draw and judged on the second, so a neuron is not called
  AND-like just because it happened to miss one random replacement.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from factscope.errors import FactscopeError
from factscope.hooks import run_with_cache
from factscope.result import Result
from factscope.scratch.corpus import FIRST_NAMES, LAST_NAMES, Person


@dataclass(frozen=True)
class AttributeProbe(Result):
    """How well a linear probe reads one attribute of a person from each site."""

    attribute: str
    sites: list[str]
    accuracy: list[float]  # cross-validated accuracy per site
    chance: float
    n_people: int
    prompt: str  # the template the name was read in, {} = the name


def last_token_states(lm: Any, texts: list[str], sites: list[str]) -> dict[str, np.ndarray]:
    """Activations at the last token of each text, per site: (n_texts, width) arrays."""
    rows: dict[str, list[np.ndarray]] = {s: [] for s in sites}
    for text in texts:
        tokens = torch.tensor([lm.tokenizer.encode(text)], device=lm.model.device)
        _, cache = run_with_cache(lm.model, tokens, sites)
        for s in sites:
            rows[s].append(cache[s][0, -1].float().flatten().cpu().numpy())
    return {s: np.stack(v) for s, v in rows.items()}


def probe_attribute(
    lm: Any, people: list[Person], attribute: str, prompt: str = "{}", folds: int = 5
) -> AttributeProbe:
    """Cross-validated logistic-regression accuracy of `attribute` read from the residual
    after each block (and the embeddings) at the last token of `prompt` with each name."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score

    if attribute not in people[0].attributes:
        raise FactscopeError(f"unknown attribute {attribute!r}")
    n_layers = lm.cfg.n_layers
    sites = ["embed", *[f"blocks.{i}.resid_post" for i in range(n_layers)]]
    states = last_token_states(lm, [prompt.format(p.name) for p in people], sites)
    labels = np.array([p.attributes[attribute] for p in people])
    accuracy = []
    for s in sites:
        x = states[s]
        x = (x - x.mean(0)) / (x.std(0) + 1e-6)
        clf = LogisticRegression(max_iter=2000, C=0.5)
        accuracy.append(float(cross_val_score(clf, x, labels, cv=folds).mean()))
    _, counts = np.unique(labels, return_counts=True)
    return AttributeProbe(
        attribute, sites, accuracy, float(counts.max() / counts.sum()), len(people), prompt
    )


CONDITIONS = ("A and B", "A only", "B only", "neither")


@dataclass(frozen=True)
class AndNeurons(Result):
    """AND-like neurons per layer, counted over people."""

    model: str
    mlp: str  # "relu" or "silu (gated)" ...
    n_people: int
    threshold_quantile: float
    and_per_person: list[float]  # per layer: mean count of AND-like neurons per person
    people_with_and: list[float]  # per layer: share of people with at least one
    example_rates: list[list[float]]  # top neurons x CONDITIONS, mean |activation| / threshold
    example_layer: int


def _name_variants(person: Person, rng: random.Random) -> dict[str, str]:
    """The four names of `CONDITIONS`: A = the first name, B = the last name."""
    first, middle, last = person.name.split(" ")
    other_first = rng.choice([f for f in FIRST_NAMES[person.pronoun] if f != first])
    other_last = rng.choice([name for name in LAST_NAMES if name != last])
    return {
        "A and B": f"{first} {middle} {last}",
        "A only": f"{first} {middle} {other_last}",
        "B only": f"{other_first} {middle} {last}",
        "neither": f"{other_first} {middle} {other_last}",
    }


@torch.no_grad()
def and_neurons(
    lm: Any, people: list[Person], quantile: float = 0.99, seed: int = 0, top: int = 12
) -> AndNeurons:
    """Count neurons (`mlp.post` at the last name token) that fire for the real name only.

    "Fires" means |activation| above the layer's `quantile` of |activation| over all names
    and conditions; AND-like means it fires for "A and B" and stays below a quarter of that
    threshold for "A only", "B only" and "neither", on both draws of the other names.
    """
    rng = random.Random(seed)
    n_layers = lm.cfg.n_layers
    sites = [f"blocks.{i}.mlp.post" for i in range(n_layers)]
    draws = [[_name_variants(p, rng) for p in people] for _ in range(2)]
    # acts[d][cond][site]: (n_people, F)
    acts = [
        {c: last_token_states(lm, [v[c] for v in draw], sites) for c in CONDITIONS}
        for draw in draws
    ]
    per_person, share, example, example_layer, best = [], [], [], 0, -1.0
    for s in sites:
        every = np.concatenate([np.abs(acts[d][c][s]) for d in range(2) for c in CONDITIONS])
        tau = float(np.quantile(every, quantile))
        fires = np.abs(acts[0]["A and B"][s]) > tau  # (n_people, F), same names in both draws
        quiet = np.ones_like(fires)
        for d in range(2):
            for c in CONDITIONS[1:]:
                quiet &= np.abs(acts[d][c][s]) < tau / 4
        and_like = fires & quiet
        counts = and_like.sum(1)
        per_person.append(float(counts.mean()))
        share.append(float((counts > 0).mean()))
        if counts.mean() > best:
            best, example_layer = float(counts.mean()), int(s.split(".")[1])
            people_idx, neuron_idx = np.nonzero(and_like)
            pairs = list(zip(people_idx.tolist(), neuron_idx.tolist(), strict=True))[:top]
            example = [
                [float(np.abs(acts[1][c][s][p, n])) / tau for c in CONDITIONS] for p, n in pairs
            ]
    mlp = lm.cfg.activation + (" (gated)" if lm.cfg.gated_mlp else " (plain)")
    return AndNeurons(
        lm.name, mlp, len(people), quantile, per_person, share, example, example_layer
    )
