"""ROME on tiny seeded models: the update, its exactness, undo, save, statistics.

The tiny models are random, with PyTorch's default init for the linear layers (so each MLP
matters) and small embeddings (so the output is near uniform and an edit can move it), and
a hand-made tokenizer whose words ("▁Michael", "▁plays", ...) are single tokens.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from factscope.config import tiny_config
from factscope.edit import EditRequest, ROMEHyperParams, edit
from factscope.edit.corpus import Corpus, load_corpus
from factscope.edit.request import answer_ids, build_batch, context_templates, target_text
from factscope.edit.rome import compute_rome
from factscope.edit.stats import collect_key_stats, corpus_pieces, layer_stats
from factscope.edit.target import forward_from_layer, layer_start
from factscope.errors import FactscopeError
from factscope.hooks import hooks
from factscope.load import LoadedModel, load_model
from factscope.model import Transformer
from factscope.tokenizer import Tokenizer
from tokenizer_vocabs import gemma_like_metadata

PROMPT = "Fact Michael Jordan plays the sport of"
WORDS = ["Fact", "Michael", "Jordan", "plays", "the", "sport", "of"]
FAST = ROMEHyperParams(v_num_grad_steps=8, context_template_lengths=((3, 2), (5, 2)))
# A random model's MLP outputs are small next to its residual stream, and ROME's weight
# decay ‖δ‖/‖Wk‖² is not scale-free: for the tiny models the clamp and decay are relaxed.
TINY = ROMEHyperParams(v_weight_decay=1e-3, v_num_grad_steps=30, clamp_norm_factor=50)


def tiny_lm(family: str = "gemma3", seed: int = 0, n_layers: int = 4) -> LoadedModel:
    """A tiny random model with the gemma-like test tokenizer (BOS = 2, EOS = 1)."""
    meta = gemma_like_metadata()
    tokenizer = Tokenizer.from_gguf_metadata(meta)
    torch.manual_seed(seed)
    cfg = tiny_config(
        family, vocab_size=len(meta["tokenizer.ggml.tokens"]), n_layers=n_layers,
        bos_token_id=2, eos_token_id=1,
        **({"local_layers": ()} if family == "gemma3" else {}),
    )  # fmt: skip
    model = Transformer(cfg).eval()
    torch.nn.init.normal_(model.embedding.weight, std=0.3)
    return LoadedModel(f"tiny-{family}", model, tokenizer, Path("/nonexistent"))


def tiny_corpus(n_docs: int = 40, seed: int = 0) -> Corpus:
    generator = torch.Generator().manual_seed(seed)
    docs = tuple(
        " ".join(WORDS[i] for i in torch.randint(len(WORDS), (30,), generator=generator).tolist())
        for _ in range(n_docs)
    )
    return Corpus("tiny", docs)


def tiny_stats(lm: LoadedModel, layers: list[int]) -> dict:  # type: ignore[type-arg]
    return layer_stats(
        lm.model, lm.tokenizer, layers, tiny_corpus(), 1000, min_tokens=0,
        use_cache=False, progress=False,
    )  # fmt: skip


def p_answer(lm: LoadedModel, prompt: str, answer: str) -> float:
    """p(answer | prompt), length-normalised as CounterFact: exp(mean token log p)."""
    ids = answer_ids(lm.tokenizer, prompt, answer)
    tokens = torch.cat([lm.encode(prompt), torch.tensor([ids[:-1]], dtype=torch.long)], dim=1)
    T = lm.encode(prompt).shape[1]
    with torch.no_grad():
        log_p = torch.log_softmax(lm.model(tokens)[0].float(), dim=-1)
    return float(torch.stack([log_p[T - 1 + j, t] for j, t in enumerate(ids)]).mean().exp())


@pytest.mark.parametrize("family", ["gemma3", "llama"])
def test_rome_update_is_rank_one_and_stores_v_star_at_k_star(family: str) -> None:
    lm = tiny_lm(family)
    stats = tiny_stats(lm, [1])
    request = EditRequest(PROMPT, "Michael Jordan", "plays")
    handle = edit(lm, request, "rome", layer=1, hparams=FAST, stats=stats)
    delta = handle.weight_change()[1]
    s = torch.linalg.svdvals(delta)
    assert s[0] > 0 and s[1] / s[0] < 1e-5  # rank one (up to float32 rounding of W + ΔW)
    result = handle.results[0]
    W = lm.model.blocks[1].mlp.down_proj.weight.detach().double()
    stored = W @ result.key.double()
    rel = float((stored - result.value.double()).norm() / result.value.double().norm())
    assert rel < 1e-5  # W' k* = v*: the value is stored exactly at the averaged key
    # ΔW = Λ uᵀ with u = C⁻¹k* / (k*ᵀC⁻¹k*): keys with u·k = 0 are not moved at all
    u = result.u
    assert torch.allclose(
        u,
        torch.linalg.solve(stats[1].moment, result.key.double())
        / (result.key.double() @ torch.linalg.solve(stats[1].moment, result.key.double())),
    )
    other = torch.randn(u.shape[0], dtype=torch.float64)
    other -= (u @ other) / (u @ u) * u
    assert float((result.delta_weight @ other).norm()) < 1e-9 * float(result.lam.norm())


def test_the_fast_loop_equals_a_full_forward_with_the_value_hooked_in() -> None:
    """Recomputing only from the edit layer up and from each row's subject token on (δ on
    down_proj's output, before Gemma's post-norm; earlier positions' keys and values reused)
    gives the same final residuals as the whole model with δ hooked in."""
    lm = tiny_lm("gemma3", seed=2)
    model, layer = lm.model, 1
    contexts = context_templates(model, lm.tokenizer, ((3, 2),), seed=0)
    batch = build_batch(
        lm.tokenizer, contexts, PROMPT, "Michael Jordan", answer_ids(lm.tokenizer, PROMPT, "of"),
        ["{} is a"],
    )  # fmt: skip
    delta = torch.randn(model.cfg.d_model)
    with torch.no_grad():
        fast = forward_from_layer(
            model, batch, layer, layer_start(model, batch, layer, "mlp_down"), delta
        )
    keys: dict[str, torch.Tensor] = {}
    rows = torch.arange(batch.tokens.shape[0])
    mlp = model.blocks[layer].mlp

    def record_key(x: torch.Tensor, site: str) -> None:
        keys["k"] = x

    def replace_out(x: torch.Tensor, site: str) -> torch.Tensor:
        y = mlp.down_proj(keys["k"])
        y[rows, batch.lookup] += delta
        assert mlp.post_norm is not None
        return mlp.post_norm(y)

    final: dict[str, torch.Tensor] = {}
    last = f"blocks.{model.cfg.n_layers - 1}.resid_post"
    sites = {
        f"blocks.{layer}.mlp.post": record_key,
        f"blocks.{layer}.mlp.out": replace_out,
        last: lambda x, s: final.__setitem__("h", x),
    }
    with torch.no_grad(), hooks(model, sites):
        model(batch.tokens)
    for row, p in enumerate(batch.lookup.tolist()):  # from each row's lookup on (scored)
        torch.testing.assert_close(fast[row, p:], final["h"][row, p:], rtol=1e-5, atol=1e-5)
    assert len({p for p in batch.lookup.tolist()}) > 1  # several groups were exercised


def test_edit_makes_the_new_answer_more_likely_than_the_old() -> None:
    lm = tiny_lm("llama", seed=1)
    prompt, subject = PROMPT, "the sport of"  # subject at the end: a 4-layer random model
    # has no trained attention to carry a mid-prompt subject to the last token
    old = lm.tokenizer.token_str(int(lm.model(lm.encode(prompt))[0, -1].argmax())).strip()
    new = "plays" if old != "plays" else "Michael"
    assert p_answer(lm, prompt, new) < p_answer(lm, prompt, old)
    before = {n: p.detach().clone() for n, p in lm.model.state_dict().items()}
    # short prefixes: a random model's key at the subject moves far with each prefix of
    # random text, and the averaged key of long ones is far from the bare prompt's
    hp = replace(TINY, context_template_lengths=((2, 4), (3, 4)))
    handle = edit(lm, EditRequest(prompt, subject, new, old), "rome", layer=1,
                  hparams=hp, stats=tiny_stats(lm, [1]))  # fmt: skip
    assert p_answer(lm, prompt, new) > p_answer(lm, prompt, old)
    assert "final loss" in handle.results[0]._repr_html_() and "rome" in handle._repr_html_()
    handle.undo()
    after = lm.model.state_dict()
    assert all(torch.equal(before[n], after[n]) for n in before)  # bit-identical
    with pytest.raises(FactscopeError, match="already undone"):
        handle.undo()


def test_saved_edited_model_reloads_with_the_edited_predictions(tmp_path: Path) -> None:
    lm = tiny_lm("gemma3", seed=4)
    handle = edit(lm, EditRequest(PROMPT, "Michael Jordan", "plays"), "rome", layer=2,
                  hparams=FAST, stats=tiny_stats(lm, [2]))  # fmt: skip
    tokens = lm.encode(PROMPT)
    with torch.no_grad():
        edited = lm.model(tokens)
    path = handle.save(lm, tmp_path / "edited")
    with pytest.raises(FactscopeError, match="already exists"):
        handle.save(lm, tmp_path / "edited")
    reloaded = load_model(path)
    with torch.no_grad():
        again = reloaded.model(tokens)
    torch.testing.assert_close(again, edited, rtol=0, atol=0)
    handle.undo()
    with torch.no_grad():
        assert not torch.equal(lm.model(tokens), edited)


def test_context_templates_are_rome_s_twenty_prefixes_plus_the_bare_prompt() -> None:
    lm = tiny_lm("gemma3", seed=5)
    templates = context_templates(lm.model, lm.tokenizer)  # ROME: ten of 5, ten of 10 tokens
    assert templates[0] == "{}" and len(templates) == 21
    assert all(t.endswith(". {}") for t in templates[1:])
    assert templates == context_templates(lm.model, lm.tokenizer)  # cached, same prefixes


def test_answer_typed_by_a_person_gets_the_tokenizer_s_leading_space() -> None:
    assert target_text("plays the sport of", "baseball") == " baseball"
    assert target_text("plays the sport of ", "baseball") == "baseball"
    assert target_text("plays the sport of", " baseball") == " baseball"


@pytest.mark.parametrize(
    ("request_", "match"),
    [
        (EditRequest(PROMPT, "Tom Brady", "golf"), "does not occur in prompt"),
        (EditRequest(PROMPT, "Michael Jordan", "  "), "new answer is empty"),
        (EditRequest(PROMPT, "Michael Jordan", "golf", "golf"), "equals the old one"),
        (EditRequest(PROMPT, "", "golf"), "subject is empty"),
    ],
)
def test_bad_requests_are_one_line_errors(request_: EditRequest, match: str) -> None:
    lm = tiny_lm()
    with pytest.raises(FactscopeError, match=match):
        edit(lm, request_, "rome", layer=1, stats=tiny_stats(lm, [1]))


def test_bad_layer_and_method_are_errors() -> None:
    lm = tiny_lm()
    request = EditRequest(PROMPT, "Michael Jordan", "plays")
    with pytest.raises(FactscopeError, match="layer 9 is out of range"):
        edit(lm, request, "rome", layer=9)
    with pytest.raises(FactscopeError, match="unknown edit method 'grace'"):
        edit(lm, request, "grace", layer=1)
    with pytest.raises(FactscopeError, match="layer -1 is out of range"):
        compute_rome(lm, request, -1, None)


# ---- statistics -----------------------------------------------------------------------------


def test_key_statistics_equal_the_explicit_sum_over_the_corpus_keys() -> None:
    lm = tiny_lm("gemma3", seed=6)
    corpus = tiny_corpus(12)
    stats = collect_key_stats(
        lm.model, lm.tokenizer, [0, 2], corpus, 300, seq_len=16, progress=False
    )
    pieces = corpus_pieces(lm.tokenizer, corpus, 300, 16)
    keys: dict[str, torch.Tensor] = {}

    def record(x: torch.Tensor, site: str) -> None:
        keys["k"] = x

    for layer in (0, 2):
        total = torch.zeros(lm.cfg.d_mlp, lm.cfg.d_mlp, dtype=torch.float64)
        count = 0
        for piece in pieces:
            with torch.no_grad(), hooks(lm.model, {f"blocks.{layer}.mlp.post": record}):
                lm.model(torch.tensor([piece]))
            k = keys["k"][0, 1:].double()  # BOS left out
            total += k.T @ k
            count += k.shape[0]
        assert stats[layer].count == count == 300
        torch.testing.assert_close(stats[layer].sum, total, rtol=1e-5, atol=1e-6)


def test_statistics_are_cached_per_model_layer_and_corpus(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FACTSCOPE_CACHE", str(tmp_path))
    lm = tiny_lm("llama", seed=7)
    first = layer_stats(
        lm.model, lm.tokenizer, [1], tiny_corpus(), 500, min_tokens=0, progress=False
    )
    files = list((tmp_path / "edit-stats").glob("*.pt"))
    assert len(files) == 1
    again = layer_stats(
        lm.model, lm.tokenizer, [1], tiny_corpus(), 500, min_tokens=0, progress=False
    )
    assert torch.equal(first[1].sum, again[1].sum)
    layer_stats(lm.model, lm.tokenizer, [1], tiny_corpus(seed=1), 500, min_tokens=0, progress=False)
    with torch.no_grad():
        lm.model.blocks[0].mlp.up_proj.weight.mul_(1.01)  # other weights, other statistics
    layer_stats(lm.model, lm.tokenizer, [1], tiny_corpus(), 500, min_tokens=0, progress=False)
    assert len(list((tmp_path / "edit-stats").glob("*.pt"))) == 3


def test_too_small_or_missing_corpus_is_an_error(tmp_path: Path) -> None:
    lm = tiny_lm()
    with pytest.raises(FactscopeError, match="fewer than"):
        layer_stats(
            lm.model, lm.tokenizer, [1], tiny_corpus(2), 5000, min_tokens=0, use_cache=False
        )
    with pytest.raises(FactscopeError, match="too few"):
        layer_stats(lm.model, lm.tokenizer, [1], tiny_corpus(), 5000, use_cache=False)
    with pytest.raises(FactscopeError, match="is not a file"):
        load_corpus(tmp_path / "missing.txt")


def test_self_corpus_is_written_once_per_model_cached_and_resumed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from factscope.edit.corpus import SEEDS, self_corpus

    monkeypatch.setenv("FACTSCOPE_CACHE", str(tmp_path))
    lm = tiny_lm("llama", seed=9)
    first = self_corpus(lm, 300, progress=False)
    assert first.n_tokens(lm.tokenizer) >= 300
    assert all(doc.startswith(seed) for doc, seed in zip(first.documents, SEEDS, strict=False))
    [cached] = list((tmp_path / "edit-corpus").glob("*.jsonl"))
    lines = cached.read_text().splitlines()
    cached.write_text("\n".join(lines[:-3]) + "\n" + lines[-3][:10])  # "killed" mid-write
    again = self_corpus(lm, 300, progress=False)  # resumes: regenerates the cut chunk
    assert again.documents == first.documents  # each chunk has its own seeded generator
    more = self_corpus(lm, 600, progress=False)
    assert more.documents[: len(first.documents)] == first.documents


@pytest.mark.parametrize("family", ["llama", "gemma3"])
def test_batched_continuations_equal_each_prompt_alone(family: str) -> None:
    """Prompts of different lengths share a batch (the longer ones fed their own tokens
    while the shorter ones already generate): greedy, each row equals its prompt alone."""
    from factscope.edit.corpus import sample_continuations
    from factscope.generate import Sampling, generate_tokens

    lm = tiny_lm(family, seed=4)
    prompts = ["Michael", "Michael Jordan plays the sport", "Fact plays", "the sport of"]
    batched = sample_continuations(lm, prompts, 6, Sampling(), batch_size=3)
    for prompt, ids in zip(prompts, batched, strict=True):
        alone = list(generate_tokens(lm.model, lm.encode(prompt), 6, Sampling()))
        eos = lm.cfg.eos_token_id
        assert ids == (alone[: alone.index(eos)] if eos in alone else alone)
