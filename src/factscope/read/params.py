"""Where a transformer's parameters sit: embedding, attention, MLP, norms, unembedding.

Counting by component answers questions such as "how much of GPT-3 is MLP?" (about two
thirds: the MLPs are where the facts ROME edits are stored) or "how much of Gemma 3 270M is
its vocabulary?" (also about two thirds, because 262,144 tokens x 640 dimensions is large
next to 18 thin layers). The counts are derived from the config alone, so they cost
nothing and work for models too large to load, like the classic GPT configs below.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from factscope.config import ModelConfig
from factscope.errors import FactscopeError

COMPONENTS: tuple[str, ...] = (
    "embedding",
    "positional",
    "attention",
    "mlp",
    "norms",
    "unembedding",
)


@dataclass(frozen=True)
class ParamCount:
    """Parameter counts of one model, split by component (see `COMPONENTS`).

    `tied` means the unembedding reuses the token embedding matrix, so it adds 0 parameters.
    """

    name: str
    components: dict[str, int]
    tied: bool

    @property
    def total(self) -> int:
        return sum(self.components.values())

    def fraction(self, component: str) -> float:
        """Share of all parameters that sit in `component` (0.0 to 1.0)."""
        if component not in self.components:
            raise FactscopeError(
                f"unknown component {component!r}; choose one of: {', '.join(self.components)}"
            )
        return self.components[component] / self.total

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "total": self.total,
            "tied": self.tied,
            "components": dict(self.components),
            "fractions": {c: self.fraction(c) for c in self.components},
        }


def count_params(config: ModelConfig, name: str | None = None) -> ParamCount:
    """Count the parameters of factscope's transformer built from `config`.

    Matches the model's weights one for one: the q, k, v, o projections (with the biases
    the config names), QK-norm weights (per head or over the whole projection), a gated MLP
    (gate, up, down) or a plain one (up, down), the norms before and/or after attention and
    MLP (RMSNorm: a weight; LayerNorm: a weight and a bias), one final norm, and a learned
    position table when the positions are learned rather than rotary.
    """
    d, L, F = config.d_model, config.n_layers, config.d_mlp
    q_width = config.n_heads * config.d_head
    kv_width = config.n_kv_heads * config.d_head

    attention_per_layer = d * q_width + 2 * d * kv_width + q_width * d  # q, k, v, o
    attention_per_layer += (q_width + 2 * kv_width) * config.qkv_bias + d * config.o_bias
    if config.qk_norm:  # one weight vector each for q and k
        per_head = config.qk_norm_per_head
        attention_per_layer += 2 * config.d_head if per_head else q_width + kv_width
    # gate (when gated) and up: d -> d_mlp; down: d_mlp -> d
    mlp_per_layer = (3 if config.gated_mlp else 2) * d * F
    mlp_per_layer += ((2 if config.gated_mlp else 1) * F + d) * config.mlp_bias
    per_norm = 2 * d if config.norm == "layer" else d
    norms_per_layer = (2 * config.pre_norms + 2 * config.post_norms) * per_norm

    embedding = config.vocab_size * d
    return ParamCount(
        name=name or config.family,
        components={
            "embedding": embedding,
            "positional": config.context_length * d if config.positions == "learned" else 0,
            "attention": L * attention_per_layer,
            "mlp": L * mlp_per_layer,
            "norms": L * norms_per_layer + per_norm,  # + the final norm
            "unembedding": 0 if config.tie_embeddings else embedding,
        },
        tied=config.tie_embeddings,
    )


@dataclass(frozen=True)
class GPTConfig:
    """A classic GPT-2/GPT-3 shape: learned positions, biases, LayerNorm, 4x GELU MLP.

    GPT-3's alternating sparse attention changes which tokens attend, not the weights, so
    the same count covers it.
    """

    n_layers: int
    d_model: int
    n_heads: int
    vocab_size: int = 50_257
    context_length: int = 1024
    d_mlp: int | None = None  # None means 4 * d_model
    tie_embeddings: bool = True

    @property
    def mlp_width(self) -> int:
        return self.d_mlp if self.d_mlp is not None else 4 * self.d_model


# GPT-2 shapes from its released checkpoints; GPT-3 shapes from Table 2.1 of Brown et al.
# (2020), all with GPT-2's 50,257-token vocabulary and a 2048-token context.
NAMED_CONFIGS: dict[str, GPTConfig] = {
    "gpt2-small": GPTConfig(n_layers=12, d_model=768, n_heads=12),
    "gpt2-medium": GPTConfig(n_layers=24, d_model=1024, n_heads=16),
    "gpt2-large": GPTConfig(n_layers=36, d_model=1280, n_heads=20),
    "gpt2-xl": GPTConfig(n_layers=48, d_model=1600, n_heads=25),
    "gpt3-small": GPTConfig(n_layers=12, d_model=768, n_heads=12, context_length=2048),
    "gpt3-medium": GPTConfig(n_layers=24, d_model=1024, n_heads=16, context_length=2048),
    "gpt3-large": GPTConfig(n_layers=24, d_model=1536, n_heads=16, context_length=2048),
    # The paper lists 24 heads of 128 for GPT-3 XL, which does not multiply to 2048; the
    # head split does not change the parameter count.
    "gpt3-xl": GPTConfig(n_layers=24, d_model=2048, n_heads=24, context_length=2048),
    "gpt3-2.7b": GPTConfig(n_layers=32, d_model=2560, n_heads=32, context_length=2048),
    "gpt3-6.7b": GPTConfig(n_layers=32, d_model=4096, n_heads=32, context_length=2048),
    "gpt3": GPTConfig(n_layers=96, d_model=12_288, n_heads=96, d_mlp=49_152, context_length=2048),
}


def count_gpt_params(config: GPTConfig, name: str = "gpt") -> ParamCount:
    """Count the parameters of a classic GPT: every Linear has a bias, every LayerNorm a
    weight and a bias, and positions are a learned (context_length, d_model) table."""
    d, L, m = config.d_model, config.n_layers, config.mlp_width

    attention_per_layer = (d * 3 * d + 3 * d) + (d * d + d)  # fused qkv, then output
    mlp_per_layer = (d * m + m) + (m * d + d)  # up to d_mlp, then down
    layer_norm = 2 * d  # weight and bias
    norms = L * 2 * layer_norm + layer_norm  # before attention and MLP, + the final one

    embedding = config.vocab_size * d
    return ParamCount(
        name=name,
        components={
            "embedding": embedding,
            "positional": config.context_length * d,
            "attention": L * attention_per_layer,
            "mlp": L * mlp_per_layer,
            "norms": norms,
            "unembedding": 0 if config.tie_embeddings else embedding,
        },
        tied=config.tie_embeddings,
    )


def count_named(name: str) -> ParamCount:
    """Parameter counts of a classic GPT by name, e.g. "gpt2-small" or "gpt3"."""
    config = NAMED_CONFIGS.get(name)
    if config is None:
        raise FactscopeError(f"unknown config {name!r}; known configs: {', '.join(NAMED_CONFIGS)}")
    return count_gpt_params(config, name)


# ---- the video's tally --------------------------------------------------------------------

# 3Blue1Brown's count of GPT-3 in "How might LLMs store facts": weights only (no biases, no
# norms, no positions), each matrix kind summed over the layers, and the unembedding
# counted on its own although GPT-3 ties it to the embedding.
VIDEO_GPT3: dict[str, int] = {
    "embedding": 617_558_016,
    "query": 14_495_514_624,
    "key": 14_495_514_624,
    "value": 14_495_514_624,
    "output": 14_495_514_624,
    "up-projection": 57_982_058_496,
    "down-projection": 57_982_058_496,
    "unembedding": 617_558_016,
}
VIDEO_GPT3_TOTAL = 175_181_291_520

# Which part of the network each row of a tally belongs to (for the bar chart's colours).
VIDEO_GROUPS: dict[str, str] = {
    "embedding": "embedding",
    "query": "attention",
    "key": "attention",
    "value": "attention",
    "output": "attention",
    "gate-projection": "mlp",
    "up-projection": "mlp",
    "down-projection": "mlp",
    "unembedding": "unembedding",
}


@dataclass(frozen=True)
class VideoTally:
    """Weight matrices counted the way the video counts them: one row per kind of matrix,
    summed over layers, each with the product that gives it. `left_out` names what the
    tally ignores (norm weights, biases, learned positions) and how many parameters that is.
    `tied` says the stored model shares the embedding and unembedding, so it holds
    `total - rows["unembedding"]` weights of these kinds, not `total`.
    """

    name: str
    rows: dict[str, int]
    formulas: dict[str, str]
    left_out: dict[str, int]
    tied: bool

    @property
    def total(self) -> int:
        return sum(self.rows.values())

    @property
    def mlp(self) -> int:
        return sum(n for k, n in self.rows.items() if VIDEO_GROUPS[k] == "mlp")

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "total": self.total,
            "mlp": self.mlp,
            "mlp_fraction": self.mlp / self.total,
            "tied": self.tied,
            "rows": dict(self.rows),
            "groups": {k: VIDEO_GROUPS[k] for k in self.rows},
            "formulas": dict(self.formulas),
            "left_out": dict(self.left_out),
        }

    def _repr_html_(self) -> str:
        from factscope.report.superposition_html import params_fragment  # display only

        return params_fragment(self.to_dict())


def _tally(
    name: str,
    *,
    vocab: int,
    d: int,
    layers: int,
    q_width: int,
    kv_width: int,
    d_mlp: int,
    gated: bool,
    left_out: dict[str, int],
    tied: bool,
) -> VideoTally:
    """One row per kind of weight matrix: rows x columns x layers."""
    rows = {"embedding": vocab * d, "query": layers * d * q_width, "key": layers * d * kv_width}
    rows |= {"value": layers * d * kv_width, "output": layers * q_width * d}
    formulas = {
        "embedding": f"{vocab:,} tokens x {d:,}",
        "query": f"{layers} layers x {d:,} x {q_width:,}",
        "key": f"{layers} layers x {d:,} x {kv_width:,}",
        "value": f"{layers} layers x {d:,} x {kv_width:,}",
        "output": f"{layers} layers x {q_width:,} x {d:,}",
    }
    if gated:
        rows["gate-projection"] = layers * d * d_mlp
        formulas["gate-projection"] = f"{layers} layers x {d:,} x {d_mlp:,}"
    rows["up-projection"] = layers * d * d_mlp
    rows["down-projection"] = layers * d_mlp * d
    formulas["up-projection"] = f"{layers} layers x {d:,} x {d_mlp:,}"
    formulas["down-projection"] = f"{layers} layers x {d_mlp:,} x {d:,}"
    rows["unembedding"] = vocab * d
    formulas["unembedding"] = f"{d:,} x {vocab:,} tokens" + (" (tied: shared)" if tied else "")
    return VideoTally(name, rows, formulas, left_out, tied)


def video_tally_gpt(config: GPTConfig, name: str = "gpt") -> VideoTally:
    """The video's tally of a classic GPT (for "gpt3": 175,181,291,520 weights)."""
    d, L = config.d_model, config.n_layers
    exact = count_gpt_params(config, name)
    m = config.mlp_width
    biases = L * (3 * d + d + m + d)  # qkv, output, up, down
    return _tally(
        name, vocab=config.vocab_size, d=d, layers=L, q_width=d, kv_width=d, d_mlp=m,
        gated=False, tied=config.tie_embeddings,
        left_out={
            "biases": biases,
            "norms": exact.components["norms"],
            "positional": exact.components["positional"],
        },
    )  # fmt: skip


def video_tally(config: ModelConfig, name: str | None = None) -> VideoTally:
    """The video's tally of factscope's transformer built from `config`: queries, keys and
    values at their real widths (grouped-query attention shares keys and values across
    heads), the gate as its own row in a gated MLP, the unembedding counted on its own."""
    exact = count_params(config, name)
    q_width = config.n_heads * config.d_head
    qk_norms = config.n_layers * 2 * config.d_head if config.qk_norm else 0
    return _tally(
        exact.name, vocab=config.vocab_size, d=config.d_model, layers=config.n_layers,
        q_width=q_width, kv_width=config.n_kv_heads * config.d_head, d_mlp=config.d_mlp,
        gated=config.gated_mlp, tied=config.tie_embeddings,
        left_out={"norms": exact.components["norms"] + qk_norms},
    )  # fmt: skip


def video_tally_named(name: str) -> VideoTally:
    """The video's tally of a classic GPT by name, e.g. "gpt3"."""
    config = NAMED_CONFIGS.get(name)
    if config is None:
        raise FactscopeError(f"unknown config {name!r}; known configs: {', '.join(NAMED_CONFIGS)}")
    return video_tally_gpt(config, name)
