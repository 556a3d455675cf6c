"""The frozen RMS scale is the norm's own division: x * scale * weight is the norm's output."""

from __future__ import annotations

import torch

from factscope.model import RMSNorm
from factscope.norms import frozen_rms_scale


def test_frozen_scale_reproduces_the_norm() -> None:
    torch.manual_seed(0)
    norm = RMSNorm(16, eps=1e-6)
    with torch.no_grad():
        norm.weight.copy_(1 + 0.3 * torch.randn(16))
    x = 3 * torch.randn(2, 5, 16)
    scale = frozen_rms_scale(norm, x)
    assert scale.shape == (2, 5, 1)
    with torch.no_grad():
        torch.testing.assert_close(x * scale * norm.weight, norm(x), rtol=1e-6, atol=1e-6)


def test_frozen_scale_splits_the_norm_over_parts() -> None:
    """Parts of x, each scaled by the scale of the whole x, add up to the norm's output."""
    norm = RMSNorm(8, eps=1e-6)
    parts = torch.randn(4, 8, generator=torch.Generator().manual_seed(1))
    whole = parts.sum(0)
    scale = frozen_rms_scale(norm, whole)
    with torch.no_grad():
        summed = (parts * scale * norm.weight).sum(0)
        torch.testing.assert_close(summed, norm(whole), rtol=1e-6, atol=1e-6)
        assert not torch.allclose(norm(parts).sum(0), norm(whole))  # the norm is not linear
