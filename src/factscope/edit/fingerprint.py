"""Which model, as a short digest: the keys of factscope's caches of edit statistics, corpora
and context templates."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

from factscope.config import ModelConfig
from factscope.model import Transformer

# The config fields every fingerprint covers; a field added to ModelConfig later counts only
# where it differs from its default, so that adding one leaves every existing model's
# fingerprint (and the statistics corpus shipped under it) as it was.
BASE_FIELDS = frozenset(
    [
        "family",
        "vocab_size",
        "d_model",
        "n_layers",
        "n_heads",
        "n_kv_heads",
        "d_head",
        "d_mlp",
        "context_length",
        "norm_eps",
        "activation",
        "gated_mlp",
        "rope_theta",
        "sliding_window",
        "local_layers",
        "rope_theta_local",
        "rope_scaling",
        "post_norms",
        "qk_norm",
        "embed_scale",
        "attn_scale",
        "tie_embeddings",
        "bos_token_id",
        "eos_token_id",
    ]
)


def config_digest_fields(cfg: ModelConfig) -> dict[str, Any]:
    """The config as the fingerprints hash it: the base fields, and any other that is set."""
    data = cfg.to_dict()
    defaults = {
        f.name: f.default for f in dataclasses.fields(cfg) if f.default is not dataclasses.MISSING
    }
    return {
        k: v for k, v in data.items() if k in BASE_FIELDS or k not in defaults or v != defaults[k]
    }


def model_fingerprint(model: Transformer, upto_layer: int) -> str:
    """A digest of the weights that the keys of layer `upto_layer` depend on: the config,
    the embedding and blocks 0..upto_layer (a strided sample of each tensor, so that the
    fingerprint costs milliseconds; any real change of the weights, e.g. an edit, moves it)."""
    h = hashlib.sha256(json.dumps(config_digest_fields(model.cfg), sort_keys=True).encode())
    for name, p in model.state_dict().items():
        if name.startswith("blocks."):
            if int(name.split(".")[1]) > upto_layer:
                continue
        elif not name.startswith("embedding"):
            continue
        flat = p.detach().reshape(-1)
        step = max(1, flat.numel() // 4099)
        h.update(name.encode())
        h.update(flat[::step].float().cpu().numpy().tobytes())
        h.update(str(float(flat.double().sum())).encode())
    return h.hexdigest()[:20]


def weights_fingerprint(model: Transformer) -> str:
    """A digest of every weight (blocks, embedding, final norm, unembedding): the key of
    results that depend on the whole forward pass, such as an edit's optimised target."""
    h = hashlib.sha256(model_fingerprint(model, model.cfg.n_layers - 1).encode())
    for name, p in model.state_dict().items():
        if name.startswith(("blocks.", "embedding")):
            continue  # in model_fingerprint already
        flat = p.detach().reshape(-1)
        h.update(name.encode())
        h.update(flat[:: max(1, flat.numel() // 4099)].float().cpu().numpy().tobytes())
        h.update(str(float(flat.double().sum())).encode())
    return h.hexdigest()[:20]


def model_identity(model: Transformer) -> str:
    """Which model (config + a sample of the embedding), blind to edits of the blocks: the
    key of in-process caches that should survive an edit (ROME's context templates, so every
    edit of a session, and of a sequential evaluation, uses the same prefixes)."""
    h = hashlib.sha256(json.dumps(config_digest_fields(model.cfg), sort_keys=True).encode())
    w = model.embedding.weight.detach().reshape(-1)
    h.update(w[:: max(1, w.numel() // 1031)].float().cpu().numpy().tobytes())
    return h.hexdigest()[:16]
