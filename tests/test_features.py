"""Sparse dictionaries on tiny data: TopK sparsity, unit decoder rows, a planted dictionary
recovered, splicing, bit-exact formats and resumable training."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from factscope.features.activations import MemoryStore, ShuffledBatches, layer_activations
from factscope.features.formats import (
    load_dictionary,
    load_gemma_scope,
    load_saelens,
    save_gemma_scope,
    save_saelens,
)
from factscope.features.metrics import ce_losses, reconstruction_metrics, splice
from factscope.features.sae import SAEConfig, SparseDictionary, dictionary_loss, geometric_median
from factscope.features.train import TrainConfig, train_dictionary
from factscope.load import LoadedModel, load_model
from tiny_checkpoints import tiny_hf_for_gguf, write_tiny_gguf
from tiny_saes import random_sae


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """These dictionaries are tiny: one thread, so that a shared machine's thread
    contention does not multiply each step's time."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def planted(n: int = 12_288, d: int = 24, n_true: int = 48, active: int = 3, seed: int = 0):
    """Activations made as sparse sums of known unit directions: (x (n, d), directions)."""
    gen = torch.Generator().manual_seed(seed)
    directions = torch.randn(n_true, d, generator=gen)
    directions /= directions.norm(dim=1, keepdim=True)
    which = torch.rand(n, n_true, generator=gen).argsort(dim=1)[:, :active]
    coef = torch.zeros(n, n_true).scatter(1, which, 0.5 + torch.rand(n, active, generator=gen))
    return coef @ directions, directions


def test_topk_keeps_exactly_k_active() -> None:
    sae = random_sae("topk", k=5)
    x = torch.randn(200, 16) + 3.0  # shifted so that the top 5 pre-activations are positive
    with torch.no_grad():
        sae.b_enc.fill_(10.0)
        latents = sae.encode(x)
    assert ((latents != 0).sum(1) == 5).all()
    # and they are the five largest pre-activations
    pre = sae.pre_acts(x)
    top = pre.topk(5, dim=1).indices.sort(1).values
    assert torch.equal((latents != 0).nonzero()[:, 1].view(200, 5).sort(1).values, top)


def test_decoder_rows_stay_unit_norm_after_steps(tmp_path: Path) -> None:
    x, _ = planted(n=2048)
    batches = ShuffledBatches(MemoryStore({"resid": x}, 512), ["resid"], 128)
    cfg = SAEConfig(d_in=24, d_sae=64, kind="topk", k=4)
    sae, _ = train_dictionary(
        cfg, TrainConfig(n_steps=30, warmup_steps=1), batches, tmp_path, progress=False
    )
    norms = sae.W_dec.norm(dim=1)
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-5)
    assert not torch.allclose(sae.W_dec, SparseDictionary(cfg).W_dec)  # it did move


def test_planted_dictionary_is_recovered(tmp_path: Path) -> None:
    """Each true direction has a learned decoder row with cosine >= 0.9."""
    x, directions = planted()
    batches = ShuffledBatches(MemoryStore({"resid": x}, 4096), ["resid"], 256, group=3)
    cfg = SAEConfig(d_in=24, d_sae=96, kind="topk", k=3)
    tc = TrainConfig(
        n_steps=1500, lr=3e-3, warmup_steps=20, dead_after_tokens=2048, checkpoint_every=10_000
    )
    sae, history = train_dictionary(cfg, tc, batches, tmp_path, progress=False)
    folded = sae.fold_scales()
    rows = folded.W_dec / folded.W_dec.norm(dim=1, keepdim=True)
    best = (directions @ rows.T).max(dim=1).values
    assert best.min() >= 0.9, best.sort().values[:5]
    assert history[-1]["fvu"] < 0.1


@pytest.mark.parametrize("kind", ["jumprelu", "relu"])
def test_other_kinds_learn(kind: str, tmp_path: Path) -> None:
    x, _ = planted(n=4096)
    batches = ShuffledBatches(MemoryStore({"resid": x}, 4096), ["resid"], 256)
    cfg = SAEConfig(d_in=24, d_sae=96, kind=kind)
    tc = TrainConfig(n_steps=300, lr=3e-3, warmup_steps=10, l1_coefficient=0.3, l0_coefficient=1e-3)
    _, history = train_dictionary(cfg, tc, batches, tmp_path, progress=False)
    assert history[-1]["fvu"] < 0.5 * history[0]["fvu"]
    assert history[-1]["l0"] < 96 / 2


def test_geometric_median_ignores_an_outlier() -> None:
    x = torch.cat([torch.randn(99, 3) * 0.01, torch.full((1, 3), 1000.0)])
    assert geometric_median(x).abs().max() < 0.1
    assert x.mean(0).abs().max() > 5


def test_aux_loss_reaches_dead_latents() -> None:
    sae = random_sae("topk", k=2)
    x = torch.randn(64, 16)
    dead = torch.zeros(40, dtype=torch.bool)
    dead[:10] = True
    losses = dictionary_loss(sae, x, x, dead=dead)
    assert losses.aux > 0
    losses.aux.backward()
    assert sae.W_dec.grad is not None
    assert sae.W_dec.grad[:10].abs().sum() > 0 and sae.W_dec.grad[10:].abs().sum() == 0


@pytest.mark.parametrize("transcoder", [False, True])
def test_sparse_topk_step_equals_the_dense_one(transcoder: bool) -> None:
    """The k-sparse training path (chosen pre-activations, embedding-bag decoder, sparse
    gradients) gives the loss terms, fired latents and every gradient of the dense
    reference that builds (N, d_sae) latents, AuxK included."""
    d_out = 12 if transcoder else None
    cfg = SAEConfig(d_in=16, d_sae=64, kind="topk", k=4, d_out=d_out, transcoder=transcoder)
    sae = SparseDictionary(cfg)
    gen = torch.Generator().manual_seed(3)
    sae.init_weights(seed=1, b_dec=torch.randn(cfg.out_dim, generator=gen) * 0.1)
    x = torch.randn(50, 16, generator=gen)
    target = torch.randn(50, cfg.out_dim, generator=gen) if transcoder else x
    dead = torch.rand(64, generator=gen) < 0.5
    runs = []
    for sparse in (True, False):
        sae.zero_grad(set_to_none=True)
        losses = dictionary_loss(sae, x, target, dead=dead, sparse=sparse)
        losses.total.backward()
        grads = {name: p.grad.clone() for name, p in sae.named_parameters() if p.grad is not None}
        runs.append((losses, grads))
    (fast, fast_grads), (ref, ref_grads) = runs
    assert float(ref.aux.detach()) > 0
    for term in ("mse", "aux", "l0"):
        torch.testing.assert_close(getattr(fast, term), getattr(ref, term))
    assert torch.equal(fast.fired, ref.fired)
    assert fast_grads.keys() == ref_grads.keys() >= {"W_enc", "b_enc", "W_dec", "b_dec"}
    for name, grad in ref_grads.items():
        torch.testing.assert_close(fast_grads[name], grad, rtol=1e-5, atol=1e-6)


def test_killed_training_resumes_to_the_same_weights(tmp_path: Path) -> None:
    x, _ = planted(n=4096)
    store = MemoryStore({"resid": x}, 1024)
    cfg = SAEConfig(d_in=24, d_sae=64, kind="topk", k=4)
    tc = TrainConfig(n_steps=60, warmup_steps=5, checkpoint_every=20, dead_after_tokens=1024)
    whole, hist_whole = train_dictionary(
        cfg, tc, ShuffledBatches(store, ["resid"], 128, group=2), tmp_path / "a", progress=False
    )
    # killed at step 47: the checkpoint of step 40 is on disk, steps 41-47 are lost
    train_dictionary(
        cfg,
        tc,
        ShuffledBatches(store, ["resid"], 128, group=2),
        tmp_path / "b",
        progress=False,
        stop_at=47,
    )
    state = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)
    assert state["step"] == 40
    resumed, hist_resumed = train_dictionary(
        cfg, tc, ShuffledBatches(store, ["resid"], 128, group=2), tmp_path / "b", progress=False
    )
    for name, p in whole.state_dict().items():
        assert torch.equal(p, resumed.state_dict()[name]), name
    assert hist_whole == hist_resumed


def test_batches_depend_only_on_the_step() -> None:
    x = torch.arange(3000.0)[:, None].repeat(1, 2)
    a = ShuffledBatches(MemoryStore({"resid": x}, 500), ["resid"], 100, seed=1, group=2)
    b = ShuffledBatches(MemoryStore({"resid": x}, 500), ["resid"], 100, seed=1, group=2)
    assert torch.equal(a.batch(37)["resid"], b.batch(37)["resid"])
    epoch = torch.cat([a.batch(s)["resid"][:, 0] for s in range(a.batches_per_epoch)])
    assert torch.equal(epoch.sort().values, torch.arange(3000.0))  # every token once


# ---- formats ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["topk", "jumprelu", "relu"])
def test_saelens_round_trip_is_bit_exact(kind: str, tmp_path: Path) -> None:
    sae = random_sae(kind)
    save_saelens(sae, tmp_path / "sae")
    back = load_saelens(tmp_path / "sae")
    assert back.cfg == sae.cfg
    for name in ("W_enc", "b_enc", "W_dec", "b_dec") + (
        ("threshold",) if kind == "jumprelu" else ()
    ):
        assert torch.equal(getattr(back, name), getattr(sae, name)), name
    x = torch.randn(10, 16)
    assert torch.equal(back(x), sae(x))


def test_saelens_folder_written_by_the_documented_layout(tmp_path: Path) -> None:
    """A folder as SAELens writes it (no factscope fields) loads with its config read."""
    import json

    from safetensors.torch import save_file

    gen = torch.Generator().manual_seed(1)
    w = {
        "W_enc": torch.randn(16, 40, generator=gen),
        "b_enc": torch.randn(40, generator=gen),
        "W_dec": torch.randn(40, 16, generator=gen),
        "b_dec": torch.randn(16, generator=gen),
    }
    folder = tmp_path / "sl"
    folder.mkdir()
    save_file(w, str(folder / "sae_weights.safetensors"))
    cfg = {
        "architecture": "topk",
        "d_in": 16,
        "d_sae": 40,
        "hook_name": "blocks.3.hook_resid_post",
        "hook_layer": 3,
        "activation_fn_kwargs": {"k": 7},
        "apply_b_dec_to_input": True,
        "model_name": "gemma-3-270m",
        "dtype": "float32",
    }
    (folder / "cfg.json").write_text(json.dumps(cfg))
    sae = load_saelens(folder)
    assert (sae.cfg.kind, sae.cfg.k, sae.cfg.layer, sae.cfg.site) == ("topk", 7, 3, "resid")
    assert torch.equal(sae.W_enc, w["W_enc"]) and torch.equal(sae.b_dec, w["b_dec"])
    x = torch.randn(5, 16, generator=gen)
    pre = (x - w["b_dec"]) @ w["W_enc"] + w["b_enc"]
    assert ((sae.encode(x) > 0).sum(1) <= 7).all()
    assert torch.allclose(sae.pre_acts(x), pre)


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_gemma_scope_round_trip_and_documented_layout(suffix: str, tmp_path: Path) -> None:
    import numpy as np

    gen = np.random.default_rng(0)
    params = {
        "W_enc": gen.normal(size=(16, 40)),
        "W_dec": gen.normal(size=(40, 16)),
        "b_enc": gen.normal(size=40),
        "b_dec": gen.normal(size=16),
        "threshold": gen.uniform(0.05, 0.3, size=40),
    }
    params = {k: v.astype(np.float32) for k, v in params.items()}
    path = tmp_path / f"params{suffix}"
    if suffix == ".npz":
        np.savez(path, **params)
    else:
        from safetensors.numpy import save_file

        save_file(params, str(path))
    sae = load_gemma_scope(path, layer=6, site="resid")
    x = np.random.default_rng(1).normal(size=(8, 16)).astype(np.float32)
    pre = x @ params["W_enc"] + params["b_enc"]
    acts = pre * (pre > params["threshold"])
    expected = acts @ params["W_dec"] + params["b_dec"]  # Gemma Scope's JumpReLU
    got = sae(torch.from_numpy(x)).detach().numpy()
    assert np.allclose(got, expected, atol=1e-4)
    save_gemma_scope(sae, tmp_path / f"again{suffix}")
    back = load_dictionary(tmp_path / f"again{suffix}", layer=6, site="resid")
    for name in ("W_enc", "b_enc", "W_dec", "b_dec", "threshold"):
        assert torch.equal(getattr(back, name), getattr(sae, name))
        assert np.array_equal(getattr(back, name).detach().numpy(), params[name])


def test_folded_scales_give_the_same_map() -> None:
    sae = random_sae("topk")
    with torch.no_grad():
        sae.in_scale.fill_(3.5)
        sae.out_scale.fill_(3.5)
    x = torch.randn(20, 16)
    assert torch.allclose(sae.fold_scales()(x), sae(x), atol=1e-5)


# ---- on a tiny model: activations, splicing, CE -------------------------------------------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    path = Path(tmp_path_factory.mktemp("tiny")) / "tiny.gguf"
    write_tiny_gguf(path, tiny_hf_for_gguf("gemma3", seed=3))
    return load_model(path)


class Identity(SparseDictionary):
    """A dictionary whose reconstruction is its input: the splice must change nothing."""

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return latents


@pytest.mark.parametrize("site", ["resid", "mlp-out", "transcoder"])
def test_splice_of_the_identity_is_the_clean_forward(tiny: LoadedModel, site: str) -> None:
    d = tiny.cfg.d_model
    cfg = SAEConfig(
        d_in=d,
        d_sae=d,
        layer=1,
        site="mlp-out" if site == "transcoder" else site,
        transcoder=site == "transcoder",
        k=1,
    )
    tokens = tiny.encode("Fact Michael Jordan plays the sport of")
    clean = tiny.model(tokens)
    if site == "transcoder":  # the identity on the MLP: its input through the MLP itself
        import copy

        mlp = copy.deepcopy(tiny.model.blocks[1].mlp)  # a copy: the hooked one would recurse

        class MLPAsTranscoder(Identity):
            def decode(self, latents: torch.Tensor) -> torch.Tensor:
                return mlp(latents)

        sae: SparseDictionary = MLPAsTranscoder(cfg)
    else:
        sae = Identity(cfg)
    with torch.no_grad(), splice(tiny.model, sae):
        spliced = tiny.model(tokens)
    assert torch.equal(spliced, clean)


def test_ce_losses_agree_with_the_hooked_splice(tiny: LoadedModel) -> None:
    import torch.nn.functional as F

    d = tiny.cfg.d_model
    sae = random_sae("topk", d_in=d, d_sae=3 * d, k=4).with_cfg(layer=1, site="resid")
    tokens = torch.randint(3, tiny.cfg.vocab_size, (3, 12))
    tokens[:, 0] = tiny.tokenizer.bos_id
    ce = ce_losses(tiny.model, sae, tokens)
    with torch.no_grad():
        clean = tiny.model(tokens)[:, :-1]
        with splice(tiny.model, sae):
            spliced = tiny.model(tokens)[:, :-1]
    target = tokens[:, 1:].reshape(-1)
    for name, logits in (("clean", clean), ("spliced", spliced)):
        ref = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target)
        assert abs(ce[name] - float(ref)) < 1e-4, name
    assert ce["zero"] != ce["clean"]


def test_layer_activations_match_the_full_forward(tiny: LoadedModel) -> None:
    from factscope.hooks import run_with_cache

    tokens = tiny.encode("Fact Michael Jordan plays the sport of")
    acts = layer_activations(tiny.model, tokens, 1)
    _, cache = run_with_cache(tiny.model, tokens, ["blocks.1.resid_post", "blocks.1.mlp.out"])
    assert torch.equal(acts["resid"], cache["blocks.1.resid_post"])
    assert torch.equal(acts["mlp-out"], cache["blocks.1.mlp.out"])


def test_reconstruction_metrics_of_a_perfect_dictionary() -> None:
    sae = Identity(SAEConfig(d_in=8, d_sae=8, k=1))
    x = torch.randn(100, 8)
    m = reconstruction_metrics(sae, MemoryStore({"resid": x}, 30))
    assert m.explained_variance == pytest.approx(1.0) and m.mse == pytest.approx(0.0)
    assert m.n_tokens == 100
