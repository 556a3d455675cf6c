"""The neurons that store a fact: score every MLP neuron, look closely at the top ones.

3Blue1Brown's picture: at "Jordan", a row of the MLP's up-projection asks "is this Michael
Jordan?", the non-linearity makes that an AND of the two names, and the matching column of
the down-projection writes a "basketball" direction into the residual stream. Here each part
of that sentence is a measurement. A neuron is (layer, index) of `blocks.{layer}.mlp.post`,
the input of the down-projection: act(gate . x) * (up . x) in a gated MLP (Gemma, Llama),
act(up . x) in a plain one.

Scores, at two positions:

- **final token** (`final_contributions`): the neuron's *direct* contribution to the
  answer's logit. Its activation a_i times its down column w_i, passed through the post-MLP
  norm and the final norm with their scales frozen at the values of the real run (exactly
  as `locate.lens.direct_logit_attribution` freezes them), read along W_U[answer]:

      c_i = a_i * (w_i * s_post * g_post) . (s_final * g_final * W_U[answer])

  so the c_i of one layer add up to that layer's MLP term of the DLA.
- **last subject token** (`subject_attribution`): no direct path to the logit, so an
  attribution of p(answer): the gradient times the activation's excess over its mean,
  dp/da_i * (a_i - mean a_i), or integrated gradients (Dai et al. 2022, "Knowledge
  Neurons": scale the layer's activations from 0 to their value, average the gradient).
  Means are over the same prompt with other people's names (`reference_names`).

Ablation confirms the scores: set the top-k neurons to zero or to their mean at that
position and watch p(answer), against k random neurons of the same layers
(`ablation_curve`). Ablation only changes tokens from the ablated position on, so every
batch reuses the keys/values of the tokens before it (`SuffixRunner`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, cast

import torch
from torch import Tensor

from factscope.errors import FactscopeError
from factscope.hooks import HookFn, hooks, run_with_cache
from factscope.locate.lens import _frozen_rms_scale, direct_logit_attribution, norm_readout
from factscope.locate.prompts import answer_token, encode_prompt, predicted_answer
from factscope.model import MLP, Block, KVCache, Transformer
from factscope.read.names import Variant, build_variants, names_data, replace_subject
from factscope.tokenizer import Tokenizer, spell_tokens

if TYPE_CHECKING:
    from factscope.load import LoadedModel

Position = Literal["subject", "final"]
POSITIONS: tuple[Position, ...] = ("subject", "final")
SubjectMethod = Literal["grad_x_act", "integrated_gradients"]
SUBJECT_METHODS: tuple[SubjectMethod, ...] = ("grad_x_act", "integrated_gradients")
AblationMode = Literal["zero", "mean"]
ABLATION_MODES: tuple[AblationMode, ...] = ("zero", "mean")

METHOD_NAMES = {
    "final": "direct contribution to the answer's logit (post-MLP and final norm scales "
    "frozen; a layer's neurons sum to its MLP DLA term)",
    "grad_x_act": "gradient x (activation - mean activation) of p(answer)",
    "integrated_gradients": "integrated gradients of p(answer), baseline 0 (Dai et al. 2022)",
}

# A neuron is an AND of the two names when its response to the full name, above its
# response to neither name, is at least 1 / AND_FRACTION times its response to either name
# alone (both >> either alone).
AND_FRACTION = 0.5


def default_ks(max_k: int) -> list[int]:
    """The k values of an ablation curve: every k to 10, then about 8 per decade, to max_k."""
    grid = [*range(1, 11), 12, 15, 20, 25, 30, 40, 50, 60, 80, 100, 120, 150, 200, 250]
    grid += [300, 400, 500, 600, 800, 1000]
    return sorted({k for k in grid if k < max_k} | {max_k})


def _mlp(model: Transformer, layer: int) -> MLP:
    return cast(MLP, model.blocks[layer].mlp)


# ---- counting and batching forward passes ---------------------------------------------------


@dataclass
class ForwardCount:
    """Forward passes run: `calls` batched calls of the model, `rows` sequences in them,
    `tokens` token positions computed (a reused prefix is counted once)."""

    calls: int = 0
    rows: int = 0
    tokens: int = 0
    backward: int = 0

    def add(self, rows: int, tokens: int) -> None:
        self.calls += 1
        self.rows += rows
        self.tokens += rows * tokens

    def to_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


class SuffixRunner:
    """Run one prompt many times with different hooks, recomputing only tokens start..T-1.

    An intervention at position `start` changes nothing before it (attention is causal), so
    the keys and values of tokens 0..start-1 are computed once and shared by every row.
    """

    def __init__(
        self, model: Transformer, tokens: Tensor, start: int, count: ForwardCount | None = None
    ) -> None:
        if not 0 <= start < tokens.shape[1]:
            raise FactscopeError(
                f"position {start} is outside the prompt (0..{tokens.shape[1] - 1})"
            )
        self.model, self.tokens, self.start = model, tokens, start
        self.count = count if count is not None else ForwardCount()
        self.prefix = KVCache.empty(model.cfg.n_layers)
        if start > 0:
            with torch.no_grad():
                positions = torch.arange(start, device=tokens.device)
                model.run_blocks(
                    model.embed_tokens(tokens[:, :start]), positions, kv_cache=self.prefix
                )
            self.count.add(1, start)

    def logits(self, rows: int, fns: dict[str, HookFn] | None = None) -> Tensor:
        """Final-position logits of `rows` copies of the suffix with hooks: (rows, V).

        Hooks see suffix activations, (rows, T - start, ...): position p is index p - start.
        """
        kv = KVCache(
            [None if k is None else k.expand(rows, -1, -1, -1) for k in self.prefix.keys],
            [None if v is None else v.expand(rows, -1, -1, -1) for v in self.prefix.values],
        )
        suffix = self.tokens[:, self.start :].expand(rows, -1)  # (rows, T - start)
        with hooks(self.model, fns or {}):
            logits = self.model(suffix, kv_cache=kv, logits_at="last")[:, -1]
        self.count.add(rows, suffix.shape[1])
        return logits

    def answer_probs(
        self, answer_id: int, rows: int, fns: dict[str, HookFn] | None = None
    ) -> Tensor:
        """p(answer) at the final position for each row: (rows,)."""
        return self.logits(rows, fns).float().log_softmax(-1)[:, answer_id].exp()


# ---- activations and scores ----------------------------------------------------------------


def mlp_sites(model: Transformer, kinds: Sequence[str] = ("post",)) -> list[str]:
    """`blocks.{l}.mlp.{kind}` for every layer and kind (no `gate` site in a plain MLP)."""
    kinds = [k for k in kinds if k != "gate" or model.cfg.gated_mlp]
    return [f"blocks.{layer}.mlp.{k}" for layer in range(model.cfg.n_layers) for k in kinds]


@torch.no_grad()
def neuron_activations(model: Transformer, tokens: Tensor, kind: str = "post") -> Tensor:
    """Every neuron's `kind` activation (gate, up or post) on `tokens` (B, T): (B, L, T, F)."""
    sites = mlp_sites(model, (kind,))
    if not sites:
        raise FactscopeError(f"this model's MLP has no {kind!r} site (it is not gated)")
    _, cache = run_with_cache(model, tokens, sites, logits_at="last")
    return torch.stack([cache[s] for s in sites], dim=1)


@torch.no_grad()
def mean_activations(model: Transformer, prompts: Sequence[tuple[Tensor, int]]) -> Tensor:
    """Mean neuron activation over (tokens (1, T), position) pairs: (L, F).

    Prompts of equal length run as one batch."""
    by_length: dict[int, list[tuple[Tensor, int]]] = {}
    for tokens, position in prompts:
        by_length.setdefault(tokens.shape[1], []).append((tokens, position))
    total = torch.zeros(model.cfg.n_layers, model.cfg.d_mlp, dtype=torch.float64)
    for group in by_length.values():
        batch = torch.cat([t for t, _ in group])  # (B, T)
        acts = neuron_activations(model, batch)  # (B, L, T, F)
        rows = torch.arange(len(group))
        where = torch.tensor([p for _, p in group])
        total += acts[rows, :, where].double().sum(0).cpu()  # (L, F)
    return (total / len(prompts)).to(model.dtype)


def neuron_readout(
    model: Transformer, post: Tensor, direction: Tensor, final_scale: Tensor
) -> Tensor:
    """What one unit of each neuron adds to `direction`'s logit at one position: (L, F).

    `post` (L, F) are the activations at that position (they set the frozen post-MLP norm
    scale); `direction` (D,) is W_U[answer]; `final_scale` the frozen 1/rms of the final norm.
    """
    readout = norm_readout(model.norm, final_scale, direction)  # (D,)
    rows = []
    for layer in range(model.cfg.n_layers):
        mlp = _mlp(model, layer)
        w_down = mlp.down_proj.weight.double()  # (D, F)
        r = readout
        if mlp.post_norm is not None:  # Gemma: freeze the post-MLP norm at the layer's output
            raw = mlp.down_proj(post[layer].to(w_down.device, mlp.down_proj.weight.dtype))
            r = r * _frozen_rms_scale(mlp.post_norm, raw).double() * mlp.post_norm.weight.double()
        rows.append(r @ w_down)  # (F,)
    return torch.stack(rows)


@torch.no_grad()
def final_contributions(model: Transformer, tokens: Tensor, answer_id: int) -> Tensor:
    """Each neuron's direct contribution to the answer's logit at the final token: (L, F),
    float64. Row l sums to the MLP term of layer l in `direct_logit_attribution`."""
    L = model.cfg.n_layers
    sites = [*mlp_sites(model), f"blocks.{L - 1}.resid_post"]
    _, cache = run_with_cache(model, tokens, sites, logits_at="last")
    post = torch.stack([cache[s][0, -1] for s in mlp_sites(model)])  # (L, F)
    final_scale = _frozen_rms_scale(model.norm, cache[f"blocks.{L - 1}.resid_post"][0, -1])
    per_unit = neuron_readout(model, post, model.unembed.weight[answer_id], final_scale)
    return post.double() * per_unit  # (L, F)


def subject_attribution(
    model: Transformer,
    tokens: Tensor,
    answer_id: int,
    position: int,
    mean_post: Tensor,
    method: SubjectMethod = "grad_x_act",
    steps: int = 20,
    count: ForwardCount | None = None,
) -> Tensor:
    """Attribution of p(answer) to every neuron at token `position`: (L, F), float64.

    grad_x_act: dp/da * (a - mean a), one forward and backward. integrated_gradients:
    for each layer, a_i * mean over alpha in (0, 1] of dp/da_i at alpha * a (the layer's
    whole activation vector scaled together, `steps` points, right Riemann sum).
    """
    count = count if count is not None else ForwardCount()
    L, F = model.cfg.n_layers, model.cfg.d_mlp
    if method == "grad_x_act":
        kept: dict[str, Tensor] = {}

        def keep(x: Tensor, site: str) -> None:
            kept[site] = x

        fns: dict[str, HookFn] = {site: keep for site in mlp_sites(model)}
        # the graph starts at the embeddings, whatever the parameters' requires_grad
        fns["embed"] = lambda x, site: x.detach().requires_grad_(True)
        with torch.enable_grad(), hooks(model, fns):
            p = model(tokens, logits_at="last")[0, -1].float().log_softmax(-1)[answer_id].exp()
            acts = [kept[s] for s in mlp_sites(model)]
            grads = torch.autograd.grad(p, acts)
        count.add(1, tokens.shape[1])
        count.backward += 1
        a = torch.stack([x[0, position] for x in acts]).detach().double()  # (L, F)
        g = torch.stack([x[0, position] for x in grads]).double()  # (L, F)
        return g * (a - mean_post.to(a.device).double())
    if method != "integrated_gradients":
        raise FactscopeError(f"unknown attribution method {method!r}; use {SUBJECT_METHODS}")
    if steps < 1:
        raise FactscopeError(f"steps must be at least 1, got {steps}")
    post = neuron_activations(model, tokens)[0, :, position]  # (L, F)
    count.add(1, tokens.shape[1])
    runner = SuffixRunner(model, tokens, position, count)
    alphas = torch.arange(1, steps + 1, device=tokens.device, dtype=post.dtype) / steps  # (S,)
    scores = torch.empty(L, F, dtype=torch.float64)
    for layer in range(L):
        scaled = (alphas[:, None] * post[layer][None, :]).requires_grad_(True)  # (S, F)

        def put(x: Tensor, site: str, scaled: Tensor = scaled) -> Tensor:
            x = x.clone()
            x[:, 0] = scaled  # the suffix starts at `position`
            return x

        with torch.enable_grad():
            p = runner.answer_probs(answer_id, steps, {f"blocks.{layer}.mlp.post": put})
            (grad,) = torch.autograd.grad(p.sum(), scaled)
        count.backward += 1
        scores[layer] = (post[layer].double() * grad.double().mean(0)).cpu()
    return scores


# ---- ablation --------------------------------------------------------------------------------

NeuronSet = dict[int, Tensor]  # layer -> indices of the neurons ablated in that layer


def neuron_set(neurons: Sequence[tuple[int, int]]) -> NeuronSet:
    """[(layer, index), ...] grouped by layer."""
    grouped: dict[int, list[int]] = {}
    for layer, index in neurons:
        grouped.setdefault(int(layer), []).append(int(index))
    return {layer: torch.tensor(idx) for layer, idx in grouped.items()}


def ablated_answer_probs(
    model: Transformer,
    tokens: Tensor,
    answer_id: int,
    position: int,
    rows: Sequence[NeuronSet],
    values: Tensor,
    *,
    batch_size: int = 64,
    count: ForwardCount | None = None,
    progress: Any = None,
) -> Tensor:
    """p(answer) with each row's neurons set to `values` (L, F) at token `position`: (R,).

    Rows go through in batches; tokens before `position` are computed once. Zero ablation
    passes zeros, mean ablation the mean activations.
    """
    F = model.cfg.d_mlp
    runner = SuffixRunner(model, tokens, position, count)
    values = values.to(device=tokens.device, dtype=model.dtype)
    out = []
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        masks: dict[int, Tensor] = {}
        for r, row in enumerate(batch):
            for layer, idx in row.items():
                if layer not in masks:
                    masks[layer] = torch.zeros(len(batch), F, dtype=torch.bool)
                masks[layer][r, idx] = True

        def ablate(x: Tensor, site: str, masks: dict[int, Tensor] = masks) -> Tensor:
            layer = int(site.split(".")[1])
            mask = masks[layer].to(x.device)  # (B, F)
            x = x.clone()
            x[:, 0] = torch.where(mask, values[layer], x[:, 0])  # suffix index 0 = position
            return x

        fns: dict[str, HookFn] = {f"blocks.{layer}.mlp.post": ablate for layer in masks}
        with torch.no_grad():
            out.append(runner.answer_probs(answer_id, len(batch), fns).cpu())
        if progress is not None:
            progress.update(1)
    return torch.cat(out) if out else torch.empty(0)


@dataclass
class AblationCurve:
    """p(answer) as the top-k neurons of `position`'s ranking are ablated there (`mode`:
    zero or mean), against `draws` sets of k random neurons drawn from the same layers
    (same count per layer, none of the top k)."""

    position: str
    mode: str
    ks: list[int]
    clean_p: float
    top_p: list[float]  # (K,)
    random_p: list[list[float]]  # (K, draws)
    random_mean: list[float]  # (K,)
    random_std: list[float]  # (K,)
    random_min: list[float]  # (K,)
    random_max: list[float]  # (K,)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def random_like(
    top: Sequence[tuple[int, int]], n_neurons: int, generator: torch.Generator
) -> list[tuple[int, int]]:
    """As many random neurons per layer as `top` has there, avoiding `top`'s own."""
    chosen: list[tuple[int, int]] = []
    for layer, idx in neuron_set(top).items():
        free = torch.ones(n_neurons, dtype=torch.bool)
        free[idx] = False
        pool = free.nonzero()[:, 0]
        picks = pool[torch.randperm(len(pool), generator=generator)[: len(idx)]]
        chosen += [(layer, int(i)) for i in picks]
    return chosen


def ablation_curve(
    model: Transformer,
    tokens: Tensor,
    answer_id: int,
    position: int,
    ranking: Sequence[tuple[int, int]],
    ks: Sequence[int],
    values: dict[str, Tensor],
    *,
    position_name: str = "",
    draws: int = 5,
    seed: int = 0,
    batch_size: int = 64,
    count: ForwardCount | None = None,
    progress: Any = None,
) -> list[AblationCurve]:
    """One `AblationCurve` per mode in `values` ({"zero": (L, F), "mean": (L, F)})."""
    n_total = model.cfg.n_layers * model.cfg.d_mlp
    most = min(len(ranking), n_total)
    for k in ks:
        if not 1 <= k <= most:
            raise FactscopeError(f"k = {k} is out of range; ablate between 1 and {most} neurons")
    if draws < 1:
        raise FactscopeError(f"draws must be at least 1, got {draws}")
    generator = torch.Generator().manual_seed(seed)
    rows: list[NeuronSet] = [{}]  # row 0: nothing ablated
    for k in ks:
        rows.append(neuron_set(ranking[:k]))
        rows += [
            neuron_set(random_like(ranking[:k], model.cfg.d_mlp, generator)) for _ in range(draws)
        ]
    curves = []
    for mode, vals in values.items():
        p = ablated_answer_probs(
            model,
            tokens,
            answer_id,
            position,
            rows,
            vals,
            batch_size=batch_size,
            count=count,
            progress=progress,
        )
        grid = p[1:].view(len(ks), 1 + draws).double()  # (K, 1 + draws)
        rand = grid[:, 1:]
        curves.append(
            AblationCurve(
                position=position_name,
                mode=mode,
                ks=list(ks),
                clean_p=float(p[0]),
                top_p=grid[:, 0].tolist(),
                random_p=rand.tolist(),
                random_mean=rand.mean(1).tolist(),
                random_std=(rand.std(1) if draws > 1 else torch.zeros(len(ks))).tolist(),
                random_min=rand.min(1).values.tolist(),
                random_max=rand.max(1).values.tolist(),
            )
        )
    return curves


# ---- one neuron up close ----------------------------------------------------------------------


@dataclass
class AndTest:
    """A neuron's activation on the prompt (`both` names) and on the name variants.

    ratio_first = (first - neither) / (both - neither), likewise ratio_last: how much of the
    full name's response one name alone gives. AND: both ratios below AND_FRACTION.
    """

    both: float
    by_kind: dict[str, list[float]]  # kind -> activation per variant
    mean: dict[str, float]  # kind -> mean activation
    ratio_first: float | None
    ratio_last: float | None
    verdict: str
    # the neuron's two questions separately: "both" and mean per kind of the gate and up
    # pre-activations (gate is None in a plain MLP, where up is the only question)
    gate_mean: dict[str, float] | None = None
    up_mean: dict[str, float] | None = None


def and_verdict(
    both: float, first: float | None, last: float | None, neither: float | None
) -> tuple[str, float | None, float | None]:
    """(verdict, ratio_first, ratio_last) from a neuron's mean activations per variant kind."""
    if neither is None or (first is None and last is None):
        return "incomplete: needs 'neither' and a one-name variant", None, None
    gap = both - neither
    if abs(gap) <= AND_FRACTION * max(abs(both), abs(neither)) or gap == 0.0:
        return "not specific: other names drive it about as much", None, None
    r_first = None if first is None else (first - neither) / gap
    r_last = None if last is None else (last - neither) / gap
    strong_first = r_first is not None and r_first >= AND_FRACTION
    strong_last = r_last is not None and r_last >= AND_FRACTION
    if strong_first and strong_last:
        return "OR: either name alone drives it", r_first, r_last
    if strong_first:
        return "first name alone drives it", r_first, r_last
    if strong_last:
        return "last name alone drives it", r_first, r_last
    if r_first is None or r_last is None:
        return "incomplete: one-name variant missing", r_first, r_last
    direction = "raises" if gap > 0 else "lowers"
    return f"AND: both names >> either alone (the full name {direction} it)", r_first, r_last


@dataclass
class NeuronInfo:
    """One top neuron: its score, its activations, the AND test, what it reads and writes."""

    layer: int
    index: int
    position: str  # "subject" or "final"
    rank: int  # 0 = top
    score: float
    gate: float | None  # gate pre-activation on the prompt (None: plain MLP)
    up: float
    act: float  # the neuron's activation, input of the down-projection
    mean_act: float  # its mean over the reference names at this position
    ablated_p: float  # p(answer) with this neuron alone mean-ablated
    and_test: AndTest | None
    promotes: list[tuple[str, float]]  # tokens its down column raises through the unembedding
    suppresses: list[tuple[str, float]]
    gate_tokens: (
        list[tuple[str, float]] | None
    )  # tokens whose embeddings best align with its gate row
    up_tokens: list[tuple[str, float]]


@torch.no_grad()
def written_tokens(
    model: Transformer, neurons: Sequence[tuple[int, int]], k: int, tokenizer: Tokenizer | None
) -> list[tuple[list[tuple[str, float]], list[tuple[str, float]]]]:
    """(promoted, suppressed) tokens of each neuron's output direction (Geva et al. 2022):
    W_U (g_final * g_post * w_down), the logits one unit of the neuron adds (norm scales,
    positive numbers that do not change the order, left out)."""
    if not neurons:
        return []
    columns = []
    for layer, index in neurons:
        mlp = _mlp(model, layer)
        w = mlp.down_proj.weight[:, index].float()  # (D,)
        if mlp.post_norm is not None:
            w = w * mlp.post_norm.weight.float()
        columns.append(w * model.norm.weight.float())
    logits = model.unembed.weight.float() @ torch.stack(columns, 1)  # (V, n)
    top = logits.topk(k, dim=0)
    bottom = (-logits).topk(k, dim=0)
    out = []
    for j in range(len(neurons)):
        promoted = list(
            zip(
                spell_tokens(tokenizer, top.indices[:, j].tolist()),
                top.values[:, j].tolist(),
                strict=True,
            )
        )
        suppressed = list(
            zip(
                spell_tokens(tokenizer, bottom.indices[:, j].tolist()),
                (-bottom.values[:, j]).tolist(),
                strict=True,
            )
        )
        out.append((promoted, suppressed))
    return out


def _norm_gain(norm: torch.nn.Module, dim: int) -> Tensor:
    """A norm's per-feature gain (float32), ones where there is no norm."""
    weight = getattr(norm, "weight", None)
    return torch.ones(dim) if not isinstance(weight, Tensor) else weight.float()


@torch.no_grad()
def read_tokens(
    model: Transformer, rows: Tensor, layers: Sequence[int], k: int, tokenizer: Tokenizer | None
) -> list[list[tuple[str, float]]]:
    """Tokens whose embeddings align best (cosine) with each input row (n, D) of an MLP:
    the row is applied to mlp_norm(x), so its direction in embedding space is g_mlp * row."""
    weight = model.embedding.weight.float()  # (V, D)
    blocks = [cast(Block, model.blocks[layer]) for layer in layers]
    # no pre-MLP norm (OLMo 2): the row reads the residual itself, gain 1
    gains = torch.stack([_norm_gain(b.mlp_norm, weight.shape[1]) for b in blocks])  # (n, D)
    directions = rows.float() * gains  # (n, D)
    norms = torch.linalg.vector_norm(weight, dim=1).clamp_min(1e-12)  # (V,)
    cos = (weight @ directions.T) / norms[:, None] / torch.linalg.vector_norm(directions, dim=1)
    top = cos.topk(k, dim=0)  # (k, n)
    return [
        list(
            zip(
                spell_tokens(tokenizer, top.indices[:, j].tolist()),
                top.values[:, j].tolist(),
                strict=True,
            )
        )
        for j in range(rows.shape[0])
    ]


# ---- the whole reading of one prompt ---------------------------------------------------------


@dataclass
class NeuronsResult:
    """Every neuron scored at the last subject token and at the final token, the top ones up
    close, and ablation curves. `scores[position]` is (L, F), to 6 significant digits (the
    top neurons' `score` has full precision); `methods` names each score."""

    model: str
    prompt: str
    subject: str
    answer: dict[str, Any]  # text, id, token, note
    tokens: list[str]
    subject_span: list[int]  # [start, stop)
    positions: dict[str, int]  # "subject" / "final" -> token index
    gated: bool
    clean_p: float
    clean_logit: float
    methods: dict[str, str]
    scores: dict[str, list[list[float]]]  # position -> (L, F)
    mlp_dla: list[float]  # (L,) MLP terms of direct_logit_attribution
    layer_sums: list[float]  # (L,) sums of each layer's final-token scores
    sum_rel_error: float  # max over layers |sum - dla| / max |dla|
    top: dict[str, list[NeuronInfo]]
    variants: list[dict[str, Any]]  # kind, name, prompt, p_answer
    reference_names: list[str]  # names whose runs give the mean activations
    ablation: list[AblationCurve]
    forward_passes: dict[str, int]
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def _repr_html_(self) -> str:
        from factscope.report.read_html import neurons_fragment

        return neurons_fragment(self.to_dict())


def ranking(scores: Tensor, n: int) -> list[tuple[int, int]]:
    """The n (layer, index) pairs with the largest scores, largest first. scores: (L, F)."""
    F = scores.shape[1]
    order = scores.flatten().argsort(descending=True, stable=True)[:n]
    return [(int(i) // F, int(i) % F) for i in order]


def reference_names(subject: str, n: int = 24) -> list[str]:
    """Other people's names, "<first> <last>" from the shipped lists, none sharing a word
    with the subject: the population the mean activation is taken over."""
    data = names_data()
    words = set(subject.split())
    firsts = [f for f in data["first_names"] if f not in words]
    lasts = [x for x in data["last_names"] if x not in words]
    names = [f"{f} {x}" for f, x in zip(firsts, reversed(lasts), strict=False)]
    return names[:n]


def find_neurons(
    loaded: LoadedModel,
    prompt: str,
    subject: str,
    answer: str | None = None,
    *,
    top: int = 10,
    method: SubjectMethod = "grad_x_act",
    ig_steps: int = 20,
    variants: list[tuple[str, str]] | None = None,
    ks: Sequence[int] | None = None,
    max_k: int | None = None,
    draws: int = 5,
    modes: Sequence[AblationMode] = ABLATION_MODES,
    n_tokens: int = 8,
    seed: int = 0,
    batch_size: int = 64,
    progress: bool = False,
) -> NeuronsResult:
    """Score every MLP neuron for the fact in `prompt` and read the `top` ones up close.

    `answer` defaults to the model's prediction; `variants` to names built from the shipped
    list (no AND test when the subject is one word and none are given). The ablation curve
    runs k in `ks`, or `default_ks(max_k)` (max_k: 200, or every neuron if fewer).
    """
    model, tokenizer = loaded.model, loaded.tokenizer
    cfg = model.cfg
    n_neurons = cfg.n_layers * cfg.d_mlp
    if not 1 <= top <= n_neurons:
        raise FactscopeError(f"--top {top} is out of range; choose 1..{n_neurons} neurons")
    tokens = encode_prompt(model, tokenizer, prompt)
    span = tokenizer.find_subject_span(prompt, subject)
    if max_k is not None and not 1 <= max_k <= n_neurons:
        raise FactscopeError(f"--max-k {max_k} is out of range; choose 1..{n_neurons} neurons")
    ks = list(ks) if ks is not None else default_ks(min(200, n_neurons) if max_k is None else max_k)
    bad = [k for k in ks if not 1 <= k <= n_neurons]
    if bad:
        raise FactscopeError(
            f"k = {bad[0]} is out of range; ablate between 1 and {n_neurons} neurons"
        )
    target = (
        answer_token(tokenizer, answer)
        if answer is not None
        else predicted_answer(model, tokenizer, tokens)
    )
    T = tokens.shape[1]
    where = {"subject": span[1] - 1, "final": T - 1}
    count = ForwardCount()
    notes = [target.note] if target.note else []

    with torch.no_grad():
        clean_logits = model(tokens, logits_at="last")[0, -1].float()
    count.add(1, T)
    clean_p = float(clean_logits.log_softmax(-1)[target.id].exp())

    # the population of other names: mean activations at both positions
    names = [n for n in reference_names(subject) if n != subject]
    ref_prompts = []
    for name in names:
        text = replace_subject(prompt, subject, name)
        ref_tokens = encode_prompt(model, tokenizer, text)
        ref_span = tokenizer.find_subject_span(text, name)
        ref_prompts.append((ref_tokens, ref_span[1] - 1, ref_tokens.shape[1] - 1))
    means = {
        "subject": mean_activations(model, [(t, s) for t, s, _ in ref_prompts]),
        "final": mean_activations(model, [(t, f) for t, _, f in ref_prompts]),
    }
    count.calls += len({t.shape[1] for t, _, _ in ref_prompts})
    count.rows += len(ref_prompts)

    final_scores = final_contributions(model, tokens, target.id)
    count.add(1, T)
    subject_scores = subject_attribution(
        model, tokens, target.id, where["subject"], means["subject"], method, ig_steps, count
    )
    dla = direct_logit_attribution(model, tokens, target.id)
    count.add(1, T)
    sums = final_scores.sum(1)
    dla_mlp = torch.tensor(dla.mlp, dtype=torch.float64)
    rel = float((sums - dla_mlp.to(sums.device)).abs().max() / dla_mlp.abs().max().clamp_min(1e-30))
    scores = {"subject": subject_scores.cpu(), "final": final_scores.cpu()}
    methods = {"subject": METHOD_NAMES[method], "final": METHOD_NAMES["final"]}

    # the AND test's variants, run once as a batch
    variant_list: list[Variant] = []
    try:
        variant_list = build_variants(tokenizer, prompt, subject, variants)
    except FactscopeError as e:
        if variants is not None:
            raise
        notes.append(f"no AND test: {e}")
    acts: dict[str, Tensor] = {}
    kinds = ("gate", "up", "post") if cfg.gated_mlp else ("up", "post")
    batch = torch.cat([tokens] + [encode_prompt(model, tokenizer, v.prompt) for v in variant_list])
    with torch.no_grad():
        logits, cache = run_with_cache(model, batch, mlp_sites(model, kinds), logits_at="last")
    count.add(batch.shape[0], T)
    for kind in kinds:
        acts[kind] = torch.stack([cache[s] for s in mlp_sites(model, (kind,))], 1)  # (B, L, T, F)
    variant_p = logits[:, -1].float().log_softmax(-1)[:, target.id].exp().tolist()

    # top neurons per position, each confirmed by ablating it alone
    max_needed = max([*ks, top])
    rankings = {pos: ranking(scores[pos], max_needed) for pos in POSITIONS}
    bar = _progress(progress, POSITIONS, ks, draws, len(modes), top, batch_size)
    top_info: dict[str, list[NeuronInfo]] = {}
    curves: list[AblationCurve] = []
    for pos in POSITIONS:
        chosen = rankings[pos][:top]
        single = ablated_answer_probs(
            model,
            tokens,
            target.id,
            where[pos],
            [neuron_set([n]) for n in chosen],
            means[pos],
            batch_size=batch_size,
            count=count,
            progress=bar,
        )
        writes = written_tokens(model, chosen, n_tokens, tokenizer)
        up_rows = torch.stack([_mlp(model, l).up_proj.weight[i] for l, i in chosen])
        up_reads = read_tokens(model, up_rows, [l for l, _ in chosen], n_tokens, tokenizer)
        gate_reads: list[list[tuple[str, float]]] | None = None
        if cfg.gated_mlp:
            gate_rows = torch.stack([_mlp(model, l).gate_proj.weight[i] for l, i in chosen])
            gate_reads = read_tokens(model, gate_rows, [l for l, _ in chosen], n_tokens, tokenizer)
        infos = []
        for rank, (layer, index) in enumerate(chosen):
            t = where[pos]
            post = acts["post"][:, layer, t, index].tolist()  # (B,): prompt, then variants
            gate_acts = acts["gate"][:, layer, t, index].tolist() if cfg.gated_mlp else None
            up_acts = acts["up"][:, layer, t, index].tolist()
            and_test = _and_test(post, variant_list, gate_acts, up_acts) if variant_list else None
            infos.append(
                NeuronInfo(
                    layer=layer,
                    index=index,
                    position=pos,
                    rank=rank,
                    score=float(scores[pos][layer, index]),
                    gate=float(acts["gate"][0, layer, t, index]) if cfg.gated_mlp else None,
                    up=float(acts["up"][0, layer, t, index]),
                    act=post[0],
                    mean_act=float(means[pos][layer, index]),
                    ablated_p=float(single[rank]),
                    and_test=and_test,
                    promotes=writes[rank][0],
                    suppresses=writes[rank][1],
                    gate_tokens=None if gate_reads is None else gate_reads[rank],
                    up_tokens=up_reads[rank],
                )
            )
        top_info[pos] = infos
        curves += ablation_curve(
            model,
            tokens,
            target.id,
            where[pos],
            rankings[pos],
            ks,
            {m: torch.zeros_like(means[pos]) if m == "zero" else means[pos] for m in modes},
            position_name=pos,
            draws=draws,
            seed=seed,
            batch_size=batch_size,
            count=count,
            progress=bar,
        )
    if bar is not None:
        bar.close()
    return NeuronsResult(
        model=loaded.name,
        prompt=prompt,
        subject=subject,
        answer={"text": target.text, "id": target.id, "token": target.token, "note": target.note},
        tokens=spell_tokens(tokenizer, tokens[0].tolist()),
        subject_span=[span[0], span[1]],
        positions=where,
        gated=cfg.gated_mlp,
        clean_p=clean_p,
        clean_logit=float(clean_logits[target.id]),
        methods=methods,
        scores={pos: _rounded(s) for pos, s in scores.items()},
        mlp_dla=dla.mlp,
        layer_sums=sums.tolist(),
        sum_rel_error=rel,
        top=top_info,
        variants=[
            {**v.to_dict(), "p_answer": p} for v, p in zip(variant_list, variant_p[1:], strict=True)
        ],
        reference_names=names,
        ablation=curves,
        forward_passes=count.to_dict(),
        notes=notes,
    )


def _rounded(grid: Tensor, digits: int = 6) -> list[list[float]]:
    """A (L, F) score grid as lists of floats with `digits` significant digits: the JSON of
    a Gemma 3 270M run holds 2 x 36,864 of them, and 6 digits halve its size."""
    return [[float(f"{v:.{digits}g}") for v in row] for row in grid.tolist()]


def _kind_means(values: list[float], variants: Sequence[Variant]) -> dict[str, float]:
    """{"both": value on the prompt, kind: mean over that kind's variants}."""
    by_kind: dict[str, list[float]] = {}
    for v, a in zip(variants, values[1:], strict=True):
        by_kind.setdefault(v.kind, []).append(a)
    return {"both": values[0], **{k: sum(x) / len(x) for k, x in by_kind.items()}}


def _and_test(
    post: list[float],
    variants: Sequence[Variant],
    gate: list[float] | None = None,
    up: list[float] | None = None,
) -> AndTest:
    """The AND test of one neuron from its activations on [prompt, *variants]."""
    by_kind: dict[str, list[float]] = {}
    for v, a in zip(variants, post[1:], strict=True):
        by_kind.setdefault(v.kind, []).append(a)
    mean = {k: sum(v) / len(v) for k, v in by_kind.items()}
    verdict, r_first, r_last = and_verdict(
        post[0], mean.get("first"), mean.get("last"), mean.get("neither")
    )
    return AndTest(
        post[0],
        by_kind,
        mean,
        r_first,
        r_last,
        verdict,
        gate_mean=None if gate is None else _kind_means(gate, variants),
        up_mean=None if up is None else _kind_means(up, variants),
    )


def _progress(
    enabled: bool,
    positions: Sequence[str],
    ks: Sequence[int],
    draws: int,
    modes: int,
    top: int,
    batch_size: int,
) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    rows = len(ks) * (1 + draws) + 1
    total = len(positions) * (modes * math.ceil(rows / batch_size) + math.ceil(top / batch_size))
    return tqdm(total=total, desc="neuron ablations", unit="batch", leave=False)
