"""The experiment both causal tracers run: corrupt the subject, then measure.

A trace is specified by a `TraceSpec` (the prompt, the subject to corrupt, the answer to
score, and the noise, samples, window and kinds of state to restore); on tokens it becomes a
validated `Corruption`. Both tracers start from the same two runs: the clean prompt once
(`clean_run`) and the prompt once per noise sample with Gaussian noise on the subject's
embeddings (`corrupted_run`), and both return a `TraceResult`:

- the exact tracer (trace.py) restores each cell and re-runs what it changes;
- attribution patching (attribution.py) estimates the same cells from gradients.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypedDict, cast

import torch
from torch import Tensor

from factscope.errors import FactscopeError
from factscope.hooks import hooks
from factscope.locate.prompts import AnswerToken
from factscope.model import KVCache, Transformer
from factscope.tokenizer import Tokenizer

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
        from factscope.report.html import render_fragment
        from factscope.report.locate_html import trace_sections

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


# ---- the specification ---------------------------------------------------------------------


class TraceOptions(TypedDict, total=False):
    """How to trace, beyond the fact itself; what is left out takes `Corruption.of`'s
    default (every kind, 10 samples, a window of 10, the measured noise std, seed 0)."""

    kinds: Sequence[str]
    samples: int
    window: int
    noise_std: float | None
    seed: int


@dataclass(frozen=True)
class TraceSpec:
    """One fact to trace, in text, and how.

    prompt     the prompt, e.g. "Michael Jordan plays the sport of"
    subject    the text inside the prompt whose token embeddings are corrupted
    answer     the answer scored (None: the model's own top next token)
    noise_std  std of the noise on the subject's embeddings (None: 3 x the std of the
               embeddings of `SUBJECT_NAMES`, as ROME's "s3")
    samples    noise samples averaged over
    window     layers restored per mlp/attn cell (`window_layers`)
    kinds      which states to restore: any of `KINDS`
    seed       seed of the noise
    """

    prompt: str
    subject: str
    answer: str | None = None
    noise_std: float | None = None
    samples: int = 10
    window: int = 10
    kinds: Sequence[str] = KINDS
    seed: int = 0

    def options(self) -> TraceOptions:
        """The spec's options, as the token-level tracers take them."""
        return TraceOptions(
            kinds=self.kinds,
            samples=self.samples,
            window=self.window,
            noise_std=self.noise_std,
            seed=self.seed,
        )


@dataclass(frozen=True)
class Corruption:
    """A trace's validated inputs on tokens, shared by the exact, reference and approximate
    tracers: what is corrupted, with which noise, and what is restored and scored."""

    tokens: Tensor  # (1, T)
    subject_span: tuple[int, int]
    answer_id: int
    kinds: tuple[Kind, ...]
    samples: int
    window: int
    noise_std: float
    seed: int

    @classmethod
    def of(
        cls,
        model: Transformer,
        tokens: Tensor,
        subject_span: tuple[int, int],
        answer_id: int,
        kinds: Sequence[str] = KINDS,
        samples: int = 10,
        window: int = 10,
        noise_std: float | None = None,
        seed: int = 0,
    ) -> Corruption:
        """Check the inputs (one prompt, a subject span inside it, known kinds, an answer
        in the vocabulary); `noise_std` None measures it with `estimate_noise_std(model)`."""
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
        return cls(
            tokens.to(model.device),
            (start, stop),
            answer_id,
            tuple(cast(Kind, k) for k in kinds),
            samples,
            window,
            float(noise_std),
            seed,
        )

    def noise(self, d_model: int) -> Tensor:
        """The noise on the subject's embeddings: (samples, n_subject, D), see `subject_noise`."""
        start, stop = self.subject_span
        return subject_noise(self.samples, stop - start, d_model, self.noise_std, self.seed)

    def result(
        self, kind: Kind, method: Method, clean_p: float, corrupted_p: float, scores: Tensor
    ) -> TraceResult:
        """A TraceResult labelled with ids only; `trace_prompt` puts in the text."""
        ids = self.tokens[0].tolist()
        return TraceResult(
            model="",
            prompt="",
            subject="",
            answer=AnswerToken(str(self.answer_id), self.answer_id, str(self.answer_id), 1),
            tokens=[str(i) for i in ids],
            subject_span=self.subject_span,
            kind=kind,
            window=self.window,
            noise_std=self.noise_std,
            samples=self.samples,
            seed=self.seed,
            method=method,
            clean_p=clean_p,
            corrupted_p=corrupted_p,
            scores=scores.double().tolist(),
        )


__all__ = [
    "KINDS",
    "SUBJECT_NAMES",
    "CleanRun",
    "CorruptedRun",
    "Corruption",
    "TraceOptions",
    "TraceResult",
    "TraceSpec",
    "answer_probability",
    "clean_run",
    "corrupt_embed_hook",
    "corrupted_run",
    "estimate_noise_std",
    "restored_sites",
    "subject_noise",
    "window_layers",
]
