"""Every family factscope reads, checked against transformers and through every capability.

For each family a tiny random-weight model is built by transformers from a config alone (no
download; reference_models.FAMILY_CONFIGS switches on what the family differs in), saved with
`save_pretrained` beside a tokenizer.json, and loaded back by path. Then: logits and greedy
generation equal transformers', tokenizer ids equal the tokenizers library's, and tracing,
patching, the lens, neurons, directions, a ROME edit and a probe keep their invariants.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer as HFTokenizer

from factscope.edit import EditRequest, edit
from factscope.generate import generate_tokens
from factscope.hooks import hooks, run_with_cache
from factscope.load import LoadedModel, load_model
from factscope.locate.lens import direct_logit_attribution, lens_residuals, norm_readout
from factscope.locate.patch import patched_logit_diffs
from factscope.locate.trace import trace_fact
from factscope.model import Transformer
from factscope.read.directions import answer_projection
from factscope.read.neurons import ablated_answer_probs, final_contributions
from factscope.read.params import count_params
from factscope.study.probe import collect_activations
from factscope.tokenizer import Tokenizer
from reference_models import (
    FAMILY_NAMES,
    ours_from_hf,
    random_model,
    relative_error,
    tiny_family_model,
)
from study_tiny import tiny_dataset
from test_patch import ANSWERS, CLEAN, CORRUPT, full_logit_diff
from test_rome import FAST, PROMPT, tiny_stats
from test_trace import KINDS, SPAN, scores
from tiny_checkpoints import write_tiny_gguf, write_tiny_hf_folder
from tokenizer_vocabs import byte_level_metadata, gemma_like_metadata

PROMPTS = [(2, 1), (2, 6), (1, 23), (3, 40)]  # (batch, length): past every sliding window
TOKENS = torch.tensor([[1, 5, 6, 7, 8, 9, 10]])
ANSWER = 11


@pytest.fixture(scope="module", params=FAMILY_NAMES)
def family(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def checkpoint(family: str, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """(transformers model, the same loaded by path from its saved folder)."""
    hf = tiny_family_model(family, seed=5)
    folder = tmp_path_factory.mktemp(family) / "model"
    write_tiny_hf_folder(folder, hf)
    return hf, load_model(folder)


@pytest.fixture(scope="module")
def text_lm(family: str) -> LoadedModel:
    """The family's tiny model with a text tokenizer (gemma-like test vocabulary)."""
    meta = gemma_like_metadata()
    hf = tiny_family_model(
        family, seed=1, vocab_size=len(meta["tokenizer.ggml.tokens"]), bos_token_id=2,
        eos_token_id=1, **({"n_positions": 128} if family == "gpt2" else
                           {"max_position_embeddings": 128}),
    )  # fmt: skip
    tokenizer = Tokenizer.from_gguf_metadata(meta)
    return LoadedModel(f"tiny-{family}", ours_from_hf(hf), tokenizer, Path("/nonexistent"))


# ---- against transformers ---------------------------------------------------------------


def test_logits_match_transformers(checkpoint) -> None:  # type: ignore[no-untyped-def]
    hf, lm = checkpoint
    for batch, length in PROMPTS:
        tokens = torch.randint(
            0, 97, (batch, length), generator=torch.Generator().manual_seed(length)
        )
        with torch.no_grad():
            ref, got = hf(tokens).logits, lm.model(tokens)
        assert relative_error(got, ref) < 1e-4, (batch, length)
        assert torch.equal(got.argmax(-1), ref.argmax(-1))
        # next-token log-probabilities of transformers' top 10
        ref_lp, got_lp = ref[:, -1].log_softmax(-1), got[:, -1].log_softmax(-1)
        top = ref_lp.topk(10).indices
        assert (got_lp.gather(1, top) - ref_lp.gather(1, top)).abs().max() < 1e-3


def test_greedy_generation_equals_transformers(checkpoint) -> None:  # type: ignore[no-untyped-def]
    hf, lm = checkpoint
    prompt = torch.tensor([[3, 14, 15, 9, 26, 5]])
    with torch.no_grad():
        ref = hf.generate(
            prompt, max_new_tokens=12, do_sample=False, min_new_tokens=12, pad_token_id=0
        )[0, prompt.shape[1] :].tolist()
        ours = list(generate_tokens(lm.model, prompt, 12))
    assert ours == ref


def test_tokenizer_ids_equal_the_tokenizers_library(checkpoint) -> None:  # type: ignore[no-untyped-def]
    _, lm = checkpoint
    reference = HFTokenizer.from_file(str(lm.source / "tokenizer.json"))
    for text in ("w3 w5", "w96 w0 w12 w12", "w7"):
        assert lm.tokenizer.encode(text, add_bos=False) == reference.encode(text).ids


def test_hook_sites_are_the_same_in_every_family(checkpoint) -> None:  # type: ignore[no-untyped-def]
    _, lm = checkpoint
    per_block = [s.split(".", 2)[2] for s in lm.model.hook_points if s.startswith("blocks.0.")]
    gate = ["mlp.gate"] if lm.cfg.gated_mlp else []
    assert per_block == [
        "resid_pre", "attn.q", "attn.k", "attn.v", "attn.scores", "attn.pattern", "attn.z",
        "attn.out", "resid_mid", *gate, "mlp.up", "mlp.post", "mlp.out", "resid_post",
    ]  # fmt: skip


# ---- every capability keeps its invariants ----------------------------------------------


def test_trace_invariants(checkpoint) -> None:  # type: ignore[no-untyped-def]
    _, lm = checkpoint
    model = lm.model
    tokens = torch.randint(0, 97, (1, 9), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        answer = int(model(tokens)[0, -1].argmax())
    result = trace_fact(model, tokens, SPAN, answer, samples=3, window=2, noise_std=0.5)
    hidden = scores(result["hidden"])
    assert hidden[-1, -1] == pytest.approx(result["hidden"].clean_p, abs=1e-6)
    for kind in KINDS:  # tokens before the subject are not corrupted
        assert torch.all(scores(result[kind])[: SPAN[0]] == result[kind].corrupted_p)


def test_patching_every_position_recovers_clean(checkpoint) -> None:  # type: ignore[no-untyped-def]
    _, lm = checkpoint
    model = lm.model
    for layer in (0, model.cfg.n_layers - 1):
        site = f"blocks.{layer}.resid_pre"
        _, clean = run_with_cache(model, CLEAN, [site])
        _, corrupt = run_with_cache(model, CORRUPT, [site])
        every = torch.ones(1, CLEAN.shape[1], dtype=torch.bool)
        diff = patched_logit_diffs(model, layer, site, corrupt[site], clean[site], every, ANSWERS)
        assert float(diff[0]) == pytest.approx(full_logit_diff(model, CLEAN), abs=1e-5)


def _bias_term(model, dla, bias: torch.Tensor | None) -> float:  # type: ignore[no-untyped-def]
    """What a projection's bias (added after the heads or neurons) writes into the logit."""
    if bias is None:
        return 0.0
    direction = model.unembed.weight[ANSWER]
    return float(
        bias.detach().double() @ norm_readout(model.norm, torch.tensor(dla.final_scale), direction)
    )


def test_lens_and_direct_logit_attribution(checkpoint) -> None:  # type: ignore[no-untyped-def]
    _, lm = checkpoint
    model = lm.model
    with torch.no_grad():
        logits = model(TOKENS)[0]
        lensed = model.unembed_residual(lens_residuals(model, TOKENS)[-1:])[0]
        raw = model.unembed(model.final_norm(model.norm(lens_residuals(model, TOKENS)[-1])))
    torch.testing.assert_close(lensed, logits, rtol=0, atol=1e-6)
    dla = direct_logit_attribution(model, TOKENS, ANSWER)
    total = dla.embed + sum(dla.attn) + sum(dla.mlp) + dla.norm_bias
    assert total == pytest.approx(dla.total)
    # the logit before any final soft cap (Gemma 2), as the components add up to
    assert total == pytest.approx(float(raw[-1, ANSWER]), rel=1e-4, abs=1e-6)
    for layer, heads in enumerate(dla.heads):
        o_bias = _bias_term(model, dla, model.blocks[layer].attn.o_proj.bias)
        assert sum(heads) + o_bias == pytest.approx(dla.attn[layer], rel=1e-5, abs=1e-6)


def test_neurons_sum_to_the_mlp_term_and_ablate_like_the_mlp(checkpoint) -> None:  # type: ignore[no-untyped-def]
    _, lm = checkpoint
    model = lm.model
    contributions = final_contributions(model, TOKENS, ANSWER)  # (L, F)
    dla = direct_logit_attribution(model, TOKENS, ANSWER)
    for layer, term in enumerate(dla.mlp):
        down_bias = _bias_term(model, dla, model.blocks[layer].mlp.down_proj.bias)
        got = float(contributions[layer].sum()) + down_bias
        assert got == pytest.approx(term, rel=1e-4, abs=1e-6)
    F, L, last = model.cfg.d_mlp, model.cfg.n_layers, TOKENS.shape[1] - 1
    every = [{1: torch.arange(F)}]
    got = ablated_answer_probs(model, TOKENS, ANSWER, last, every, torch.zeros(L, F))

    def zero_out(x: torch.Tensor, site: str) -> torch.Tensor:
        x = x.clone()
        x[:, last] = 0
        return x

    with torch.no_grad(), hooks(model, {"blocks.1.mlp.post": zero_out}):
        want = float(model(TOKENS)[0, -1].softmax(-1)[ANSWER])
    assert float(got[0]) == pytest.approx(want, rel=1e-5)


def test_answer_direction_reads_the_residual_stream(checkpoint) -> None:  # type: ignore[no-untyped-def]
    _, lm = checkpoint
    model = lm.model
    result = answer_projection(model, TOKENS, ANSWER)
    L = model.cfg.n_layers
    _, cache = run_with_cache(model, TOKENS, ["blocks.1.resid_pre", "final_norm"])
    u = model.unembed.weight[ANSWER]
    want = cache["blocks.1.resid_pre"][0] @ u / u.norm()
    torch.testing.assert_close(torch.tensor(result.projection[1]), want, atol=1e-4, rtol=1e-5)
    # the last row's lens logit is the model's own (before any final soft cap)
    torch.testing.assert_close(
        torch.tensor(result.lens_logit[L]), cache["final_norm"][0] @ u, atol=1e-4, rtol=1e-5
    )


def test_rome_edit_is_rank_one_and_undoes_exactly(text_lm: LoadedModel) -> None:

    lm = text_lm
    before = {k: v.clone() for k, v in lm.model.state_dict().items()}
    stats = tiny_stats(lm, [1])
    handle = edit(lm, EditRequest(PROMPT, "Michael Jordan", "plays"), "rome", layer=1,
                  hparams=FAST, stats=stats)  # fmt: skip
    s = torch.linalg.svdvals(handle.weight_change()[1])
    assert s[0] > 0 and s[1] / s[0] < 1e-5
    result = handle.results[0]
    stored = lm.model.blocks[1].mlp.down_proj.weight.detach().double() @ result.key.double()
    # W' k* = v*, up to the float32 rounding of W + ΔW
    assert float((stored - result.value.double()).norm() / result.value.double().norm()) < 1e-4
    handle.undo()
    after = lm.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_probe_activations_equal_the_plain_forward_pass(
    text_lm: LoadedModel, tmp_path: Path
) -> None:
    ds = tiny_dataset()
    facts = list(ds.records[:4])
    _, feats = collect_activations(text_lm, ds, facts, tmp_path, batch_size=3, progress=False)
    L = text_lm.cfg.n_layers
    sites = ["embed", *(f"blocks.{i}.resid_post" for i in range(L))]
    for i, fact in enumerate(facts):
        _, cache = run_with_cache(
            text_lm.model, text_lm.encode(ds.relation.few_shot + fact.prompt), sites
        )
        want = torch.stack([cache[s][0, -1] for s in sites])  # (L + 1, D)
        np.testing.assert_allclose(feats["final"][i], want, atol=1e-4, rtol=1e-4)


def test_a_torch_forward_hook_on_the_pattern_fires_in_training() -> None:
    """`HookPoint.hooked` is the one notion of a hooked site: a torch module hook on
    `attn.pattern` turns the fused-attention shortcut off just as a factscope hook does."""
    model = random_model("llama3").train()
    seen: list[tuple[int, ...]] = []
    point = model.hook_points["blocks.1.attn.pattern"]
    handle = point.register_forward_hook(lambda mod, args, out: seen.append(tuple(out.shape)))
    try:
        model(TOKENS).sum().backward()
    finally:
        handle.remove()
    assert seen == [(1, model.cfg.n_heads, TOKENS.shape[1], TOKENS.shape[1])]
    assert not point.hooked


def test_parameter_count_is_exact(checkpoint) -> None:  # type: ignore[no-untyped-def]
    _, lm = checkpoint
    assert count_params(lm.cfg).total == sum(p.numel() for p in lm.model.parameters())


# (family, config overrides, writer options): llama.cpp's Gemma 2 scales attention by
# 1/sqrt(head_dim), as its 2B and 9B do; Phi-3 with a partial rotary (Phi-4-mini's layout);
# GPT-2 as today's converter writes it (tied) and as older ones did (output.weight a copy)
GGUF_CASES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("llama3", {}, {}),
    ("qwen2", {}, {}),
    ("qwen3", {}, {}),
    ("phi3", {}, {}),
    ("phi3", {"partial_rotary_factor": 0.5}, {}),
    ("gemma2", {"query_pre_attn_scalar": 8}, {}),
    ("gpt2", {}, {}),
    ("gpt2", {}, {"gpt2_output_copy": True}),
]


@pytest.mark.parametrize(("family", "overrides", "options"), GGUF_CASES)
def test_gguf_file_of_the_family_matches_transformers(
    family: str, overrides: dict[str, Any], options: dict[str, Any], tmp_path: Path
) -> None:
    """The family's GGUF file, written from the transformers model as llama.cpp's
    convert_hf_to_gguf.py writes it (tests/tiny_checkpoints.py: gguf's own tensor-name map,
    Q/K permuted for llama, Gemma norms as 1 + w, GPT-2's Conv1D transposed, phi3's fused
    qkv and gate_up, Llama 3's scaling as rope_freqs, each family's metadata keys; none of
    factscope's conversion code), gives transformers' logits."""
    vocab = len(byte_level_metadata()["tokenizer.ggml.tokens"])
    hf = tiny_family_model(family, seed=2, vocab_size=vocab, **overrides)
    path = tmp_path / f"{family}.gguf"
    write_tiny_gguf(path, hf, quantize=False, **options)
    lm = load_model(path, use_cache=False)
    assert lm.cfg.family == hf.config.model_type
    assert lm.cfg.rope_freq_factors is not None or family != "llama3"
    assert lm.cfg.rotary_dims == ours_from_hf(hf).cfg.rotary_dims
    for batch, length in PROMPTS:
        tokens = torch.randint(
            0, vocab, (batch, length), generator=torch.Generator().manual_seed(4)
        )
        with torch.no_grad():
            assert relative_error(lm.model(tokens), hf(tokens).logits) < 1e-4, (batch, length)


@pytest.mark.parametrize("family", ["qwen2", "gpt2"])
def test_a_bfloat16_checkpoint_loads_as_bfloat16_unchanged(family: str, tmp_path: Path) -> None:
    """`dtype=bfloat16` keeps a bf16 checkpoint's tensors as stored (split and transposed
    where the family fuses them, never rounded through another dtype)."""
    hf = tiny_family_model(family, seed=4).to(torch.bfloat16)
    write_tiny_hf_folder(tmp_path / "model", hf)
    lm = load_model(tmp_path / "model", dtype=torch.bfloat16)
    assert {p.dtype for p in lm.model.parameters()} == {torch.bfloat16}
    saved = hf.state_dict()
    if family == "qwen2":
        want = saved["model.layers.1.self_attn.k_proj.bias"]
        got = lm.model.blocks[1].attn.k_proj.bias
    else:  # GPT-2: k is the middle third of the fused Conv1D c_attn, (in, out)
        want = saved["transformer.h.1.attn.c_attn.weight"].t()[32:64]
        got = lm.model.blocks[1].attn.k_proj.weight
    assert torch.equal(got, want)
    tokens = torch.randint(0, 97, (1, 9), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = hf(tokens).logits.float()
        assert relative_error(lm.model(tokens).float(), ref) < 3e-2  # bf16 rounding


@pytest.mark.parametrize(
    ("family", "stored", "loaded"),
    [("qwen2", torch.bfloat16, torch.float32), ("gemma2", torch.float16, torch.bfloat16)],
)
def test_a_checkpoint_converted_on_load_equals_its_weights_converted(
    family: str, stored: torch.dtype, loaded: torch.dtype, tmp_path: Path
) -> None:
    """Read in another dtype than stored, each matrix is converted from a private map of
    its shard whose pages are then released (weights/shards.py), vectors by the converter
    (a Gemma norm's 1 added before the one rounding): exactly the weights of the same
    checkpoint converted in memory."""
    hf = tiny_family_model(family, seed=6).to(stored)
    write_tiny_hf_folder(tmp_path / "model", hf)
    lm = load_model(tmp_path / "model", dtype=loaded)
    want = ours_from_hf(hf.float()).to(loaded).state_dict()
    got = lm.model.state_dict()
    assert set(got) == set(want)
    for name, tensor in got.items():
        assert tensor.dtype == loaded and torch.equal(tensor, want[name]), name


def test_the_forward_pass_never_reads_the_family_name(checkpoint) -> None:  # type: ignore[no-untyped-def]
    _, lm = checkpoint
    unnamed = dataclasses.replace(lm.cfg, family="unnamed")
    state = {
        k: v
        for k, v in lm.model.state_dict().items()
        if k != "unembed.weight" or not unnamed.tie_embeddings
    }
    renamed = Transformer.from_state_dict(unnamed, state).eval()
    tokens = torch.randint(0, 97, (2, 11), generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        assert torch.equal(renamed(tokens), lm.model(tokens))


def test_factscope_models_and_the_docs_list_every_family(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`factscope models --json` names every family the converter reads (GGUF where it
    reads llama.cpp's files of it), and docs/models.md's table has a row for each."""
    import json

    from factscope.cli import main
    from factscope.weights.convert import HF_FAMILIES, SUPPORTED_ARCHITECTURES

    assert main(["models", "--json"]) == 0
    listed = {row["family"]: row for row in json.loads(capsys.readouterr().out)["families"]}
    assert set(listed) == set(HF_FAMILIES)
    assert {f for f, row in listed.items() if row["gguf"]} == set(SUPPORTED_ARCHITECTURES)
    page = (Path(__file__).parents[1] / "docs" / "models.md").read_text(encoding="utf-8")
    for row in listed.values():
        cell = ", ".join(f"`{t}`" for t in row["model_types"])
        assert f"| {row['title']} | {cell} |" in page, row["title"]
    for family in ("llama3", "mistral", "qwen2", "qwen3", "gemma2", "gpt2", "gpt_neox"):
        assert family in FAMILY_NAMES  # each has a tiny model every capability runs on
