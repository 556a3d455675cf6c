"""The same numbers on an accelerator as on the CPU (skipped where there is none).

CI has no GPU; these run wherever `torch.cuda.is_available()` (or MPS) holds, e.g.
`pytest tests/test_device.py` on a GPU machine.
"""

from __future__ import annotations

import pytest
import torch

from factscope.generate import generate_tokens
from factscope.locate.patch import patch_activations
from factscope.locate.trace import trace_fact
from factscope.model import Transformer
from reference_models import ours_from_hf, relative_error, tiny_hf_model

DEVICES = [
    d
    for d, ok in [
        ("cuda", torch.cuda.is_available()),
        ("mps", torch.backends.mps.is_available()),
    ]
    if ok
]
pytestmark = pytest.mark.skipif(not DEVICES, reason="no CUDA or MPS device here")
FAMILIES = ["llama", "gemma3"]


def _pair(family: str, device: str) -> tuple[Transformer, Transformer]:
    cpu = ours_from_hf(tiny_hf_model(family, seed=1))
    accel = ours_from_hf(tiny_hf_model(family, seed=1)).to(device)
    return cpu, accel


@pytest.mark.parametrize("device", DEVICES or ["none"])
@pytest.mark.parametrize("family", FAMILIES)
def test_logits_match_cpu(family: str, device: str) -> None:
    cpu, accel = _pair(family, device)
    tokens = torch.randint(
        0, cpu.cfg.vocab_size, (3, 11), generator=torch.Generator().manual_seed(0)
    )
    with torch.no_grad():
        expected = cpu(tokens)
        got = accel(tokens.to(device)).cpu()
    # TF32 may be on for CUDA matmuls; our model asks for float32 throughout
    assert relative_error(got, expected) < 1e-4


@pytest.mark.parametrize("device", DEVICES or ["none"])
@pytest.mark.parametrize("family", FAMILIES)
def test_cached_generation_matches_cpu(family: str, device: str) -> None:
    cpu, accel = _pair(family, device)
    prompt = torch.tensor([[1, 5, 9, 2, 7]])
    expected = list(generate_tokens(cpu, prompt, 8))
    assert list(generate_tokens(accel, prompt.to(device), 8)) == expected
    assert list(generate_tokens(accel, prompt.to(device), 8, use_cache=False)) == expected


@pytest.mark.parametrize("device", DEVICES or ["none"])
def test_trace_matches_cpu(device: str) -> None:
    """Noise is drawn on the CPU from the seed, so both devices trace the same corruption."""
    cpu, accel = _pair("gemma3", device)
    tokens = torch.tensor([[2, 11, 12, 13, 14, 15, 16]])
    args = dict(subject_span=(1, 3), answer_id=17, samples=3, window=2, noise_std=0.5, seed=4)
    expected = trace_fact(cpu, tokens, **args)  # type: ignore[arg-type]
    got = trace_fact(accel, tokens.to(device), **args)  # type: ignore[arg-type]
    for kind in expected:
        e, g = torch.tensor(expected[kind].scores), torch.tensor(got[kind].scores)
        assert torch.allclose(g, e, atol=1e-5), kind


@pytest.mark.parametrize("device", DEVICES or ["none"])
def test_patch_matches_cpu(device: str) -> None:
    cpu, accel = _pair("llama", device)
    clean, corrupt = torch.tensor([[1, 4, 5, 6, 7]]), torch.tensor([[1, 8, 9, 6, 7]])
    expected = patch_activations(cpu, clean, corrupt, (10, 11))
    got = patch_activations(accel, clean.to(device), corrupt.to(device), (10, 11))
    for kind in expected.scores:
        e = torch.tensor(expected.logit_diffs[kind])
        g = torch.tensor(got.logit_diffs[kind])
        assert torch.allclose(g, e, atol=1e-4), kind
