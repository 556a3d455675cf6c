"""The forward pass's shortcuts change no number (beyond float rounding, where they say so).

- rotary tables computed once per pass (`RotaryTables`) equal those computed per layer;
- grouped-query attention without copying K/V equals the textbook repeat-and-matmul;
- a HookPoint with nothing attached is skipped, yet torch's own module hooks still run;
- linear layers computed by oneDNN (float32 CPU inference) equal F.linear to float rounding;
- in training mode their gradients (oneDNN too) equal F.linear's to float rounding;
- RoPE written with one roll equals the textbook (-x2, x1) rotation bit for bit.
"""

from __future__ import annotations

import platform
import threading

import pytest
import torch

from factscope.hooks import hooks, run_with_cache
from factscope.model import Linear
from factscope.onednn import onednn_available
from factscope.rotary import RotaryTables, rotary_cos_sin
from reference_models import random_model

FAMILIES = ["llama", "gemma3"]


def _per_layer_tables(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every layer compute its own tables, as before the cache."""
    monkeypatch.setattr(
        RotaryTables,
        "get",
        lambda self, positions, *rope: rotary_cos_sin(positions, *rope),
    )


@pytest.mark.parametrize("family", FAMILIES)
def test_shared_rotary_tables_are_bit_identical(
    family: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = random_model(family)
    tokens = torch.randint(0, 97, (2, 11))  # longer than gemma3's window of 4
    with torch.no_grad():
        shared = model(tokens)
        _per_layer_tables(monkeypatch)
        per_layer = model(tokens)
    assert torch.equal(shared, per_layer)


def test_rotary_tables_live_for_one_pass() -> None:
    tables = RotaryTables()
    positions = torch.arange(5)
    with tables.one_pass():
        first = tables.get(positions, 8, 10_000.0, 1.0)
        assert tables.get(positions, 8, 10_000.0, 1.0)[0] is first[0]  # reused
        assert tables.get(positions, 8, 1e6, 1.0)[0] is not first[0]  # another base
    later = tables.get(positions + 3, 8, 10_000.0, 1.0)  # outside a pass: computed afresh
    torch.testing.assert_close(later[0], rotary_cos_sin(positions + 3, 8, 10_000.0)[0])


def test_a_pass_inside_a_hook_keeps_its_own_tables() -> None:
    """A hook that runs the model on other positions mid-pass does not disturb the pass."""
    model = random_model("gemma3")
    tokens, other = torch.randint(0, 97, (1, 9)), torch.randint(0, 97, (1, 5))
    inner: list[torch.Tensor] = []

    def run_other(x: torch.Tensor, site: str) -> None:
        if x.shape[1] == tokens.shape[1]:  # the outer pass only, not the inner one
            inner.append(model(other))

    with torch.no_grad():
        expected, expected_other = model(tokens), model(other)
        with hooks(model, {"blocks.1.resid_pre": run_other}):
            got = model(tokens)
    assert torch.equal(inner[0], expected_other)
    assert torch.equal(expected, got)


def test_concurrent_passes_do_not_share_tables() -> None:
    model = random_model("gemma3")
    prompts = [torch.randint(0, 97, (1, n)) for n in (3, 7, 12, 5)]
    with torch.no_grad():
        expected = [model(p) for p in prompts]
    results: dict[int, torch.Tensor] = {}

    def run(i: int) -> None:
        with torch.no_grad():
            for _ in range(5):
                results[i] = model(prompts[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(prompts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, want in enumerate(expected):
        assert torch.equal(results[i], want)


@pytest.mark.parametrize("family", FAMILIES)
def test_grouped_attention_equals_repeated_kv(family: str) -> None:
    """Pattern and z of every layer, recomputed from the hooked q, k, v the textbook way:
    repeat each key/value head for its query heads, softmax(q k^T * scale + mask) v."""
    model = random_model(family)
    cfg = model.cfg
    assert cfg.n_kv_heads < cfg.n_heads  # the tiny models have grouped heads
    tokens = torch.randint(0, 97, (2, 9))
    _, cache = run_with_cache(model, tokens)
    group = cfg.n_heads // cfg.n_kv_heads
    T = tokens.shape[1]
    for layer in range(cfg.n_layers):
        site = f"blocks.{layer}.attn"
        q = cache[f"{site}.q"].transpose(1, 2)  # (B, H, T, dh)
        k = cache[f"{site}.k"].transpose(1, 2).repeat_interleave(group, dim=1)  # (B, H, T, dh)
        v = cache[f"{site}.v"].transpose(1, 2).repeat_interleave(group, dim=1)
        scores = q @ k.transpose(2, 3) * cfg.softmax_scale
        distance = torch.arange(T)[:, None] - torch.arange(T)[None, :]
        allowed = distance >= 0
        if cfg.is_local(layer) and cfg.sliding_window is not None:
            allowed &= distance < cfg.sliding_window
        pattern = scores.masked_fill(~allowed, float("-inf")).softmax(-1)
        torch.testing.assert_close(cache[f"{site}.pattern"], pattern, rtol=0, atol=1e-6)
        z = (pattern @ v).transpose(1, 2)  # (B, T, H, dh)
        torch.testing.assert_close(cache[f"{site}.z"], z, rtol=0, atol=1e-6)


def test_torch_module_hooks_on_a_site_still_run() -> None:
    model = random_model("llama")
    point = model.hook_points["blocks.1.mlp.post"]
    seen: list[tuple[int, ...]] = []
    handle = point.register_forward_hook(lambda module, args, out: seen.append(tuple(out.shape)))
    try:
        with torch.no_grad():
            model(torch.randint(0, 97, (1, 6)))
    finally:
        handle.remove()
    assert seen == [(1, 6, model.cfg.d_mlp)]


def _logits(model: torch.nn.Module, tokens: torch.Tensor, onednn: bool) -> torch.Tensor:
    previous = Linear.onednn
    Linear.onednn = onednn
    try:
        with torch.no_grad():
            return model(tokens)
    finally:
        Linear.onednn = previous


@pytest.mark.parametrize("family", FAMILIES)
def test_onednn_linear_equals_f_linear(family: str) -> None:
    model = random_model(family)
    if platform.machine().lower() in ("x86_64", "amd64"):
        assert onednn_available()  # x86 wheels of torch ship oneDNN: the fast path is tested
    if not onednn_available():  # both paths would be F.linear: nothing to compare
        pytest.skip("no oneDNN linear on this CPU; the model runs F.linear only")
    tokens = torch.randint(0, 97, (2, 9))
    fast, plain = _logits(model, tokens, True), _logits(model, tokens, False)
    torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-5)
    assert torch.equal(fast.argmax(-1), plain.argmax(-1))


def test_onednn_linear_sees_in_place_weight_edits() -> None:
    """Editing a weight in place (as ROME does) changes the next forward on either path."""
    model = random_model("llama")
    tokens = torch.randint(0, 97, (1, 6))
    before = _logits(model, tokens, True)
    with torch.no_grad():
        model.blocks[1].mlp.down_proj.weight.mul_(-3.0)
    after = _logits(model, tokens, True)
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, _logits(model, tokens, False), rtol=1e-5, atol=1e-5)


def test_gradients_flow_through_linear_layers() -> None:
    """With autograd recording, the layers fall back to F.linear: exact gradients."""
    model = random_model("gemma3")
    tokens = torch.randint(0, 97, (1, 6))
    grads = []
    for onednn in (True, False):
        Linear.onednn = onednn
        try:
            model.zero_grad()
            model(tokens)[0, -1, 3].backward()
        finally:
            Linear.onednn = True
        grads.append(model.blocks[0].attn.q_proj.weight.grad.clone())
    assert grads[0].abs().sum() > 0
    assert torch.equal(grads[0], grads[1])


def test_training_mode_linear_gradients_equal_f_linear() -> None:
    """model.train(): products and both gradients by oneDNN, equal to F.linear's to rounding;
    Linear.onednn = False gives F.linear's exactly."""
    if not onednn_available():  # both runs would be F.linear: nothing to compare
        pytest.skip("no oneDNN linear on this CPU; training runs F.linear only")
    model = random_model("llama").train()
    tokens = torch.randint(0, 97, (2, 7), generator=torch.Generator().manual_seed(1))
    grads = []
    for onednn in (True, False):
        Linear.onednn = onednn
        try:
            model.zero_grad()
            model(tokens).logsumexp(-1).mean().backward()
        finally:
            Linear.onednn = True
        grads.append([p.grad.clone() for p in model.parameters() if p.grad is not None])
    if onednn_available():
        probe = torch.randn(3, model.cfg.d_model, requires_grad=True)
        grad_fn = model.blocks[0].attn.q_proj(probe).grad_fn
        assert type(grad_fn).__name__ == "OneDNNLinearBackward"  # the fast path ran
    assert len(grads[0]) == len(grads[1]) > 10
    for fast, plain in zip(grads[0], grads[1], strict=True):
        torch.testing.assert_close(fast, plain, rtol=1e-4, atol=1e-6)


def test_rotary_roll_equals_the_textbook_rotation() -> None:
    from factscope.rotary import apply_rotary

    cos, sin = rotary_cos_sin(torch.arange(3, 20), 16, 10_000.0)
    for dtype in (torch.float32, torch.bfloat16):
        x = torch.randn(2, 17, 3, 16).to(dtype)
        half = 8
        textbook = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
        want = x * cos[None, :, None].to(dtype) + textbook * sin[None, :, None].to(dtype)
        assert torch.equal(apply_rotary(x, cos, sin), want)
