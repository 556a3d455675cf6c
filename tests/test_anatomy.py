"""scratch/anatomy.py: the probe and the AND-neuron count give the answers built into
synthetic activations, and the activations they read are the model's at the last token.

The synthetic tests replace `last_token_states` (the one function that runs the model) with
activations made by construction from the people's names and attributes, so the right
answer is known exactly: a neuron built as an AND of the first and the last name is counted
for every person, one that fires for the first name alone never is; a probe reads an
attribute that the states encode linearly (~1.0) and not one whose labels were shuffled.
"""

from __future__ import annotations

import random
import zlib
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

from factscope.config import model_config
from factscope.errors import FactscopeError
from factscope.model import Transformer
from factscope.scratch import anatomy
from factscope.scratch.anatomy import and_neurons, last_token_states, probe_attribute
from factscope.scratch.bpe import train_bpe
from factscope.scratch.corpus import ATTRIBUTES, Person, make_people
from factscope.scratch.train import init_weights

WIDTH = 512  # neurons per layer: the planted ones are well under 1% of all activations


def fake_lm(n_layers: int) -> Any:
    """What the anatomy functions read of a loaded model besides its activations."""
    cfg = SimpleNamespace(n_layers=n_layers, activation="relu", gated_mlp=False)
    return SimpleNamespace(cfg=cfg, name="synthetic")


def noise(text: str, width: int) -> np.ndarray:
    """Background neurons: |activation| in [0.3, 1], fixed per text. Never under a quarter
    of the firing threshold (~1), so no background neuron can look AND-like by chance."""
    rng = np.random.default_rng(zlib.crc32(text.encode()))
    return rng.choice([-1.0, 1.0], width) * rng.uniform(0.3, 1.0, width)


def planted_mlp_states(people: list[Person]):  # type: ignore[no-untyped-def]
    """MLP activations at the last name token. Block 0: neuron 0 fires for any real first
    name, neuron 1 for any real last name, neuron 2 for either (OR). Block 1: neuron 0 fires
    for a person's own first AND last name (the middle name is the same in all four
    conditions), neuron 1 for a real first name alone."""
    parts = [p.name.split() for p in people]
    firsts = {f for f, _, _ in parts}
    lasts = {la for _, _, la in parts}
    names = {p.name for p in people}

    def states(lm: Any, texts: list[str], sites: list[str]) -> dict[str, np.ndarray]:
        out: dict[str, list[np.ndarray]] = {s: [] for s in sites}
        for text in texts:
            first, _, last = text.split()
            for s in sites:
                row = noise(f"{s} {text}", WIDTH)
                if s == "blocks.0.mlp.post":
                    row[0] = 10.0 * (first in firsts)
                    row[1] = 10.0 * (last in lasts)
                    row[2] = 10.0 * (first in firsts or last in lasts)
                else:
                    row[0] = 10.0 * (text in names)
                    row[1] = 10.0 * (first in firsts)
                out[s].append(row)
        return {s: np.stack(v) for s, v in out.items()}

    return states


def test_an_and_neuron_is_counted_and_a_first_name_neuron_is_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    people = make_people(60, random.Random(0))
    monkeypatch.setattr(anatomy, "last_token_states", planted_mlp_states(people))
    result = and_neurons(fake_lm(2), people)
    # block 0 has a first-name, a last-name and an OR neuron, no AND: nothing is counted
    assert result.and_per_person[0] == 0.0 and result.people_with_and[0] == 0.0
    # block 1: exactly the planted AND neuron, for every person; the first-name one never
    assert result.and_per_person[1] == 1.0 and result.people_with_and[1] == 1.0
    assert result.example_layer == 1
    assert result.mlp == "relu (plain)" and result.n_people == 60
    for both, a_only, b_only, neither in result.example_rates:
        assert both > 5.0 and a_only == b_only == neither == 0.0


def test_quiet_means_under_a_quarter_of_the_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two more AND neurons in block 1 that also leak into "A only": by 0.1 (under a quarter
    of the threshold, ~0.25 here: still AND-like) and by 0.5 (over it: not AND-like)."""
    people = make_people(60, random.Random(1))
    planted = planted_mlp_states(people)
    firsts = {p.name.split()[0] for p in people}
    names = {p.name for p in people}

    def states(lm: Any, texts: list[str], sites: list[str]) -> dict[str, np.ndarray]:
        out = planted(lm, texts, sites)
        for i, text in enumerate(texts):
            real = text in names
            first_only = text.split()[0] in firsts and not real
            out["blocks.1.mlp.post"][i, 2] = 10.0 if real else 0.1 if first_only else 0.0
            out["blocks.1.mlp.post"][i, 3] = 10.0 if real else 0.5 if first_only else 0.0
        return out

    monkeypatch.setattr(anatomy, "last_token_states", states)
    result = and_neurons(fake_lm(2), people)
    assert result.and_per_person[1] == 2.0  # neurons 0 and 2; not 3
    assert result.and_per_person[0] == 0.0


def encoded_states(people: list[Person], attribute: str):  # type: ignore[no-untyped-def]
    """Residual states: "embed" is noise, "blocks.0.resid_post" is a fixed random vector per
    value of `attribute` (the person's true one) plus a little noise."""
    values = ATTRIBUTES[attribute]
    directions = np.random.default_rng(0).normal(size=(len(values), 24))
    truth = {p.name: values.index(p.attributes[attribute]) for p in people}

    def states(lm: Any, texts: list[str], sites: list[str]) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(1)
        out = {"embed": rng.normal(size=(len(texts), 24))}
        rows = [directions[truth[t.removeprefix("About ")]] for t in texts]
        out["blocks.0.resid_post"] = np.stack(rows) + 0.1 * rng.normal(size=(len(texts), 24))
        return {s: out[s] for s in sites}

    return states


def test_probe_reads_an_encoded_attribute_and_not_noise(monkeypatch: pytest.MonkeyPatch) -> None:
    people = make_people(240, random.Random(2))
    monkeypatch.setattr(anatomy, "last_token_states", encoded_states(people, "sport"))
    result = probe_attribute(fake_lm(1), people, "sport", prompt="About {}")
    assert result.sites == ["embed", "blocks.0.resid_post"]
    labels = [p.attributes["sport"] for p in people]
    assert result.chance == max(labels.count(v) for v in set(labels)) / len(labels)
    embed, block0 = result.accuracy
    assert block0 > 0.95
    assert embed < result.chance + 0.1


def test_probe_on_shuffled_labels_is_at_chance(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same states, but each person's label taken from another person."""
    people = make_people(240, random.Random(2))
    monkeypatch.setattr(anatomy, "last_token_states", encoded_states(people, "sport"))
    sports = [p.attributes["sport"] for p in people]
    random.Random(5).shuffle(sports)
    shuffled = [
        Person(p.name, p.pronoun, {**p.attributes, "sport": s}, p.split)
        for p, s in zip(people, sports, strict=True)
    ]
    result = probe_attribute(fake_lm(1), shuffled, "sport", prompt="About {}")
    assert result.accuracy[1] < result.chance + 0.1


def test_probe_of_an_unknown_attribute_is_refused() -> None:
    people = make_people(5, random.Random(0))
    with pytest.raises(FactscopeError, match="unknown attribute"):
        probe_attribute(fake_lm(1), people, "shoe_size")


def test_states_are_the_models_at_the_last_token() -> None:
    """On a tiny seeded model: the state read after the last block, unembedded, gives the
    model's own logits for the text's last token; the embedding site gives its token's row."""
    people = make_people(20, random.Random(0))
    tokenizer = train_bpe([f"{p.name} plays {p.attributes['sport']}." for p in people], 400)
    model = Transformer(model_config("tiny", vocab_size=512, context_length=64)).eval()
    init_weights(model, 0)
    lm = SimpleNamespace(model=model, tokenizer=tokenizer, cfg=model.cfg, name="tiny")
    texts = [p.name for p in people[:4]]
    last = f"blocks.{model.cfg.n_layers - 1}.resid_post"
    states = last_token_states(lm, texts, ["embed", last])
    assert states[last].shape == (4, model.cfg.d_model)
    for i, text in enumerate(texts):
        ids = tokenizer.encode(text)
        with torch.no_grad():
            logits = model(torch.tensor([ids]))[0, -1]
            from_state = model.unembed_residual(torch.from_numpy(states[last][i])[None, None])
            torch.testing.assert_close(from_state[0, 0], logits)
            torch.testing.assert_close(
                torch.from_numpy(states["embed"][i]), model.embedding.weight[ids[-1]]
            )
