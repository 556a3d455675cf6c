"""Named hook sites: read, replace or add to any activation of the model.

Every activation of the forward pass goes through a `HookPoint`, an identity module whose
name is its path in the module tree (`blocks.7.mlp.post`). Site names are data: they are
listed by `site_names(model)` and validated, so a misspelled site is an error, never a
silent no-op.

A hook is a function `fn(activation, site) -> Tensor | None`. Returning None only reads;
returning a tensor replaces the activation (return `x + delta` to add). Hooks live only
inside the `hooks(...)` context manager, which always removes them.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from factscope.errors import FactscopeError

HookFn = Callable[[Tensor, str], Tensor | None]


class HookPoint(nn.Module):
    """Identity at a named site; runs the hooks attached to it, in order."""

    def __init__(self, shape: str) -> None:
        super().__init__()
        self.shape = shape  # documentation only, e.g. "(B, T, D)"
        self.name = ""  # set by `name_hook_points` once the module tree is built
        self.fns: list[HookFn] = []

    @property
    def hooked(self) -> bool:
        """Something reads or changes this site: a factscope hook or a torch module hook."""
        return bool(self.fns or self._forward_hooks or self._forward_pre_hooks)

    def __call__(self, x: Tensor) -> Tensor:
        # Nothing attached (the usual case): skip nn.Module's call machinery, ~300 sites a pass.
        if not self.hooked:
            return x
        return super().__call__(x)

    def forward(self, x: Tensor) -> Tensor:
        for fn in self.fns:
            out = fn(x, self.name)
            if out is not None:
                x = out
        return x

    def extra_repr(self) -> str:
        return f"{self.name!r}, shape={self.shape}"


def name_hook_points(model: nn.Module) -> dict[str, HookPoint]:
    """Give every HookPoint its module path as its site name; return them by name."""
    points: dict[str, HookPoint] = {}
    for name, module in model.named_modules():
        if isinstance(module, HookPoint):
            module.name = name
            points[name] = module
    return points


def _hook_points(model: nn.Module) -> dict[str, HookPoint]:
    points = getattr(model, "hook_points", None)
    if not isinstance(points, dict):
        raise TypeError("model has no hook_points; build it with factscope.model.Transformer")
    return points


def site_names(model: nn.Module) -> list[str]:
    """All hook sites of `model`, in forward order."""
    return list(_hook_points(model))


def check_sites(model: nn.Module, sites: Iterable[str]) -> list[str]:
    """Return `sites` as a list, raising a FactscopeError for any name that is not a site."""
    points = _hook_points(model)
    sites = list(sites)
    for site in sites:
        if site not in points:
            close = difflib.get_close_matches(site, list(points), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise FactscopeError(
                f"unknown hook site {site!r}{hint} (list them with factscope.hooks.site_names)"
            )
    return sites


@contextmanager
def hooks(model: nn.Module, fns: Mapping[str, HookFn | Iterable[HookFn]]) -> Iterator[nn.Module]:
    """Attach hooks for the duration of a `with` block; they are removed even on error.

    >>> with hooks(model, {"blocks.3.mlp.post": lambda x, site: x * 0}):
    ...     logits = model(tokens)   # MLP neurons of block 3 knocked out
    """
    points = _hook_points(model)
    check_sites(model, fns)
    attached: list[tuple[HookPoint, HookFn]] = []
    try:
        for site, fn_or_fns in fns.items():
            for fn in [fn_or_fns] if callable(fn_or_fns) else list(fn_or_fns):
                points[site].fns.append(fn)
                attached.append((points[site], fn))
        yield model
    finally:
        for point, fn in attached:
            point.fns.remove(fn)


class ActivationCache(dict[str, Tensor]):
    """Activations by site name, as recorded by `run_with_cache`."""

    def __getitem__(self, site: str) -> Tensor:
        try:
            return super().__getitem__(site)
        except KeyError:
            raise FactscopeError(
                f"site {site!r} was not cached; pass it in sites=... to run_with_cache"
            ) from None


def run_with_cache(
    model: nn.Module,
    tokens: Tensor,
    sites: Iterable[str] | None = None,
    *,
    detach: bool = True,
    **forward_kwargs: Any,
) -> tuple[Tensor, ActivationCache]:
    """Run the model once and record the activations at `sites` (default: every site).

    Returns (logits, cache). With `detach=False` the cached tensors keep their graph, so
    a backward pass can reach them (used by attribution patching).
    """
    names = check_sites(model, site_names(model) if sites is None else sites)
    cache = ActivationCache()

    def record(x: Tensor, site: str) -> None:
        cache[site] = x.detach() if detach else x

    with hooks(model, {site: record for site in names}):
        context = torch.no_grad() if detach else torch.enable_grad()
        with context:
            logits = model(tokens, **forward_kwargs)
    return logits, cache
