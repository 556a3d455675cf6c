"""Causal tracing (Meng et al. 2022, "ROME"): which hidden states carry a fact?

Corrupt the subject: add Gaussian noise to the embeddings of the subject's tokens, so the
model no longer knows who "Michael Jordan" is and p(" basketball") drops. Then, one cell at
a time, restore a single piece of the clean run in the corrupted run and see how much of the
answer's probability comes back:

- kind "hidden": the residual stream after block l (`blocks.{l}.resid_post`) at token t;
- kind "mlp" / "attn": the MLP / attention output (`blocks.{j}.mlp.out`, `.attn.out`) at
  token t for every layer j in a window of `window` layers centred on l (ROME's window:
  `window_layers`).

`scores[t][l]` is p(answer) with cell (t, l) restored, averaged over the noise samples; its
excess over the corrupted p is the cell's *indirect effect*.

Two implementations, equal to float precision (tests/test_trace.py checks it):

- `trace_fact_reference`: ROME's algorithm, one full forward of every noisy prompt per cell.
- `trace_fact`: the fast one. Restoring at (t, l) changes nothing before token t (attention
  is causal) and nothing below the first restored layer. So we run the clean prompt once and
  the noisy prompts once (keeping their residual streams and keys/values), and per cell only
  recompute tokens t..T-1 from the first restored layer up, attending to the corrupted run's
  cached keys/values for tokens < t. Many cells and all noise samples go through one batched
  forward, and only the final position is unembedded.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, cast

import torch
from torch import Tensor

from factscope.errors import FactscopeError
from factscope.hooks import hooks
from factscope.locate.prompts import AnswerToken, answer_token, encode_prompt, predicted_answer
from factscope.model import KVCache, Transformer
from factscope.tokenizer import Tokenizer

if TYPE_CHECKING:
    from factscope.load import LoadedModel

Kind = Literal["hidden", "mlp", "attn"]
Method = Literal["exact", "approx"]
KINDS: tuple[Kind, ...] = ("hidden", "mlp", "attn")

# Subjects whose token embeddings set the noise scale (`estimate_noise_std`). ROME measures
# the std over the subjects of its 1,000 known facts; we have no dataset here, so we take a
# fixed mix of people, places, teams and companies of the kind facts are asked about.
SUBJECT_NAMES: tuple[str, ...] = (
    "Michael Jordan", "Lionel Messi", "Serena Williams", "Tom Brady", "Roger Federer",
    "Albert Einstein", "Marie Curie", "Isaac Newton", "Leonardo da Vinci", "Pablo Picasso",
    "William Shakespeare", "Jane Austen", "Wolfgang Amadeus Mozart", "Ludwig van Beethoven",
    "Barack Obama", "Angela Merkel", "Nelson Mandela", "Winston Churchill", "Napoleon",
    "Cleopatra", "Steve Jobs", "Bill Gates", "Elon Musk", "Taylor Swift", "Beyoncé",
    "The Beatles", "Paris", "Tokyo", "Cairo", "Buenos Aires", "Toronto", "Mumbai", "Berlin",
    "Mount Everest", "the Eiffel Tower", "the Amazon River", "the Sahara", "Lake Victoria",
    "Australia", "Brazil", "Canada", "Kenya", "Norway", "Microsoft", "Toyota", "Nintendo",
    "the Louvre", "Harvard University", "Real Madrid", "the New York Yankees",
)  # fmt: skip


def window_layers(layer: int, window: int, n_layers: int) -> range:
    """The layers restored for a windowed cell centred on `layer`, ROME's formula:
    `range(max(0, layer - window // 2), min(n_layers, layer - (-window // 2)))`, so a window
    of 10 centred on layer 7 restores layers 2..11, clipped at the first and last layer."""
    return range(max(0, layer - window // 2), min(n_layers, layer - (-window // 2)))


def restored_sites(kind: Kind, layer: int, window: int, n_layers: int) -> list[str]:
    """The hook sites that cell (·, layer) of `kind` restores."""
    if kind == "hidden":
        return [f"blocks.{layer}.resid_post"]
    return [f"blocks.{j}.{kind}.out" for j in window_layers(layer, window, n_layers)]


# ---- results ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TraceResult:
    """A causal trace of one fact for one kind of state, as plain data.

    Fields (all JSON-ready through `to_dict`):
      model          name of the model traced
      prompt         the prompt text ("" when traced from token ids)
      subject        the subject text ("" when traced from token ids)
      answer         the scored answer token (text, id, token, n_tokens, note)
      tokens         the prompt's tokens as the tokenizer spells them, BOS included
      subject_span   [start, stop) token indices of the corrupted subject
      kind           "hidden" (block output), "mlp" or "attn" (module output over a window)
      window         layers restored per cell for mlp/attn (see `window_layers`)
      noise_std      std of the Gaussian noise added to the subject's embeddings
      samples        number of noise samples averaged over
      seed           seed of the noise generator (same seed => same numbers)
      method         "exact" (restored and re-run) or "approx" (attribution patching)
      clean_p        p(answer) on the clean prompt
      corrupted_p    p(answer) with the subject corrupted, averaged over samples
      scores         [token][layer]: p(answer) with that cell restored (for "approx" the
                     first-order estimate of it), averaged over samples
    Derived (also in `to_dict`):
      indirect_effect              scores - corrupted_p, per cell
      ie_last_subject_token        indirect effect per layer at the last subject token
      ie_last_token                indirect effect per layer at the last token
      aie_last_subject_token       their mean over layers (for one fact: the noise samples are
      aie_last_token               already averaged; ROME's AIE also averages over facts)
      peak                         the cell with the largest indirect effect
    """

    model: str
    prompt: str
    subject: str
    answer: AnswerToken
    tokens: list[str]
    subject_span: tuple[int, int]
    kind: Kind
    window: int
    noise_std: float
    samples: int
    seed: int
    method: Method
    clean_p: float
    corrupted_p: float
    scores: list[list[float]]  # (tokens, layers)

    @property
    def indirect_effect(self) -> list[list[float]]:
        return [[p - self.corrupted_p for p in row] for row in self.scores]

    @property
    def ie_last_subject_token(self) -> list[float]:
        return self.indirect_effect[self.subject_span[1] - 1]

    @property
    def ie_last_token(self) -> list[float]:
        return self.indirect_effect[-1]

    @property
    def aie_last_subject_token(self) -> float:
        row = self.ie_last_subject_token
        return sum(row) / len(row)

    @property
    def aie_last_token(self) -> float:
        row = self.ie_last_token
        return sum(row) / len(row)

    @property
    def peak(self) -> dict[str, Any]:
        """The cell with the largest indirect effect: token index, token, layer, effect."""
        ie = self.indirect_effect
        t, l = max(
            ((t, l) for t in range(len(ie)) for l in range(len(ie[t]))),
            key=lambda cell: ie[cell[0]][cell[1]],
        )
        return {"token_index": t, "token": self.tokens[t], "layer": l, "effect": ie[t][l]}

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["answer"] = {**dataclasses.asdict(self.answer), "note": self.answer.note}
        data["subject_span"] = list(self.subject_span)
        for name in (
            "indirect_effect",
            "ie_last_subject_token",
            "ie_last_token",
            "aie_last_subject_token",
            "aie_last_token",
            "peak",
        ):
            data[name] = getattr(self, name)
        return data

    def _repr_html_(self) -> str:
        """The trace as the reports draw it, inline in a notebook."""
        from factscope.report.html import render_fragment, trace_sections

        return render_fragment(trace_sections([self.to_dict()]))


# ---- noise -----------------------------------------------------------------------------------


@torch.no_grad()
def estimate_noise_std(
    model: Transformer,
    subject_tokens: Tokenizer | Sequence[int] | None = None,
    *,
    factor: float = 3.0,
    n_random: int = 1000,
    seed: int = 0,
) -> float:
    """`factor` x the std of token embeddings, as ROME sets its noise ("s3" = 3 x std).

    The std is taken over every coordinate of the embeddings of a sample of tokens, in the
    space the noise is added to: the output of the `embed` site, i.e. after Gemma's
    sqrt(d_model) scaling. Which tokens:
      - a Tokenizer: the tokens of `SUBJECT_NAMES` (~50 people, places, organisations),
        each encoded on its own without BOS, like ROME's subjects;
      - a sequence of ids: exactly those tokens;
      - None: `n_random` vocabulary rows drawn with `seed` (for models without a tokenizer,
        e.g. the tiny test models).
    """
    if isinstance(subject_tokens, Tokenizer):
        ids = [i for name in SUBJECT_NAMES for i in subject_tokens.encode(name, add_bos=False)]
    elif subject_tokens is None:
        generator = torch.Generator().manual_seed(seed)
        n = min(n_random, model.cfg.vocab_size)
        ids = torch.randperm(model.cfg.vocab_size, generator=generator)[:n].tolist()
    else:
        ids = list(subject_tokens)
    if not ids:
        raise FactscopeError("no tokens to measure the embedding std on; give some token ids")
    embeddings = model.embed_tokens(torch.tensor([ids], device=model.device))  # (1, N, D)
    return factor * float(embeddings.float().std())


def subject_noise(
    samples: int, n_subject: int, d_model: int, noise_std: float, seed: int
) -> Tensor:
    """The noise added to the subject's embeddings: one Gaussian draw per sample,
    (samples, n_subject, D), float32 on the CPU from a generator seeded with `seed`
    (move it to the model's device: CPU and CUDA runs then see the same noise)."""
    generator = torch.Generator().manual_seed(seed)
    return noise_std * torch.randn((samples, n_subject, d_model), generator=generator)


def corrupt_embed_hook(
    noise: Tensor, subject_span: tuple[int, int]
) -> Callable[[Tensor, str], Tensor]:
    """A hook for the `embed` site adding `noise` (B, n_subject, D) to the subject tokens."""
    start, stop = subject_span

    def add_noise(x: Tensor, site: str) -> Tensor:
        x = x.clone()
        x[:, start:stop] += noise.to(x.device, x.dtype)
        return x

    return add_noise


# ---- the clean and corrupted runs ------------------------------------------------------------


@dataclass
class CleanRun:
    """The clean prompt's states, (1, T, D) per layer."""

    p: float  # p(answer)
    resid_post: list[Tensor]  # block outputs
    attn_out: list[Tensor]
    mlp_out: list[Tensor]

    def states(self, kind: Kind) -> list[Tensor]:
        return {"hidden": self.resid_post, "attn": self.attn_out, "mlp": self.mlp_out}[kind]


@dataclass
class CorruptedRun:
    """The noisy prompts' states: one row per noise sample."""

    p: Tensor  # (S,) p(answer) of each sample
    resid_in: list[Tensor]  # (S, T, D): input of block j for j < L; resid_in[L] = final
    keys: list[Tensor]  # (S, K, T, dh) per layer, as attention sees them (rotated)
    values: list[Tensor]  # (S, K, T, dh) per layer


def answer_probability(model: Transformer, last_resid: Tensor, answer_id: int) -> Tensor:
    """p(answer) from the residual at the final position (B, D) -> (B,).

    The softmax needs the normaliser over the whole vocabulary, so the unembedding cannot
    be skipped; it is applied to this one position only."""
    logits = model.unembed_residual(last_resid[:, None])[:, 0]  # (B, V)
    return torch.softmax(logits.float(), dim=-1)[:, answer_id]


@torch.no_grad()
def clean_run(model: Transformer, tokens: Tensor, answer_id: int) -> CleanRun:
    """Run the clean prompt (1, T) once, keeping every block's output and module outputs."""
    L = model.cfg.n_layers
    cache: dict[str, Tensor] = {}

    def record(x: Tensor, site: str) -> None:
        cache[site] = x

    sites = [f"blocks.{j}.{s}" for j in range(L) for s in ("resid_post", "attn.out", "mlp.out")]
    with hooks(model, {site: record for site in sites}):
        model(tokens, logits_at="last")
    last = cache[f"blocks.{L - 1}.resid_post"][:, -1]
    return CleanRun(
        p=float(answer_probability(model, last, answer_id)[0]),
        resid_post=[cache[f"blocks.{j}.resid_post"] for j in range(L)],
        attn_out=[cache[f"blocks.{j}.attn.out"] for j in range(L)],
        mlp_out=[cache[f"blocks.{j}.mlp.out"] for j in range(L)],
    )


@torch.no_grad()
def corrupted_run(
    model: Transformer,
    tokens: Tensor,
    subject_span: tuple[int, int],
    answer_id: int,
    noise: Tensor,
) -> CorruptedRun:
    """Run the prompt once per noise sample (noise (S, n_subject, D)), keeping the residual
    stream entering every block and every layer's keys and values."""
    L = model.cfg.n_layers
    noisy = tokens.expand(noise.shape[0], -1)  # (S, T)
    kv = KVCache.empty(L)
    cache: dict[str, Tensor] = {}

    def record(x: Tensor, site: str) -> None:
        cache[site] = x

    fns: dict[str, Any] = {"embed": corrupt_embed_hook(noise, subject_span)}
    fns.update({f"blocks.{j}.resid_pre": record for j in range(L)})
    fns[f"blocks.{L - 1}.resid_post"] = record
    with hooks(model, fns):
        model(noisy, kv_cache=kv, logits_at="last")
    resid_in = [cache[f"blocks.{j}.resid_pre"] for j in range(L)]
    resid_in.append(cache[f"blocks.{L - 1}.resid_post"])
    return CorruptedRun(
        p=answer_probability(model, resid_in[L][:, -1], answer_id),
        resid_in=resid_in,
        keys=[cast(Tensor, k) for k in kv.keys],
        values=[cast(Tensor, v) for v in kv.values],
    )


# ---- the fast tracer -------------------------------------------------------------------------


def _first_restored_layer(kind: Kind, layer: int, window: int, n_layers: int) -> int:
    """The first block whose input differs from the corrupted run when cell `layer` is
    restored (n_layers: only the final residual changes)."""
    if kind == "hidden":
        return layer + 1
    return window_layers(layer, window, n_layers).start


@torch.no_grad()
def _restore_and_rerun(
    model: Transformer,
    kind: Kind,
    t: int,
    layers: Sequence[int],
    window: int,
    clean: CleanRun,
    corrupt: CorruptedRun,
    answer_id: int,
    unembed_rows: int,
) -> Tensor:
    """p(answer) for cells (t, l) for l in `layers`, every noise sample: (len(layers), S).

    Only tokens t..T-1 are recomputed, from each cell's first restored layer upward, as one
    batch that grows as the layers of later cells begin: row (cell c, sample s) joins at
    block `first(c)` with the corrupted run's residual there (for "hidden" with the clean
    block output at token t), and attends to sample s's cached keys/values for tokens < t,
    which no restoration at t can change.
    """
    L = model.cfg.n_layers
    S, T, _ = corrupt.resid_in[0].shape
    positions = torch.arange(t, T, device=model.device)
    first = [_first_restored_layer(kind, l, window, L) for l in layers]
    windows = [window_layers(l, window, L) for l in layers]

    x: Tensor | None = None  # (R, T - t, D), rows of the cells begun so far
    row_cell: list[int] = []  # index into `layers` of each row
    row_sample: list[int] = []
    for j in range(min(first), L + 1):
        joining = [c for c in range(len(layers)) if first[c] == j]
        if joining:
            start = corrupt.resid_in[j][:, t:].repeat(len(joining), 1, 1)  # (n*S, T-t, D)
            if kind == "hidden":  # restore the clean output of block j - 1 at token t
                start[:, 0] = clean.resid_post[j - 1][0, t]
            x = start if x is None else torch.cat([x, start])
            row_cell += [c for c in joining for _ in range(S)]
            row_sample += list(range(S)) * len(joining)
        if j == L:
            break
        assert x is not None
        samples = torch.tensor(row_sample, device=model.device)
        kv = KVCache.empty(L)
        if t > 0:  # tokens before t: exactly the corrupted run's keys and values
            kv.keys[j] = corrupt.keys[j][samples, :, :t]
            kv.values[j] = corrupt.values[j][samples, :, :t]
        fns = {}
        if kind != "hidden":
            inside = [j in windows[c] for c in row_cell]
            if any(inside):
                rows = torch.tensor(inside, device=model.device)
                fns[f"blocks.{j}.{kind}.out"] = _restore_rows(rows, clean.states(kind)[j][0, t])
        with hooks(model, fns):
            x = model.blocks[j](x, positions, kv)

    assert x is not None
    last = x[:, -1]  # (R, D)
    p = torch.cat(
        [
            answer_probability(model, last[i : i + unembed_rows], answer_id)
            for i in range(0, last.shape[0], unembed_rows)
        ]
    )
    out = torch.empty(len(layers), S, dtype=p.dtype, device=p.device)
    out[torch.tensor(row_cell), torch.tensor(row_sample)] = p
    return out


def _restore_rows(rows: Tensor, clean_state: Tensor) -> Callable[[Tensor, str], Tensor]:
    """A hook setting the first position (token t) of the selected rows to the clean state."""

    def restore(x: Tensor, site: str) -> Tensor:
        x = x.clone()
        x[rows, 0] = clean_state
        return x

    return restore


@dataclass(frozen=True)
class _Setup:
    """Validated inputs of a trace, shared by the exact, reference and approximate tracers."""

    tokens: Tensor  # (1, T)
    subject_span: tuple[int, int]
    answer_id: int
    kinds: tuple[Kind, ...]
    samples: int
    window: int
    noise_std: float
    seed: int


def _setup(
    model: Transformer,
    tokens: Tensor,
    subject_span: tuple[int, int],
    answer_id: int,
    kinds: Sequence[str],
    samples: int,
    window: int,
    noise_std: float | None,
    seed: int,
) -> _Setup:
    if tokens.ndim != 2 or tokens.shape[0] != 1:
        shape = tuple(tokens.shape)
        raise FactscopeError(f"trace one prompt at a time: tokens (1, T), got {shape}")
    T = tokens.shape[1]
    start, stop = subject_span
    if not 0 <= start < stop <= T:
        raise FactscopeError(f"subject span {subject_span} is not a token range inside 0..{T}")
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise FactscopeError(f"unknown trace kind(s) {unknown}; use any of {', '.join(KINDS)}")
    if samples < 1 or window < 1:
        raise FactscopeError("samples and window must be at least 1")
    if not 0 <= answer_id < model.cfg.vocab_size:
        raise FactscopeError(f"answer id {answer_id} is outside the vocabulary")
    if noise_std is None:
        noise_std = estimate_noise_std(model)
    return _Setup(
        tokens.to(model.device),
        (start, stop),
        answer_id,
        tuple(cast(Kind, k) for k in kinds),
        samples,
        window,
        float(noise_std),
        seed,
    )


def _result(
    setup: _Setup, kind: Kind, method: Method, clean_p: float, corrupted_p: float, scores: Tensor
) -> TraceResult:
    """A TraceResult labelled with ids only; `trace_prompt` puts in the text."""
    ids = setup.tokens[0].tolist()
    return TraceResult(
        model="",
        prompt="",
        subject="",
        answer=AnswerToken(str(setup.answer_id), setup.answer_id, str(setup.answer_id), 1),
        tokens=[str(i) for i in ids],
        subject_span=setup.subject_span,
        kind=kind,
        window=setup.window,
        noise_std=setup.noise_std,
        samples=setup.samples,
        seed=setup.seed,
        method=method,
        clean_p=clean_p,
        corrupted_p=corrupted_p,
        scores=scores.double().tolist(),
    )


def _chunks(items: Sequence[int], size: int) -> Iterator[list[int]]:
    for i in range(0, len(items), size):
        yield list(items[i : i + size])


@torch.no_grad()
def trace_fact(
    model: Transformer,
    tokens: Tensor,
    subject_span: tuple[int, int],
    answer_id: int,
    kinds: Sequence[str] = KINDS,
    samples: int = 10,
    window: int = 10,
    noise_std: float | None = None,
    seed: int = 0,
    batch_size: int = 256,
    progress: bool = False,
) -> dict[Kind, TraceResult]:
    """Causal trace of p(answer_id) after `tokens` (1, T), subject tokens `subject_span`.

    Returns one TraceResult per kind with scores (T, n_layers). Noise: `subject_noise` with
    `seed`, std `noise_std` (default `estimate_noise_std(model)`; `trace_prompt` measures it
    on subject names with the tokenizer). At most `batch_size` rows (cells x samples) run
    through the blocks at once, which bounds memory. Tokens before the subject are the same
    in the clean and corrupted runs, so their cells score the corrupted p without running.
    """
    setup = _setup(model, tokens, subject_span, answer_id, kinds, samples, window, noise_std, seed)
    cfg = model.cfg
    T, L = setup.tokens.shape[1], cfg.n_layers
    start, stop = setup.subject_span
    noise = subject_noise(samples, stop - start, cfg.d_model, setup.noise_std, seed)
    clean = clean_run(model, setup.tokens, answer_id)
    corrupt = corrupted_run(model, setup.tokens, setup.subject_span, answer_id, noise)
    corrupted_p = float(corrupt.p.mean())
    cells_per_batch = max(1, batch_size // samples)
    tokens_traced = range(setup.subject_span[0], T)
    n_steps = len(setup.kinds) * len(tokens_traced) * math.ceil(L / cells_per_batch)
    bar = _progress(n_steps, progress)
    results: dict[Kind, TraceResult] = {}
    with bar:
        for kind in setup.kinds:
            scores = torch.full((T, L), corrupted_p, dtype=torch.float64)
            for t in tokens_traced:
                for layers in _chunks(range(L), cells_per_batch):
                    p = _restore_and_rerun(
                        model, kind, t, layers, window, clean, corrupt, answer_id, 64
                    )
                    scores[t, layers] = p.mean(dim=1).double().cpu()
                    bar.update(1)
            results[kind] = _result(setup, kind, "exact", clean.p, corrupted_p, scores)
    return results


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def _progress(total: int, show: bool) -> Any:
    if not show:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc="causal trace", unit="batch", leave=False)


# ---- the reference: ROME's algorithm, one full forward per cell ------------------------------


@torch.no_grad()
def trace_fact_reference(
    model: Transformer,
    tokens: Tensor,
    subject_span: tuple[int, int],
    answer_id: int,
    kinds: Sequence[str] = KINDS,
    samples: int = 10,
    window: int = 10,
    noise_std: float | None = None,
    seed: int = 0,
) -> dict[Kind, TraceResult]:
    """The same trace as `trace_fact`, computed the slow, obvious way (ROME's
    `trace_with_patch` per cell): every cell runs all noisy prompts through the whole model,
    with the noise added at `embed` and the clean state written over the restored sites."""
    setup = _setup(model, tokens, subject_span, answer_id, kinds, samples, window, noise_std, seed)
    T, L, D = setup.tokens.shape[1], model.cfg.n_layers, model.cfg.d_model
    noise = subject_noise(samples, subject_span[1] - subject_span[0], D, setup.noise_std, seed)
    noisy = setup.tokens.expand(samples, -1)
    clean = clean_run(model, setup.tokens, answer_id)
    states = {
        **{f"blocks.{j}.resid_post": clean.resid_post[j] for j in range(L)},
        **{f"blocks.{j}.attn.out": clean.attn_out[j] for j in range(L)},
        **{f"blocks.{j}.mlp.out": clean.mlp_out[j] for j in range(L)},
    }

    def run(restore: dict[str, list[int]]) -> float:
        fns: dict[str, Any] = {"embed": corrupt_embed_hook(noise, setup.subject_span)}
        for site, positions in restore.items():
            fns[site] = _restore_positions(positions, states[site])
        with hooks(model, fns):
            logits = model(noisy)  # (S, T, V), every position, as ROME does
        return float(torch.softmax(logits[:, -1].float(), dim=-1)[:, answer_id].mean())

    corrupted_p = run({})
    results: dict[Kind, TraceResult] = {}
    for kind in setup.kinds:
        scores = torch.empty(T, L, dtype=torch.float64)
        for t in range(T):
            for l in range(L):
                scores[t, l] = run({site: [t] for site in restored_sites(kind, l, window, L)})
        results[kind] = _result(setup, kind, "exact", clean.p, corrupted_p, scores)
    return results


def _restore_positions(
    positions: list[int], clean_state: Tensor
) -> Callable[[Tensor, str], Tensor]:
    """A hook writing the clean state (1, T, D) over `positions` of every row."""

    def restore(x: Tensor, site: str) -> Tensor:
        x = x.clone()
        x[:, positions] = clean_state[:, positions]
        return x

    return restore


# ---- from text -------------------------------------------------------------------------------


def trace_prompt(
    lm: LoadedModel,
    prompt: str,
    subject: str,
    answer: str | None = None,
    *,
    kinds: Sequence[str] = KINDS,
    samples: int = 10,
    window: int = 10,
    noise_std: float | None = None,
    seed: int = 0,
    method: Method = "exact",
    batch_size: int = 256,
    progress: bool = False,
) -> dict[Kind, TraceResult]:
    """Causal trace of `prompt` with `subject` corrupted, scoring `answer` (default: the
    model's own top next token; a multi-token answer is scored by its first token and the
    result's `answer.note` says so). `noise_std` defaults to 3 x the std of the embeddings of
    `SUBJECT_NAMES`. `method="approx"` uses attribution patching (locate/attribution.py)."""
    model, tokenizer = lm.model, lm.tokenizer
    tokens = encode_prompt(model, tokenizer, prompt)
    span = tokenizer.find_subject_span(prompt, subject)
    scored = (
        predicted_answer(model, tokenizer, tokens)
        if answer is None
        else answer_token(tokenizer, answer)
    )
    if noise_std is None:
        noise_std = estimate_noise_std(model, tokenizer)
    if method == "approx":
        from factscope.locate.attribution import approx_trace

        results = approx_trace(
            model, tokens, span, scored.id, kinds, samples, window, noise_std, seed
        )
    elif method == "exact":
        results = trace_fact(
            model, tokens, span, scored.id, kinds, samples, window, noise_std, seed,
            batch_size=batch_size, progress=progress,
        )  # fmt: skip
    else:
        raise FactscopeError(f"unknown trace method {method!r}; use exact or approx")
    labels = [tokenizer.token_str(i) for i in tokens[0].tolist()]
    return {
        kind: dataclasses.replace(
            r, model=lm.name, prompt=prompt, subject=subject, answer=scored, tokens=labels
        )
        for kind, r in results.items()
    }


__all__ = [
    "KINDS",
    "SUBJECT_NAMES",
    "TraceResult",
    "estimate_noise_std",
    "restored_sites",
    "subject_noise",
    "trace_fact",
    "trace_fact_reference",
    "trace_prompt",
    "window_layers",
]
