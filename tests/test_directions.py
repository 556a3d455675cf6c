"""The answer's direction and difference-of-means directions on tiny models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from factscope.errors import FactscopeError
from factscope.hooks import run_with_cache
from factscope.load import LoadedModel, load_model
from factscope.locate.prompts import answer_token, encode_prompt
from factscope.read.directions import answer_projection, mean_directions, read_directions
from factscope.read.names import relation_prompts
from reference_models import random_model
from tiny_checkpoints import tiny_hf_for_gguf, write_tiny_gguf

TOKENS = torch.tensor([[1, 5, 6, 7, 8, 9, 10]])


@pytest.mark.parametrize("family", ["llama", "gemma3"])
def test_projection_rows_read_the_residual_streams(family: str) -> None:
    model = random_model(family)
    result = answer_projection(model, TOKENS, 11)
    L = model.cfg.n_layers
    sites = [f"blocks.{i}.resid_pre" for i in range(L)] + [f"blocks.{L - 1}.resid_post"]
    logits, cache = run_with_cache(model, TOKENS, sites)
    u = model.unembed.weight[11]
    for row, site in enumerate(sites):
        x = cache[site][0]  # (T, D)
        want = x @ u / u.norm()
        torch.testing.assert_close(torch.tensor(result.projection[row]), want, atol=1e-4, rtol=1e-5)
        cos = want / x.norm(dim=-1)
        torch.testing.assert_close(torch.tensor(result.cosine[row]), cos, atol=1e-5, rtol=1e-5)
    # the last row's lens logit is the model's own logit at every token
    torch.testing.assert_close(
        torch.tensor(result.lens_logit[-1]), logits[0, :, 11], atol=1e-4, rtol=1e-5
    )
    assert result.answer_rank[-1] == int((logits[0, -1] > logits[0, -1, 11]).sum())


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    path = Path(tmp_path_factory.mktemp("tiny")) / "tiny.gguf"
    write_tiny_gguf(path, tiny_hf_for_gguf("gemma3", seed=3))
    return load_model(path)


SUBJECTS = ["Michael", "Jordan", "Michael Jordan", "the sport", "Fact", "sport of", "plays", "of"]


def labelled(tiny: LoadedModel) -> list[tuple[str, str, str]]:
    """Prompts labelled with the answer the model itself prefers, so that every one is known."""
    answers = [" sport", " the"]
    ids = [answer_token(tiny.tokenizer, a).id for a in answers]
    triples = []
    for s in SUBJECTS:
        prompt = f"Fact {s} plays"
        with torch.no_grad():
            logits = tiny.model(encode_prompt(tiny.model, tiny.tokenizer, prompt))[0, -1]
        triples.append((prompt, s, answers[int(logits[ids].argmax())]))
    return triples


def test_difference_of_means_by_hand(tiny: LoadedModel) -> None:
    triples = labelled(tiny)
    assert len({a for *_, a in triples}) == 2, "the tiny model should prefer both answers somewhere"
    result = mean_directions(tiny.model, tiny.tokenizer, triples)
    assert result.n_known == len(triples)
    L = tiny.cfg.n_layers
    site = f"blocks.{L - 1}.resid_post"
    xs = []
    for prompt, *_ in triples:
        _, cache = run_with_cache(
            tiny.model, encode_prompt(tiny.model, tiny.tokenizer, prompt), [site]
        )
        xs.append(cache[site][0, -1])
    x = torch.stack(xs)
    labels = torch.tensor([a == triples[0][2] for *_, a in triples])
    d0 = x[labels].mean(0) - x[~labels].mean(0)
    c0 = next(c for c in result.classes if c.answer == triples[0][2])
    assert c0.direction_norm == pytest.approx(float(d0.norm()), rel=1e-5)
    cos = torch.tensor(result.cosines)
    torch.testing.assert_close(cos.diagonal(), torch.ones(2))
    assert float(cos[0, 1]) == pytest.approx(-1.0, abs=1e-5)  # two classes: opposite directions
    # the share of the logit along the direction, recomputed for one prompt
    n = int(labels.nonzero()[0])
    unit = d0 / d0.norm()
    g = tiny.model.norm.weight * tiny.model.unembed.weight[c0.id]
    r = (torch.rsqrt(x[n].pow(2).mean() + tiny.model.norm.eps) * g).detach()
    delta = x[n] - x.mean(0)
    want = float((delta @ unit) * (unit @ r) / (delta @ r))
    assert result.prompts[n]["share"] == pytest.approx(want, rel=1e-4)
    # held out: prompt n left out of its class mean and of the all-prompts mean
    rest = labels.clone()
    rest[n] = False
    d_n = x[rest].mean(0) - x[~labels].mean(0)
    u_n = d_n / d_n.norm()
    keep = torch.ones(len(x), dtype=torch.bool)
    keep[n] = False
    delta_n = x[n] - x[keep].mean(0)
    want_out = float((delta_n @ u_n) * (u_n @ r) / (delta_n @ r))
    assert result.prompts[n]["share_held_out"] == pytest.approx(want_out, rel=1e-4)


def test_directions_errors(tiny: LoadedModel) -> None:
    triples = labelled(tiny)
    with pytest.raises(FactscopeError, match="layer 9 does not exist"):
        mean_directions(tiny.model, tiny.tokenizer, triples, layer=9)
    with pytest.raises(FactscopeError, match="at least two answers"):
        mean_directions(tiny.model, tiny.tokenizer, [t for t in triples if t[2] == triples[0][2]])
    with pytest.raises(FactscopeError, match="no '\\{\\}'"):
        relation_prompts("plays the sport of")


def test_read_directions_end_to_end(tiny: LoadedModel) -> None:
    result = read_directions(
        tiny, "Fact Michael Jordan plays the sport of", " sport", relation=labelled(tiny), layer=1
    )
    assert result.means is not None and result.means.site == "blocks.1.resid_pre"
    assert result.projection is not None and len(result.projection.layers) == tiny.cfg.n_layers + 1
    json.dumps(result.to_dict())
    assert "<svg" in result._repr_html_()


def test_shipped_relation_prompts() -> None:
    triples = relation_prompts()
    assert ("Michael Jordan plays the sport of", "Michael Jordan", " basketball") in triples
    assert len({a for *_, a in triples}) >= 5
