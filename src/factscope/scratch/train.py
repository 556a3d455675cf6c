"""Train a small model of the same `Transformer` class that reads Gemma and SmolLM2.

A Llama-style config (RMSNorm, rotary positions, no biases, tied embeddings) whose MLP is a
choice: `swiglu` (gated SiLU, Llama), `geglu` (gated GELU-tanh, Gemma), or the video's plain
`relu` MLP (no gate) and plain `gelu` (GPT-2). A plain MLP gets d_mlp = 4 * d_model and a
gated one 8/3 * d_model, so both have 8 * d_model^2 MLP weights per block.

The loop: documents (one a line) are tokenised, shuffled per epoch by a generator seeded
from (seed, epoch), packed into one stream and cut into rows of `seq_len + 1` tokens; step s
reads batch s of that order, so the data order is a function of the step alone. AdamW
(weight decay on matrices only), linear warm-up then cosine decay to `min_lr_ratio * lr`,
gradient clipping, periodic evaluation loss, and checkpoints that hold everything the next
step depends on (model, optimizer, scheduler, RNG states, step, history): a run stopped and
resumed reaches the same weights as an uninterrupted one, bit for bit on CPU.

A run folder:

    run.json          what was asked: model and training config, data files and hashes
    tokenizer.json    the run's tokenizer (trained BPE, or the --init model's)
    checkpoint.pt     the latest checkpoint (written atomically)
    history.json      loss per step, eval losses, tokens/s
    loss.png          the loss curve
    model/            the trained model, a native folder any command loads by path
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from factscope.config import ModelConfig
from factscope.errors import FactscopeError
from factscope.model import Transformer
from factscope.progress import progress_bar
from factscope.result import Result
from factscope.tokenizer import Tokenizer

RUN_FILES = (
    "run.json", "checkpoint.pt", "history.json", "loss.png", "model", "tokenizer.json",
    "result.json",
)  # fmt: skip


@dataclass(frozen=True)
class TrainingSettings:
    """How to train: every field is recorded in run.json and checked on --resume."""

    steps: int = 1000
    batch_size: int = 32
    seq_len: int = 128
    lr: float = 1e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 50
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    eval_every: int = 100
    eval_batches: int = 4
    checkpoint_every: int = 200
    seed: int = 0


# ---- data -------------------------------------------------------------------------------------


def read_training_texts(path: Path) -> list[str]:
    """Documents of a text file (one a non-empty line) or a JSONL file ({"text": ...})."""
    path = Path(path)
    if not path.is_file():
        raise FactscopeError(f"no such data file {path}; give a .txt (one document a line)")
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if path.suffix == ".jsonl":
        try:
            lines = [str(json.loads(line)["text"]) for line in lines]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise FactscopeError(
                f"{path}: every line must be a JSON object with a 'text'"
            ) from None
    if not lines:
        raise FactscopeError(f"{path} holds no documents; it is empty")
    return lines


class PackedData:
    """Documents as token ids, packed into (batch, seq_len + 1) rows in a seeded order.

    Epoch e shuffles the documents with a generator seeded from (seed, e), concatenates
    them (each starts with the tokenizer's BOS) and cuts rows of seq_len + 1 tokens that
    overlap by one, so every token but the stream's first is a target once. `batch(step)`
    depends on nothing but the step.
    """

    def __init__(
        self, docs: Sequence[list[int]], seq_len: int, batch_size: int, seed: int, shuffle: bool
    ) -> None:
        self.docs = [torch.tensor(d, dtype=torch.long) for d in docs]
        self.seq_len, self.batch_size, self.seed, self.shuffle = seq_len, batch_size, seed, shuffle
        self.n_tokens = sum(len(d) for d in docs)
        self.rows_per_epoch = max(0, (self.n_tokens - 1) // seq_len)
        self.steps_per_epoch = self.rows_per_epoch // batch_size
        if self.steps_per_epoch == 0:
            raise FactscopeError(
                f"the data has {self.n_tokens} tokens, too few for one batch of "
                f"{batch_size} x {seq_len + 1}; lower --batch-size or --seq-len, or add data"
            )
        self._epoch: tuple[int, Tensor] | None = None

    def epoch_stream(self, epoch: int) -> Tensor:
        if self._epoch is None or self._epoch[0] != epoch:
            order: list[int] = list(range(len(self.docs)))
            if self.shuffle:
                g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
                order = torch.randperm(len(self.docs), generator=g).tolist()
            self._epoch = (epoch, torch.cat([self.docs[i] for i in order]))
        return self._epoch[1]

    def batch(self, step: int) -> tuple[Tensor, Tensor]:
        """Inputs and next-token targets of training step `step`, each (B, T)."""
        epoch, index = divmod(step, self.steps_per_epoch)
        stream = self.epoch_stream(epoch)
        T = self.seq_len
        start = index * self.batch_size * T
        rows = torch.stack(
            [stream[start + r * T : start + r * T + T + 1] for r in range(self.batch_size)]
        )  # (B, T + 1)
        return rows[:, :-1], rows[:, 1:]


def encode_documents(tokenizer: Tokenizer, docs: Sequence[str]) -> list[list[int]]:
    """Each document's ids, BOS first (the separator between packed documents)."""
    return [tokenizer.encode(d, add_bos=True) for d in docs]


# ---- model and optimiser ----------------------------------------------------------------------


def init_weights(model: Transformer, seed: int) -> None:
    """GPT-2's initialisation: N(0, 0.02) for embeddings and matrices, output projections
    scaled by 1/sqrt(2 * n_layers) (each adds to the residual twice per block), norms 1."""
    torch.manual_seed(seed)
    residual_std = 0.02 / math.sqrt(2 * model.cfg.n_layers)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.fill_(1.0)
            elif name.endswith(("o_proj.weight", "down_proj.weight")):
                p.normal_(0.0, residual_std)
            else:
                p.normal_(0.0, 0.02)


def make_optimizer(model: Transformer, cfg: TrainingSettings) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices and embeddings, none on norm weights."""
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))


def lr_factor(cfg: TrainingSettings) -> Callable[[int], float]:
    """Multiplier of the peak rate at step s: linear warm-up, then cosine to min_lr_ratio."""

    def factor(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps))
        cosine = 0.5 * (1 + math.cos(math.pi * progress))
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * cosine

    return factor


def lm_loss(model: Transformer, x: Tensor, y: Tensor) -> Tensor:
    """Mean next-token cross-entropy of inputs x against targets y, both (B, T)."""
    logits = model(x)  # (B, T, V)
    return F.cross_entropy(logits.flatten(0, 1).float(), y.flatten())


@torch.no_grad()
def eval_loss(model: Transformer, data: PackedData, batches: int, device: torch.device) -> float:
    """Mean loss over the first `batches` batches of `data` (in file order)."""
    was_training = model.training
    model.eval()
    losses = []
    for step in range(min(batches, data.steps_per_epoch)):
        x, y = data.batch(step)
        losses.append(float(lm_loss(model, x.to(device), y.to(device))))
    model.train(was_training)
    return sum(losses) / len(losses)


# ---- a run ------------------------------------------------------------------------------------


@dataclass
class History(Result):
    """What the run measured: training loss per step, eval loss now and then, speed."""

    step: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    eval_step: list[int] = field(default_factory=list)
    eval_loss: list[float] = field(default_factory=list)
    tokens_per_s: list[float] = field(default_factory=list)  # per segment of the run


@dataclass(frozen=True)
class TrainResult(Result):
    run: str
    steps_done: int
    steps: int
    first_loss: float
    last_loss: float  # mean of the last 10 steps' training loss
    eval_loss: float | None
    tokens_per_s: float
    parameters: int
    model_dir: str | None  # None when stopped before the last step
    history: History


@dataclass
class RunSpec:
    """Everything a training run needs; `run.json` is its record."""

    out: Path
    model_cfg: ModelConfig
    train_cfg: TrainingSettings
    tokenizer: Tokenizer
    train_docs: list[str]
    eval_docs: list[str] | None = None
    data_files: dict[str, str] = field(default_factory=dict)  # name -> path, for the record
    init_state: dict[str, Tensor] | None = None  # start from these weights (fine-tuning)
    provenance: dict[str, Any] = field(default_factory=dict)
    device: str = "cpu"

    def record(self) -> dict[str, Any]:
        """The part of the run that must match on --resume (device excluded)."""
        return {
            "model_config": self.model_cfg.to_dict(),
            "train_config": asdict(self.train_cfg),
            "data": {
                "train_sha256": _docs_hash(self.train_docs),
                "eval_sha256": _docs_hash(self.eval_docs or []),
            },
        }


def _docs_hash(docs: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(docs).encode("utf-8")).hexdigest()[:16]


def check_spec(spec: RunSpec) -> None:
    """Refuse a run that cannot train, with what to change."""
    cfg, t = spec.model_cfg, spec.train_cfg
    if t.seq_len > cfg.context_length:
        raise FactscopeError(
            f"--seq-len {t.seq_len} is longer than the model's context of {cfg.context_length}; "
            "lower --seq-len or raise --context"
        )
    if spec.tokenizer.vocab_size > cfg.vocab_size:
        raise FactscopeError(
            f"the tokenizer has {spec.tokenizer.vocab_size} tokens but the model only "
            f"{cfg.vocab_size}; they must agree"
        )
    if t.warmup_steps >= t.steps:
        raise FactscopeError(f"--warmup {t.warmup_steps} must be less than --steps {t.steps}")
    if not spec.train_docs:
        raise FactscopeError("the training data holds no documents")


def prepare_out(out: Path, resume: bool, force: bool) -> None:
    """An empty or new folder; an existing run only with --resume (continue) or --force
    (its run files are deleted, nothing else)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FactscopeError(f"--out {out} is a file, not a folder; give a folder")
    has_run = out.is_dir() and any((out / name).exists() for name in RUN_FILES)
    if resume:
        if not (out / "checkpoint.pt").is_file():
            raise FactscopeError(f"{out} has no checkpoint.pt to resume; drop --resume")
        return
    if has_run and not force:
        raise FactscopeError(
            f"{out} already holds a training run; pass --resume to continue it or --force "
            "to start over"
        )
    if has_run:
        for name in RUN_FILES:
            path = out / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    out.mkdir(parents=True, exist_ok=True)


def _rng_states() -> dict[str, Any]:
    states: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    random.setstate(states["python"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write `payload` to a temporary file beside `path`, then rename it into place."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def train(
    spec: RunSpec,
    *,
    resume: bool = False,
    force: bool = False,
    stop_after: int | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train (or continue training) the run `spec` describes; see the module docstring.

    `stop_after` stops after that many steps in total (a checkpoint is written), as an
    interrupted run would; running again with `resume=True` finishes it.
    """
    check_spec(spec)
    prepare_out(spec.out, resume, force)
    t = spec.train_cfg
    device = torch.device(spec.device)
    out = Path(spec.out)
    record = spec.record()

    train_data = PackedData(
        encode_documents(spec.tokenizer, spec.train_docs), t.seq_len, t.batch_size, t.seed, True
    )
    eval_data = None
    if spec.eval_docs:
        eval_data = PackedData(
            encode_documents(spec.tokenizer, spec.eval_docs),
            t.seq_len,
            min(t.batch_size, 8),
            t.seed,
            False,
        )

    torch.manual_seed(t.seed)
    model = Transformer(spec.model_cfg)
    if spec.init_state is not None:
        model.load_state_dict(_with_tied(spec.model_cfg, spec.init_state), strict=True)
    else:
        init_weights(model, t.seed)
    model = model.to(device).train()
    optimizer = make_optimizer(model, t)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(t))
    history = History()
    start = 0

    checkpoint_path = out / "checkpoint.pt"
    if resume:
        saved = torch.load(checkpoint_path, map_location=device, weights_only=False)
        _check_same_run(saved["record"], record, checkpoint_path)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        _set_rng_states(saved["rng"])
        history = History(**saved["history"])
        start = int(saved["step"])
    else:
        spec.tokenizer.save(out / "tokenizer.json")
        (out / "run.json").write_text(
            json.dumps(
                {**record, "data_files": spec.data_files, "provenance": spec.provenance},
                indent=1,
            )
            + "\n",
            encoding="utf-8",
        )

    def checkpoint(step: int) -> None:
        save_checkpoint(
            checkpoint_path,
            {
                "record": record,
                "step": step,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "rng": _rng_states(),
                "history": history.to_dict(),
            },
        )
        (out / "history.json").write_text(json.dumps(history.to_dict()) + "\n")

    end = t.steps if stop_after is None else min(t.steps, stop_after)
    tokens_per_step = t.batch_size * t.seq_len
    bar = progress_bar(t.steps, progress, "train", "step", initial=start, leave=True)
    segment_start, segment_steps = time.perf_counter(), 0
    try:
        for step in range(start, end):
            x, y = train_data.batch(step)
            x, y = x.to(device), y.to(device)
            loss = lm_loss(model, x, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
            history.lr.append(float(scheduler.get_last_lr()[0]))
            optimizer.step()
            scheduler.step()
            history.step.append(step + 1)
            history.loss.append(float(loss.detach()))
            segment_steps += 1
            speed = segment_steps * tokens_per_step / (time.perf_counter() - segment_start)
            bar.update(1)
            bar.set_postfix(loss=f"{history.loss[-1]:.3f}", tok_s=f"{speed:,.0f}")
            done = step + 1
            if eval_data is not None and (done % t.eval_every == 0 or done == t.steps):
                history.eval_step.append(done)
                history.eval_loss.append(eval_loss(model, eval_data, t.eval_batches, device))
            if done % t.checkpoint_every == 0 and done < end:
                checkpoint(done)
    except KeyboardInterrupt:  # keep what was done: the run resumes from here
        pass
    finally:
        bar.close()
    elapsed = time.perf_counter() - segment_start
    history.tokens_per_s.append(segment_steps * tokens_per_step / max(elapsed, 1e-9))
    step = len(history.step)
    checkpoint(step)

    model_dir = None
    if step >= t.steps:
        from factscope.weights.native import save_native

        model_dir = out / "model"
        provenance = {
            **spec.provenance,
            "trained_by": "factscope train",
            "steps": t.steps,
            "run": str(out),
        }
        save_native(
            model_dir, spec.model_cfg, model.state_dict(), spec.tokenizer,
            provenance=provenance, force=True,
        )  # fmt: skip
    tail = history.loss[-10:]
    return TrainResult(
        run=str(out),
        steps_done=step,
        steps=t.steps,
        first_loss=history.loss[0] if history.loss else float("nan"),
        last_loss=sum(tail) / len(tail) if tail else float("nan"),
        eval_loss=history.eval_loss[-1] if history.eval_loss else None,
        tokens_per_s=history.tokens_per_s[-1],
        parameters=sum(p.numel() for p in model.parameters()),
        model_dir=str(model_dir) if model_dir else None,
        history=history,
    )


def _with_tied(cfg: ModelConfig, state: dict[str, Tensor]) -> dict[str, Tensor]:
    if cfg.tie_embeddings and "unembed.weight" not in state:
        return {**state, "unembed.weight": state["embedding.weight"]}
    return state


def _check_same_run(saved: dict[str, Any], asked: dict[str, Any], path: Path) -> None:
    """A checkpoint continues only the run it came from: same model, training and data."""
    for section in ("model_config", "train_config", "data"):
        a, b = saved.get(section, {}), asked[section]
        differ = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        if differ:
            key = differ[0]
            raise FactscopeError(
                f"{path} is from another config: {section}.{key} is {a.get(key)!r} there, "
                f"{b.get(key)!r} now; resume with the same options or use --force to start over"
            )


def load_run_record(out: Path) -> dict[str, Any]:
    path = Path(out) / "run.json"
    if not path.is_file():
        raise FactscopeError(f"{out} has no run.json; is it a training run folder?")
    return dict(json.loads(path.read_text(encoding="utf-8")))


__all__ = [
    "PackedData",
    "RunSpec",
    "TrainResult",
    "TrainingSettings",
    "read_training_texts",
    "train",
]
