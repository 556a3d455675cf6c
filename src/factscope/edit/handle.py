"""An applied edit that can be taken back: `EditHandle.undo()` restores the exact weights.

Editing changes `down_proj.weight` of one or a few layers in place (the loaded model in
memory; model files are never touched). Before the first change the handle keeps a copy of
each weight it is about to change, so `undo()` writes back the very same bits — not the
weight minus the update, which float rounding would leave a few ulps off.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import Tensor

from factscope.errors import FactscopeError
from factscope.model import MLP, Block, Transformer

if TYPE_CHECKING:
    from factscope.load import LoadedModel


def mlp_of(model: Transformer, layer: int) -> MLP:
    """The MLP of block `layer` (typed: `model.blocks[i]` is a plain Module to mypy)."""
    return cast(Block, model.blocks[layer]).mlp


@dataclass
class EditHandle:
    """The edits applied to a model, and the original weights to restore.

    `results` holds each method's result object (ROMEResult, MEMITResult); `to_dict` is
    their plain-data record."""

    model: Transformer
    method: str
    layers: list[int]
    results: list[Any]
    originals: dict[int, Tensor] = field(default_factory=dict, repr=False)
    undone: bool = False

    @classmethod
    def begin(cls, model: Transformer, method: str, layers: list[int]) -> EditHandle:
        """Copy the weights about to change (call before changing them)."""
        originals = {
            l: mlp_of(model, l).down_proj.weight.detach().clone() for l in sorted(set(layers))
        }
        return cls(model, method, sorted(set(layers)), [], originals)

    def add_delta(self, layer: int, delta: Tensor) -> None:
        """W += ΔW for layer's down_proj (ΔW (D, F) computed in float64, added in W's dtype)."""
        if layer not in self.originals:
            self.originals[layer] = mlp_of(self.model, layer).down_proj.weight.detach().clone()
            self.layers = sorted(self.originals)
        weight = mlp_of(self.model, layer).down_proj.weight
        with torch.no_grad():
            weight.copy_((weight.double() + delta.to(weight.device)).to(weight.dtype))

    def undo(self) -> None:
        """Restore every changed weight bit for bit."""
        if self.undone:
            raise FactscopeError("this edit was already undone")
        with torch.no_grad():
            for l, original in self.originals.items():
                mlp_of(self.model, l).down_proj.weight.copy_(original)
        self.undone = True

    def weight_change(self) -> dict[int, Tensor]:
        """ΔW actually in the model per layer, (D, F) float64."""
        return {
            l: mlp_of(self.model, l).down_proj.weight.detach().double() - w.double()
            for l, w in self.originals.items()
        }

    def save(self, lm: LoadedModel, path: str | Path, force: bool = False) -> Path:
        """Write the edited model as a factscope model folder (refuses an existing path
        unless `force`); `predict` and every other command load it like any model."""
        from factscope.load import save_model

        if self.undone:
            raise FactscopeError("this edit was undone; there is nothing edited to save")
        provenance: dict[str, object] = {"edit": self.to_dict()}
        return save_model(lm, path, provenance=provenance, force=force)

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "layers": self.layers,
            "undone": self.undone,
            "edits": [r.to_dict() for r in self.results],
        }

    def _repr_html_(self) -> str:
        from factscope.report.edit_html import handle_html

        return handle_html(self.to_dict())
