"""Neuron scores and ablations on tiny seeded models: exact identities, gated and plain MLPs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from factscope.config import tiny_config
from factscope.errors import FactscopeError
from factscope.hooks import HookFn, hooks
from factscope.load import LoadedModel, load_model
from factscope.locate.lens import direct_logit_attribution
from factscope.model import Transformer
from factscope.read.ablation import ablated_answer_probs, ablation_curve, neuron_set, random_like
from factscope.read.names import build_variants, parse_variants
from factscope.read.neuron_info import AND_FRACTION, and_verdict
from factscope.read.neuron_scores import final_contributions, ranking, subject_attribution
from factscope.read.neurons import find_neurons
from factscope.read.suffix import ForwardCount, SuffixRunner
from reference_models import random_model
from tiny_checkpoints import tiny_hf_for_gguf, write_tiny_gguf

TOKENS = torch.tensor([[1, 5, 6, 7, 8, 9, 10]])
ANSWER = 11
KINDS = ["llama", "gemma3", "plain_relu", "plain_gelu_postnorm"]


def build(kind: str) -> Transformer:
    """Tiny seeded models: Llama (gated SiLU), Gemma 3 (gated GELU + post-norms), and plain
    (non-gated) MLPs, with and without a post-MLP norm. The (tied) embeddings are shrunk so
    that the next-token distribution is not saturated: p(ANSWER) is about 0.005 to 0.05, and
    gradients and ablation effects are far from float noise."""
    if kind in ("llama", "gemma3"):
        return soften(random_model(kind))
    torch.manual_seed(1)
    if kind == "plain_relu":
        cfg = tiny_config("llama", gated_mlp=False, activation="relu")
    else:
        cfg = tiny_config("gemma3", gated_mlp=False, activation="gelu")
    model = Transformer(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1 + 0.3 * torch.randn_like(p))
    return soften(model)


def soften(model: Transformer) -> Transformer:
    with torch.no_grad():
        model.embedding.weight.mul_(0.2)
    return model


def close(got: float, want: float, rel: float = 1e-5) -> bool:
    return abs(got - want) <= rel * abs(want) + 1e-9


@pytest.fixture(scope="module", params=KINDS)
def model(request: pytest.FixtureRequest) -> Transformer:
    return build(request.param)


def p_answer(model: Transformer, fns: dict | None = None) -> float:
    with torch.no_grad(), hooks(model, fns or {}):
        return float(model(TOKENS)[0, -1].float().softmax(-1)[ANSWER])


def test_neuron_contributions_sum_to_the_mlp_dla_term(model: Transformer) -> None:
    scores = final_contributions(model, TOKENS, ANSWER)  # (L, F)
    dla = direct_logit_attribution(model, TOKENS, ANSWER)
    assert scores.shape == (model.cfg.n_layers, model.cfg.d_mlp)
    sums = scores.sum(1)
    for layer, term in enumerate(dla.mlp):
        assert abs(float(sums[layer]) - term) <= 1e-5 * abs(term), (layer, float(sums[layer]), term)
    # and the whole DLA still adds up to the real logit
    assert abs(dla.error) < 1e-4


def test_one_neuron_contribution_matches_its_own_direct_path() -> None:
    """A gated model without post-norm (Llama): c_i = a_i * (w_down_i . g s W_U[answer])."""
    model = build("llama")
    scores = final_contributions(model, TOKENS, ANSWER)
    from factscope.hooks import run_with_cache

    L = model.cfg.n_layers
    _, cache = run_with_cache(model, TOKENS, ["blocks.1.mlp.post", f"blocks.{L - 1}.resid_post"])
    a = cache["blocks.1.mlp.post"][0, -1, 7].double()
    x = cache[f"blocks.{L - 1}.resid_post"][0, -1].double()
    s = torch.rsqrt(x.pow(2).mean() + model.norm.eps)
    w = model.blocks[1].mlp.down_proj.weight[:, 7].double()
    want = a * (w * s * model.norm.weight.double()) @ model.unembed.weight[ANSWER].double()
    assert abs(float(scores[1, 7]) - float(want.detach())) < 1e-6


def test_ablating_no_neuron_changes_nothing(model: Transformer) -> None:
    clean = p_answer(model)
    for position in (0, 3, TOKENS.shape[1] - 1):
        got = ablated_answer_probs(
            model, TOKENS, ANSWER, position, [{}, {}], torch.zeros(3, model.cfg.d_mlp)
        )
        assert got.tolist()[0] == got.tolist()[1]
        assert close(float(got[0]), clean)


def test_ablating_every_neuron_of_a_layer_equals_zeroing_its_mlp(model: Transformer) -> None:
    F = model.cfg.d_mlp
    for layer in range(model.cfg.n_layers):
        for position in (2, TOKENS.shape[1] - 1):
            every = {layer: torch.arange(F)}
            got = ablated_answer_probs(
                model, TOKENS, ANSWER, position, [every], torch.zeros(model.cfg.n_layers, F)
            )

            def zero_out(x: torch.Tensor, site: str, position: int = position) -> torch.Tensor:
                x = x.clone()
                x[:, position] = 0
                return x

            want = p_answer(model, {f"blocks.{layer}.mlp.out": zero_out})
            assert close(float(got[0]), want), (layer, position)


def test_batched_prefix_reuse_equals_full_forward_ablation(model: Transformer) -> None:
    """Mixed rows in one batch, tokens before the position reused: same p as one full run."""
    L, F = model.cfg.n_layers, model.cfg.d_mlp
    values = torch.randn(L, F, generator=torch.Generator().manual_seed(0))
    rows = [neuron_set([(0, 3), (2, 5)]), neuron_set([(1, i) for i in range(10)]), {}]
    position = 4
    count = ForwardCount()
    got = ablated_answer_probs(
        model, TOKENS, ANSWER, position, rows, values, batch_size=2, count=count
    )
    assert count.calls == 1 + 2  # the prefix, then two batches
    assert count.rows == 1 + 3
    for r, row in enumerate(rows):
        fns = {}
        for layer, idx in row.items():

            def put(
                x: torch.Tensor, site: str, idx: torch.Tensor = idx, layer: int = layer
            ) -> torch.Tensor:
                x = x.clone()
                x[:, position, idx] = values[layer, idx]
                return x

            fns[f"blocks.{layer}.mlp.post"] = put
        assert close(float(got[r]), p_answer(model, fns))


def test_gradient_times_activation_matches_finite_differences() -> None:
    model = build("gemma3")
    position = 3
    mean = torch.zeros(model.cfg.n_layers, model.cfg.d_mlp)
    scores = subject_attribution(model, TOKENS, ANSWER, position, mean)
    from factscope.read.neuron_scores import neuron_activations

    acts = neuron_activations(model, TOKENS)[0, :, position]  # (L, F)
    for layer, index in [(0, 2), (1, 7), (2, 11)]:
        eps = 1e-2

        def shifted(d: float, index: int = index) -> HookFn:
            def shift(x: torch.Tensor, site: str) -> torch.Tensor:
                x = x.clone()
                x[:, position, index] += d
                return x

            return shift

        site = f"blocks.{layer}.mlp.post"
        up = p_answer(model, {site: shifted(eps)})
        down = p_answer(model, {site: shifted(-eps)})
        grad = (up - down) / (2 * eps)
        want = grad * float(acts[layer, index])
        assert abs(float(scores[layer, index]) - want) <= 2e-2 * abs(want) + 1e-7


def test_integrated_gradients_are_complete() -> None:
    """IG's completeness: one layer's scores sum to p(answer) minus p with that layer's
    activations at the position set to the baseline 0 (up to the Riemann sum's error)."""
    model = build("llama")
    position = 3
    mean = torch.zeros(model.cfg.n_layers, model.cfg.d_mlp)
    scores = subject_attribution(
        model, TOKENS, ANSWER, position, mean, method="integrated_gradients", steps=200
    )
    clean = p_answer(model)
    for layer in range(model.cfg.n_layers):
        row = {layer: torch.arange(model.cfg.d_mlp)}
        zeroed = float(ablated_answer_probs(model, TOKENS, ANSWER, position, [row], mean)[0])
        total = float(scores[layer].sum())
        assert abs(total - (clean - zeroed)) <= 0.02 * abs(clean - zeroed) + 1e-6, layer


def test_random_control_has_the_top_sets_layer_counts() -> None:
    scores = torch.randn(3, 48, generator=torch.Generator().manual_seed(2))
    top = ranking(scores, 20)
    assert float(scores[top[0]]) == float(scores.max())
    assert [float(scores[n]) for n in top] == sorted((float(scores[n]) for n in top), reverse=True)
    rand = random_like(top, 48, torch.Generator().manual_seed(0))
    assert sorted(layer for layer, _ in rand) == sorted(layer for layer, _ in top)
    assert not set(rand) & set(top)
    assert len(set(rand)) == len(rand)


def test_ablation_curve_rows_and_errors() -> None:
    model = build("gemma3")
    scores = final_contributions(model, TOKENS, ANSWER)
    order = ranking(scores, 30)
    L, F = model.cfg.n_layers, model.cfg.d_mlp
    values = {"zero": torch.zeros(L, F), "mean": torch.full((L, F), 0.1)}
    curves = ablation_curve(model, TOKENS, ANSWER, 6, order, [1, 5, 30], values, draws=5)
    assert [c.mode for c in curves] == ["zero", "mean"]
    zero = curves[0]
    assert close(zero.clean_p, p_answer(model))
    assert len(zero.random_p) == 3 and all(len(r) == 5 for r in zero.random_p)
    one = float(
        ablated_answer_probs(model, TOKENS, ANSWER, 6, [neuron_set(order[:5])], values["zero"])[0]
    )
    assert close(zero.top_p[1], one)
    assert zero.top_p[-1] != pytest.approx(zero.clean_p, rel=1e-3)  # ablation does something
    with pytest.raises(FactscopeError, match="out of range"):
        ablation_curve(model, TOKENS, ANSWER, 6, order, [0], values)
    with pytest.raises(FactscopeError, match="out of range"):
        ablation_curve(model, TOKENS, ANSWER, 6, order, [31], values)
    with pytest.raises(FactscopeError, match="outside the prompt"):
        SuffixRunner(model, TOKENS, 7)


@pytest.mark.parametrize(
    ("both", "first", "last", "neither", "verdict"),
    [
        (3.0, 0.1, 0.2, 0.0, "AND"),
        (3.0, 2.5, 0.2, 0.0, "first name alone"),
        (3.0, 0.2, 2.9, 0.0, "last name alone"),
        (3.0, 2.0, 2.0, 0.0, "OR"),
        (3.0, 2.9, 3.0, 2.8, "not specific"),
        (-3.0, -0.1, 0.0, 0.0, "AND"),  # a negative neuron: the same test, signed
    ],
)
def test_and_verdict(both: float, first: float, last: float, neither: float, verdict: str) -> None:
    got, r_first, r_last = and_verdict(both, first, last, neither)
    assert got.startswith(verdict), got
    if verdict == "AND":
        assert r_first is not None and r_first < AND_FRACTION
        assert r_last is not None and r_last < AND_FRACTION


# ---- end to end on a tiny GGUF (a real tokenizer) -------------------------------------------

PROMPT = "Fact Michael Jordan plays the sport of"
VARIANTS = "first:Michael Jor,last:Mic Jordan,neither:Mic Jor"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    path = Path(tmp_path_factory.mktemp("tiny")) / "tiny.gguf"
    write_tiny_gguf(path, tiny_hf_for_gguf("gemma3", seed=3))
    return load_model(path)


def test_find_neurons_end_to_end(tiny: LoadedModel) -> None:
    result = find_neurons(
        tiny,
        PROMPT,
        "Michael Jordan",
        " sport",
        top=4,
        max_k=12,
        draws=5,
        variants=parse_variants(VARIANTS),
    )
    assert result.sum_rel_error <= 1e-5
    # <bos> Fact Michael Jordan ...: the last subject token is at 3
    assert result.positions == {"subject": 3, "final": len(result.tokens) - 1}
    assert [n.rank for n in result.top["final"]] == [0, 1, 2, 3]
    finals = result.top["final"]
    assert finals[0].score == pytest.approx(
        max(max(row) for row in result.scores["final"]), rel=1e-5
    )
    assert all(
        n.and_test is not None and n.and_test.by_kind.keys() == {"first", "last", "neither"}
        for n in finals
    )
    assert [v["kind"] for v in result.variants] == ["first", "last", "neither"]
    for n in finals:  # the two questions, separately, on the prompt and per variant kind
        assert n.and_test is not None and n.and_test.gate_mean is not None
        assert n.and_test.gate_mean["both"] == pytest.approx(n.gate)
        assert n.and_test.up_mean is not None and n.and_test.up_mean["both"] == pytest.approx(n.up)
        assert set(n.and_test.gate_mean) == {"both", "first", "last", "neither"}
    assert {(c.position, c.mode) for c in result.ablation} == {
        (p, m) for p in ("subject", "final") for m in ("zero", "mean")
    }
    assert all(c.ks[-1] == 12 for c in result.ablation)
    assert result.forward_passes["rows"] > result.forward_passes["calls"] > 5
    json.dumps(result.to_dict())  # plain data
    assert "<svg" in result._repr_html_()


def test_find_neurons_errors(tiny: LoadedModel) -> None:
    with pytest.raises(FactscopeError, match="does not occur"):
        find_neurons(tiny, PROMPT, "Tom Brady")
    with pytest.raises(FactscopeError, match="--top 0 is out of range"):
        find_neurons(tiny, PROMPT, "Michael Jordan", top=0)
    with pytest.raises(FactscopeError, match="k = 100000 is out of range"):
        find_neurons(tiny, PROMPT, "Michael Jordan", ks=[100000])
    with pytest.raises(FactscopeError, match="does not tokenise like"):
        build_variants(tiny.tokenizer, PROMPT, "Michael Jordan", [("first", "Michael Phelps")])
    with pytest.raises(FactscopeError, match="KIND:NAME"):
        parse_variants("both:Michael Jordan")


def test_cli_commands_write_json_figures_and_report(tiny: LoadedModel, tmp_path: Path) -> None:
    """The three read commands on the tiny GGUF: files written, JSON equal to the library's
    result, HTML holding the same data, and no overwrite without --force."""
    from factscope.cli import main
    from factscope.report.html import read_report_data

    common = ["--model", str(tiny.source)]
    neurons_args = [
        "neurons",
        PROMPT,
        "--subject",
        "Michael Jordan",
        "--answer",
        " sport",
        "--top",
        "3",
        "--max-k",
        "8",
        "--draws",
        "2",
        "--variants",
        VARIANTS,
    ]
    runs = {
        "n": neurons_args,
        "d": ["directions", PROMPT, "--answer", " sport", "--layer", "2"],
        "k": ["knockout", PROMPT, "--subject", "Michael Jordan", "--window", "2"],
    }
    for name, args in runs.items():
        assert main([*args, *common, "--out", str(tmp_path / name)]) == 0
    data = json.loads((tmp_path / "n" / "neurons.json").read_text())
    assert data["sum_rel_error"] <= 1e-5 and "command" in data  # (argv is pytest's here)
    assert len(data["top"]["subject"]) == 3 and data["ablation"][0]["ks"][-1] == 8
    page = (tmp_path / "n" / "report.html").read_text()
    assert read_report_data(page)["top"] == data["top"]
    for f in ("neurons.png", "ablation.png", "and_test.png"):
        assert (tmp_path / "n" / f).stat().st_size > 1000
    assert json.loads((tmp_path / "d" / "directions.json").read_text())["means"]["site"] == (
        "blocks.2.resid_pre"
    )
    knock = json.loads((tmp_path / "k" / "knockout.json").read_text())
    assert knock["window"] == 2 and set(knock["probs"]) == {"subject", "non-subject", "last"}
    assert main([*runs["k"], *common, "--out", str(tmp_path / "k")]) == 2  # no --force


@pytest.mark.realmodel
def test_gemma_michael_jordan_and_neuron() -> None:
    """docs/read.md's findings on gemma-3-270m: the final-token neuron contributions add up
    to the MLP DLA terms, and L3.N1627 at " Jordan" fires for "Michael Jordan" only."""
    from factscope.hooks import run_with_cache
    from factscope.locate.prompts import answer_token, encode_prompt
    from factscope.registry import MODELS

    if MODELS["gemma-3-270m"].installed_path() is None:
        pytest.skip("gemma-3-270m is not installed")
    loaded = load_model("gemma-3-270m")
    prompt, subject = "Michael Jordan plays the sport of", "Michael Jordan"
    tokens = encode_prompt(loaded.model, loaded.tokenizer, prompt)
    answer = answer_token(loaded.tokenizer, " basketball").id
    scores = final_contributions(loaded.model, tokens, answer)
    dla = torch.tensor(
        direct_logit_attribution(loaded.model, tokens, answer).mlp, dtype=torch.float64
    )
    assert float((scores.sum(1) - dla).abs().max() / dla.abs().max()) <= 1e-5
    variants = build_variants(loaded.tokenizer, prompt, subject)
    assert {v.kind for v in variants} == {"first", "last", "neither"}
    batch = torch.cat(
        [tokens] + [encode_prompt(loaded.model, loaded.tokenizer, v.prompt) for v in variants]
    )
    _, cache = run_with_cache(loaded.model, batch, ["blocks.3.mlp.post"], logits_at="last")
    act = cache["blocks.3.mlp.post"][:, 2, 1627]  # last subject token " Jordan"
    assert float(act[0]) > 3.0
    assert float(act[1:].abs().max()) < 0.5


def test_find_neurons_on_a_plain_mlp(tiny: LoadedModel) -> None:
    """A non-gated MLP (the video's picture): no gate site, up is the only question."""
    from dataclasses import replace

    torch.manual_seed(4)
    cfg = tiny_config("gemma3", gated_mlp=False, activation="relu", vocab_size=tiny.cfg.vocab_size)
    plain = replace(tiny, model=soften(Transformer(cfg).eval()))
    result = find_neurons(
        plain,
        PROMPT,
        "Michael Jordan",
        " sport",
        top=3,
        max_k=6,
        draws=2,
        variants=parse_variants(VARIANTS),
    )
    assert not result.gated and result.sum_rel_error <= 1e-5
    for n in result.top["subject"] + result.top["final"]:
        assert n.gate is None and n.gate_tokens is None
        assert n.act == pytest.approx(max(n.up, 0.0), abs=1e-6)  # relu(up . x)
        assert n.and_test is not None and n.and_test.gate_mean is None


def test_rows_past_the_tokenizer_vocabulary_are_spelled_not_refused() -> None:
    """A trained model may pad its embedding past the tokenizer's vocabulary."""
    from types import SimpleNamespace

    from factscope.tokenizer import spell_tokens

    tokenizer = SimpleNamespace(vocab_size=5, token_str=lambda i: f"t{i}")
    assert spell_tokens(tokenizer, [1, 4, 7]) == ["t1", "t4", "<unused 7>"]  # type: ignore[arg-type]
