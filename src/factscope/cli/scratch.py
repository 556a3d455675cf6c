"""Build one from scratch: worked examples, a facts corpus, tokenizer and training."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, cast

import typer

from factscope.cli.common import (
    DeviceOpt,
    DtypeOpt,
    ForceOpt,
    JsonOpt,
    ModelOpt,
    app,
    command_line,
    err,
    load,
    out,
    out_files,
    print_json,
    status,
    write_json,
)
from factscope.errors import FactscopeError
from factscope.registry import DEFAULT_MODEL

explain_app = typer.Typer(help="Worked examples: the article's first network, a real block.")
app.add_typer(explain_app, name="explain")


@explain_app.command("basics")
def explain_basics(
    steps: Annotated[int, typer.Option(min=1, help="Gradient-descent steps.")] = 200,
    lr: Annotated[float, typer.Option(min=0.0, help="Learning rate.")] = 0.5,
    as_json: JsonOpt = False,
) -> None:
    """The leaf/flower network of "Understanding LLMs from scratch using middle school
    math", as arithmetic you can check, then trained by gradient descent."""
    from factscope.scratch.walkthrough import (
        ARTICLE_NUMBERS,
        OUR_NUMBERS,
        basics_forward,
        basics_lines,
        train_basics,
        training_lines,
    )

    forward = basics_forward()
    training = train_basics(steps=steps, learning_rate=lr)
    if as_json:
        print_json({"forward": forward.to_dict(), "training": training.to_dict()})
        return
    print(f"from the article: {ARTICLE_NUMBERS}.\nours: {OUR_NUMBERS}.\n")
    print("\n".join(basics_lines(forward)))
    print()
    print("\n".join(training_lines(training, every=max(1, steps // 8))))


@explain_app.command("layer")
def explain_layer(
    prompt: str,
    layer: Annotated[int, typer.Option(min=0, help="Which block.")],
    token: Annotated[int, typer.Option(help="Token index (negative counts from the end).")] = -1,
    values: Annotated[int, typer.Option(min=1, help="Numbers shown per step.")] = 4,
    model: ModelOpt = DEFAULT_MODEL,
    device: DeviceOpt = "cpu",
    dtype: DtypeOpt = "float32",
    as_json: JsonOpt = False,
) -> None:
    """One token's trip through one block: norm, Q/K/V, attention weights, MLP, residual adds,
    each read from the model's hook sites."""
    from factscope.scratch.walkthrough import explain_layer as trip_through
    from factscope.scratch.walkthrough import layer_lines

    if not prompt.strip():
        raise FactscopeError("the prompt is empty; give some text")
    lm = load(model, device, dtype)
    trip = trip_through(lm, prompt, layer, token, values)
    if as_json:
        print_json(trip.to_dict())
        return
    print("\n".join(layer_lines(trip)))


@app.command()
def corpus(
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Folder for the corpus files.")],
    people: Annotated[int, typer.Option(min=2, help="How many fictional people.")] = 1000,
    regime: Annotated[
        str, typer.Option(help="single: one fixed biography each; multi: several, shuffled.")
    ] = "multi",
    bios_per_person: Annotated[
        int, typer.Option(min=1, help="Biographies per person (multi).")
    ] = 5,
    qa_fraction: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of people whose QA is trained on.")
    ] = 0.5,
    fullname: Annotated[
        bool, typer.Option("--fullname", help="Name the person in every sentence.")
    ] = False,
    eval_people: Annotated[
        int, typer.Option(min=0, help="People with a fresh biography in eval.txt.")
    ] = 200,
    seed: Annotated[
        int, typer.Option(min=0, max=2**32 - 1, help="Seed of every random choice.")
    ] = 0,
    force: ForceOpt = False,
) -> None:
    """A corpus of made-up people, biographies and QA pairs (Physics of LMs 3.1 style)."""
    from factscope.scratch.corpus import (
        CORPUS_FILES,
        REGIMES,
        CorpusSettings,
        Regime,
        make_corpus,
        write_biography_corpus,
    )

    if regime not in REGIMES:
        raise FactscopeError(f"--regime {regime!r} is unknown; use single or multi")
    settings = CorpusSettings(
        people, cast(Regime, regime), bios_per_person, qa_fraction, fullname, eval_people, seed
    )
    made = make_corpus(settings)
    paths = out_files(out_dir, list(CORPUS_FILES), force)
    write_biography_corpus(made, out_dir, paths)
    trained = sum(p.split == "train" for p in made.people)
    out.print(
        f"wrote {out_dir}/: {len(made.people)} people ({trained} with QA trained, "
        f"{len(made.people) - trained} held out), {len(made.biographies)} biographies "
        f"({regime}), {len(made.qa)} questions"
    )
    out.print(f"example: {made.biographies[0]}")


@app.command("train")
def train_command(
    data: Annotated[Path, typer.Argument(help="Training text: one document a line (.txt/.jsonl).")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Run folder.")],
    eval_data: Annotated[
        Path | None, typer.Option(help="Documents for the evaluation loss.")
    ] = None,
    init: Annotated[
        str | None, typer.Option(help="Start from this model (fine-tuning): path or name.")
    ] = None,
    preset: Annotated[str, typer.Option(help="tiny, small, medium or gpt2-small.")] = "small",
    mlp: Annotated[str, typer.Option(help="swiglu, geglu, relu (plain) or gelu (plain).")] = (
        "swiglu"
    ),
    vocab_size: Annotated[int, typer.Option(min=1, help="BPE vocabulary to train.")] = 2048,
    tokenizer_data: Annotated[
        Path | None, typer.Option(help="Extra text the tokenizer is also trained on.")
    ] = None,
    context: Annotated[int, typer.Option(min=1, help="The model's context length.")] = 128,
    seq_len: Annotated[int, typer.Option(min=1, help="Tokens per training row.")] = 128,
    steps: Annotated[int, typer.Option(min=1, help="Optimizer steps.")] = 1000,
    batch_size: Annotated[int, typer.Option(min=1, help="Rows per step.")] = 32,
    lr: Annotated[float, typer.Option(min=0.0, help="Peak learning rate.")] = 1e-3,
    warmup: Annotated[int, typer.Option(min=0, help="Warm-up steps.")] = 50,
    min_lr_ratio: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Final rate / peak rate.")
    ] = 0.1,
    weight_decay: Annotated[float, typer.Option(min=0.0)] = 0.1,
    grad_clip: Annotated[float, typer.Option(min=0.0, help="Max gradient norm.")] = 1.0,
    eval_every: Annotated[int, typer.Option(min=1)] = 100,
    checkpoint_every: Annotated[int, typer.Option(min=1)] = 200,
    seed: Annotated[int, typer.Option(min=0, max=2**32 - 1)] = 0,
    stop_after: Annotated[
        int | None, typer.Option(min=1, help="Stop after this many steps (resume later).")
    ] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out.")] = False,
    device: DeviceOpt = "cpu",
    force: ForceOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Train a small Llama-style model (the same Transformer class) with AdamW, warm-up +
    cosine decay, clipping, eval loss and exactly resumable checkpoints."""
    from factscope import __version__
    from factscope.config import model_config
    from factscope.load import load_model, parse_device
    from factscope.report.scratch_plots import loss_curve
    from factscope.scratch.train import RunSpec, TrainingSettings, read_training_texts, train

    target = parse_device(device)
    train_cfg = TrainingSettings(
        steps=steps, batch_size=batch_size, seq_len=seq_len, lr=lr, min_lr_ratio=min_lr_ratio,
        warmup_steps=warmup, weight_decay=weight_decay, grad_clip=grad_clip,
        eval_every=eval_every, checkpoint_every=checkpoint_every, seed=seed,
    )  # fmt: skip
    docs = read_training_texts(data)
    eval_docs = read_training_texts(eval_data) if eval_data is not None else None
    init_state = None
    provenance = {"command": command_line(), "factscope_version": __version__}
    if init is not None:
        with status(f"loading {init} ..."):
            base = load_model(init)
        cfg, tokenizer = base.cfg, base.tokenizer
        init_state = {k: v.detach().clone() for k, v in base.model.state_dict().items()}
        provenance["init"] = init
    else:
        tokenizer = _run_tokenizer(out_dir if resume else None, docs, tokenizer_data, vocab_size)
        # BPE stops merging when the corpus runs out of pairs: size the embedding to the
        # vocabulary it reached, not the one asked for (every id then has a token to show)
        cfg = model_config(preset, tokenizer.vocab_size, context, mlp)
    spec = RunSpec(
        out_dir, cfg, train_cfg, tokenizer, docs, eval_docs,
        data_files={"train": str(data), "eval": str(eval_data) if eval_data else ""},
        init_state=init_state, provenance=provenance, device=str(target),
    )  # fmt: skip
    result = train(spec, resume=resume, force=force, stop_after=stop_after, progress=True)
    fig = loss_curve(
        result.history.to_dict(), title=f"{out_dir.name}: {result.parameters:,} params"
    )
    fig.savefig(out_dir / "loss.png", dpi=120, bbox_inches="tight")
    summary = {k: v for k, v in result.to_dict().items() if k != "history"}
    write_json(out_dir / "result.json", summary)
    if as_json:
        print_json(summary)
        return
    ev = f", eval loss {result.eval_loss:.3f}" if result.eval_loss is not None else ""
    out.print(
        f"{result.steps_done}/{result.steps} steps: loss {result.first_loss:.3f} -> "
        f"{result.last_loss:.3f}{ev}; {result.tokens_per_s:,.0f} tokens/s; "
        f"{result.parameters:,} parameters"
    )
    if result.model_dir:
        out.print(f"model saved to {result.model_dir} (load it with --model {result.model_dir})")
    else:
        err.print("stopped early; continue with the same command and --resume")


def _run_tokenizer(run: Path | None, docs: list[str], extra: Path | None, vocab_size: int) -> Any:
    """The run's tokenizer: the saved one when resuming, else a BPE trained on the data."""
    from factscope.scratch.bpe import train_bpe
    from factscope.scratch.train import read_training_texts
    from factscope.tokenizer import Tokenizer

    if run is not None and (run / "tokenizer.json").is_file():
        return Tokenizer.load(run / "tokenizer.json")
    texts = docs + (read_training_texts(extra) if extra is not None else [])
    with status(f"training a {vocab_size}-token byte-level BPE ..."):
        return train_bpe(texts, vocab_size)


@app.command()
def knowledge(
    corpus_dir: Annotated[Path, typer.Option("--corpus", help="Folder from `factscope corpus`.")],
    model: ModelOpt = DEFAULT_MODEL,
    limit: Annotated[int | None, typer.Option(min=1, help="Questions per split at most.")] = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out", "-o", help="Folder for the JSON.")
    ] = None,
    device: DeviceOpt = "cpu",
    force: ForceOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Accuracy on attribute questions for trained people and for held-out people."""
    from factscope.scratch.knowledge import knowledge_check

    paths = out_files(out_dir, ["knowledge.json"], force) if out_dir is not None else {}
    lm = load(model, device)
    with status("asking every question ..."):
        result = knowledge_check(lm, corpus_dir, limit=limit)
    data = {**result.to_dict(), "command": command_line()}
    if paths:
        write_json(paths["knowledge.json"], data)
    if as_json:
        print_json(data)
        return
    from rich.table import Table

    table = Table(title=f"{lm.name}: whole-answer accuracy (greedy)")
    attributes = sorted({a for acc in result.accuracy.values() for a in acc if a != "all"})
    for column in ("people", "questions", "all", *attributes):
        table.add_column(column)
    for split, acc in result.accuracy.items():
        table.add_row(
            "trained" if split == "train" else "held-out", str(result.counts[split]),
            f"{acc['all']:.1%}", *[f"{acc[a]:.0%}" for a in attributes],
        )  # fmt: skip
    out.print(table)
