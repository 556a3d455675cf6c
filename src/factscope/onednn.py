"""oneDNN's matrix product for float32 CPU inference and training, behind `Linear`.

The transformer's forward pass is the same with or without it (model.py); this module only
chooses which kernel computes x @ W^T + b.
"""

from __future__ import annotations

import functools
import platform
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class Linear(nn.Linear):
    """nn.Linear (x @ W^T + b), computed by oneDNN in float32 CPU inference.

    A next-token forward is little more than reading every weight once, so its speed is the
    rate at which the matrix-product kernel streams weights. torch's default float32 CPU
    kernel (MKL) reaches well under the memory rate on some CPUs (~40% on AMD Zen),
    oneDNN's, on the same dense weights, much closer (benchmarks/load_and_forward.py
    prints both). Same product, summed in another order: logits agree to ~1e-6 relative.
    oneDNN's op has no backward, so whenever autograd is recording, F.linear is used, except
    in training mode (`model.train()`, as `factscope train` runs), where `OneDNNLinear` gives
    it one made of the same kernel: training's matrix products are ~2/3 of a step, and
    oneDNN runs them ~2x faster than MKL here (benchmarks/train.py). Analysis gradients
    (attribution, ROME) run in eval mode and stay exactly F.linear's.
    """

    onednn = True  # set False to use F.linear everywhere (benchmarks compare the two)

    def forward(self, x: Tensor) -> Tensor:
        if self.onednn and onednn_applies(x, self.weight):
            return torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias, "none", [None], "")
        if self.onednn and self.training and onednn_fits(x, self.weight):
            return OneDNNLinear.apply(x, self.weight, self.bias)
        return F.linear(x, self.weight, self.bias)


class OneDNNLinear(torch.autograd.Function):
    """x @ W^T + b and its gradients, each product computed by oneDNN's linear kernel.

    For y = x W^T (x: (M, K) rows, W: (N, K)): dx = dy W = linear(dy, W^T) and
    dW = dy^T x = linear(dy^T, x^T); oneDNN reads the transposed views without copying.
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [None], "")

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
        x, weight = ctx.saved_tensors
        linear = torch.ops.mkldnn._linear_pointwise
        grad_rows = grad.reshape(-1, grad.shape[-1])  # (M, N)
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = linear(grad, weight.t(), None, "none", [None], "")  # (..., K)
        if ctx.needs_input_grad[1]:
            x_rows = x.reshape(-1, x.shape[-1])  # (M, K)
            grad_w = linear(grad_rows.t(), x_rows.t(), None, "none", [None], "")  # (N, K)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad_rows.sum(0)
        return grad_x, grad_w, grad_b


def onednn_fits(x: Tensor, weight: Tensor) -> bool:
    """oneDNN can compute this product: float32 on a CPU that has it."""
    return (
        x.device.type == "cpu"
        and x.dtype == weight.dtype == torch.float32
        and x.numel() > 0
        and onednn_available()
    )


def onednn_applies(x: Tensor, weight: Tensor) -> bool:
    recording = torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad)
    return not recording and onednn_fits(x, weight)


@functools.cache
def onednn_available() -> bool:
    """oneDNN's linear is in this torch build, on an x86 CPU, and computes F.linear."""
    if (
        platform.machine().lower() not in ("x86_64", "amd64")
        or not torch.backends.mkldnn.is_available()
    ):
        return False
    try:
        x = torch.arange(24.0).view(3, 8) / 7  # not torch.randn: leave the seeded RNG alone
        w = torch.arange(40.0).view(5, 8) / 11
        with torch.no_grad():
            got = torch.ops.mkldnn._linear_pointwise(x, w, None, "none", [None], "")
        return bool(torch.allclose(got, F.linear(x, w), atol=1e-5))
    except (AttributeError, RuntimeError):
        return False
