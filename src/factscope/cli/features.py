"""Sparse dictionaries: `sae train`, `sae eval`, and `features PROMPT --sae PATH`."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from factscope import __version__
from factscope.cli.common import (
    DeviceOpt,
    ForceOpt,
    FormatOpt,
    JsonOpt,
    ModelOpt,
    OutOpt,
    app,
    check_format,
    command_line,
    load,
    out,
    out_files,
    print_json,
    write_json,
)
from factscope.errors import FactscopeError
from factscope.registry import DEFAULT_MODEL

sae_app = typer.Typer(
    no_args_is_help=True, help="Train and evaluate sparse autoencoders and transcoders."
)
app.add_typer(sae_app, name="sae")

CorpusOpt = Annotated[
    str,
    typer.Option(
        help="'installed' (the model's packaged text + Python's docstrings) or a .txt/.jsonl file."
    ),
]
KINDS = ("topk", "jumprelu", "relu", "transcoder")


def _held_out(lm: Any, corpus: str, layer: int, tokens: int, held: int, seq_len: int) -> Any:
    from factscope.features.activations import cached_activations

    return cached_activations(lm, corpus, layer, tokens, held, seq_len=seq_len)


def _metrics_table(metrics: dict[str, Any], title: str) -> Table:
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    from factscope.report.features_html import METRIC_KEYS

    for key in METRIC_KEYS:
        value = metrics.get(key)
        table.add_row(
            key,
            "-" if value is None else f"{value:.4g}" if isinstance(value, float) else f"{value:,}",
        )
    return table


@sae_app.command("train")
def train(
    layer: Annotated[
        int, typer.Option(min=0, help="The layer (block) whose activations to learn.")
    ],
    out_dir: OutOpt = None,
    site: Annotated[str, typer.Option(help="resid (blocks.L.resid_post) or mlp-out.")] = "resid",
    kind: Annotated[
        str, typer.Option(help="topk, jumprelu, relu (+L1), or transcoder (TopK, MLP in -> out).")
    ] = "topk",
    latents: Annotated[int, typer.Option(min=2, help="Dictionary size d_sae.")] = 2048,
    k: Annotated[int, typer.Option(min=1, help="TopK: active latents per token.")] = 32,
    tokens: Annotated[
        int, typer.Option(min=1, help="Training tokens (activations collected once, cached).")
    ] = 254_000,
    held_out_tokens: Annotated[
        int, typer.Option(min=1, help="Held-out tokens for the metrics.")
    ] = 8_128,
    epochs: Annotated[float, typer.Option(min=0.01, help="Passes over the training tokens.")] = 2.0,
    batch_size: Annotated[int, typer.Option(min=1, help="Tokens per step.")] = 1024,
    lr: Annotated[float, typer.Option(min=0.0, help="Adam learning rate.")] = 1e-3,
    l1: Annotated[float, typer.Option(min=0.0, help="relu: L1 coefficient.")] = 5.0,
    l0: Annotated[float, typer.Option(min=0.0, help="jumprelu: L0 coefficient.")] = 1e-3,
    seq_len: Annotated[
        int, typer.Option(min=2, help="Tokens per corpus sequence (BOS included).")
    ] = 128,
    ce_sequences: Annotated[
        int, typer.Option(min=0, help="Held-out sequences for the CE loss (0: skip).")
    ] = 8,
    corpus: CorpusOpt = "installed",
    seed: Annotated[int, typer.Option(min=0, max=2**32 - 1, help="Random seed.")] = 0,
    model: ModelOpt = DEFAULT_MODEL,
    device: DeviceOpt = "cpu",
    force: ForceOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Train a sparse dictionary at one layer: resumable (run it again to continue), progress on
    stderr, float32; writes OUT/sae (SAELens folder), OUT/train.json and OUT/report.html."""
    from factscope.features.activations import SITES, ShuffledBatches
    from factscope.features.formats import save_saelens
    from factscope.features.metrics import evaluate
    from factscope.features.sae import SAEConfig
    from factscope.features.train import TrainConfig, batch_sites, train_dictionary

    if out_dir is None:
        raise FactscopeError(
            "--out is required: the folder for the SAE, its checkpoint and metrics"
        )
    if kind not in KINDS:
        raise FactscopeError(f"--kind {kind!r} is not valid; use one of {', '.join(KINDS)}")
    if site not in ("resid", "mlp-out"):
        raise FactscopeError(f"--site {site!r} is not valid; use resid or mlp-out")
    if kind == "topk" and k > latents:
        raise FactscopeError(f"--k {k} is more than --latents {latents}")
    names = ["train.json", "report.html", "training.png"]
    run_dir = out_dir / "run"
    if force and run_dir.exists():
        shutil.rmtree(run_dir)
    paths = out_files(out_dir, names, force)
    lm = load(model, device)
    if layer >= lm.cfg.n_layers:
        raise FactscopeError(
            f"--layer {layer} is out of range; the model has layers 0..{lm.cfg.n_layers - 1}"
        )
    train_store, held_store = _held_out(lm, corpus, layer, tokens, held_out_tokens, seq_len)
    transcoder = kind == "transcoder"
    cfg = SAEConfig(
        d_in=lm.cfg.d_model,
        d_sae=latents,
        kind="topk" if transcoder else kind,
        k=min(k, latents),
        d_out=lm.cfg.d_model if transcoder else None,
        transcoder=transcoder,
        layer=layer,
        site="mlp-out" if transcoder else site,
        model=lm.name,
    )
    assert set(batch_sites(cfg)) <= set(SITES)
    batches = ShuffledBatches(train_store, batch_sites(cfg), batch_size, seed=seed)
    n_steps = max(1, round(epochs * batches.batches_per_epoch))
    tc = TrainConfig(
        n_steps=n_steps,
        lr=lr,
        warmup_steps=min(20, n_steps),
        l1_coefficient=l1,
        l0_coefficient=l0,
        seed=seed,
        dead_after_tokens=min(100_000, n_steps * batch_size // 4 + 1),
        checkpoint_every=max(1, min(100, n_steps // 4)),
    )
    sae, history = train_dictionary(cfg, tc, batches, run_dir, device=lm.model.device)
    folded = sae.fold_scales()
    save_saelens(folded, out_dir / "sae", extra={"factscope_activations": str(train_store.folder)})
    sequences = held_store.tokens()[:ce_sequences] if ce_sequences else None
    metrics = evaluate(folded, held_store, lm.model, sequences)
    data = {
        "model": lm.name,
        "layer": layer,
        "site": cfg.site,
        "kind": kind,
        "sae": cfg.to_dict(),
        "train": tc.__dict__,
        "batch_size": batch_size,
        "train_tokens": train_store.info.n_sequences * (seq_len - 1),
        "corpus": train_store.info.corpus,
        "metrics": metrics.to_dict(),
        "history": history,
        "sae_path": str(out_dir / "sae"),
        "command": command_line(),
        "factscope_version": __version__,
    }
    write_json(paths["train.json"], data)
    from factscope.report.features_html import train_report
    from factscope.report.features_plots import training_curves
    from factscope.report.plots import save_figure

    save_figure(training_curves(data), paths["training.png"], force=True)
    paths["report.html"].write_text(train_report(data), "utf-8")
    if as_json:
        print_json(data)
        return
    out.print(
        _metrics_table(data["metrics"], f"{kind} SAE, layer {layer} {cfg.site}: held-out metrics")
    )
    out.print(f"wrote {out_dir}")


@sae_app.command("eval")
def eval_(
    path: Annotated[Path, typer.Argument(help="A SAELens folder or a Gemma Scope params file.")],
    layer: Annotated[
        int | None, typer.Option(min=0, help="Gemma Scope file: the layer it reads.")
    ] = None,
    site: Annotated[
        str | None, typer.Option(help="Gemma Scope file: resid, mlp-out or transcoder.")
    ] = None,
    held_out_tokens: Annotated[
        int, typer.Option(min=1, help="Held-out tokens for the metrics.")
    ] = 8_128,
    ce_sequences: Annotated[
        int, typer.Option(min=0, help="Held-out sequences for the CE loss (0: skip).")
    ] = 8,
    corpus: CorpusOpt = "installed",
    model: ModelOpt = DEFAULT_MODEL,
    device: DeviceOpt = "cpu",
    as_json: JsonOpt = False,
) -> None:
    """Held-out metrics of any saved SAE: L0, explained variance, MSE, CE loss recovered,
    dead and dense latents."""
    from factscope.features.formats import load_dictionary
    from factscope.features.inspect import check_fits
    from factscope.features.metrics import evaluate

    sae = load_dictionary(path, layer, site)
    lm = load(model, device)
    check_fits(lm, sae, str(path))
    _, held = _held_out(lm, corpus, sae.cfg.layer, 127, held_out_tokens, 128)
    sequences = held.tokens()[:ce_sequences] if ce_sequences else None
    metrics = evaluate(sae.to(lm.model.device), held, lm.model, sequences).to_dict()
    data = {
        "sae": str(path),
        "config": sae.cfg.to_dict(),
        "metrics": metrics,
        "command": command_line(),
    }
    if as_json:
        print_json(data)
        return
    out.print(_metrics_table(metrics, f"{path}: held-out metrics"))


@app.command("features")
def features(
    prompt: Annotated[
        str, typer.Argument(help="The prompt, e.g. 'Michael Jordan plays the sport of'.")
    ],
    sae_path: Annotated[
        Path, typer.Option("--sae", help="A SAELens folder or a Gemma Scope params file.")
    ],
    subject: Annotated[
        str | None, typer.Option(help="The subject, as written in the prompt.")
    ] = None,
    answer: Annotated[
        str | None, typer.Option(help="The answer token (default: the top prediction).")
    ] = None,
    layer: Annotated[
        int | None, typer.Option(min=0, help="Gemma Scope file: the layer it reads.")
    ] = None,
    site: Annotated[
        str | None, typer.Option(help="Gemma Scope file: resid, mlp-out or transcoder.")
    ] = None,
    top: Annotated[int, typer.Option(min=1, help="Latents per position with a dashboard.")] = 3,
    context_tokens: Annotated[
        int, typer.Option(min=1, help="Corpus tokens searched for top contexts.")
    ] = 16_384,
    steer: Annotated[float, typer.Option(help="Scale added to a latent when steering.")] = 10.0,
    model: ModelOpt = DEFAULT_MODEL,
    device: DeviceOpt = "cpu",
    out_dir: OutOpt = None,
    fmt: FormatOpt = "png",
    force: ForceOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Which latents fire at each token, dashboards of the top ones at the subject and the
    last token, attribution of p(answer) (grad x act, checked by ablation), interventions."""
    from factscope.features.activations import DiskStore
    from factscope.features.formats import load_dictionary
    from factscope.features.inspect import inspect_prompt

    fmt = check_format(fmt)
    names = ["features.json", "report.html", f"features.{fmt}"]
    paths = out_files(out_dir, names, force) if out_dir is not None else {}
    sae = load_dictionary(sae_path, layer, site)
    lm = load(model, device)
    store = None
    recorded = _recorded_store(sae_path)
    if recorded is not None:
        store = DiskStore(recorded)
    elif sae.cfg.layer < lm.cfg.n_layers:
        _, store = _held_out(lm, "installed", sae.cfg.layer, 127, context_tokens, 128)
    result = inspect_prompt(
        lm,
        sae.to(lm.model.device),
        prompt,
        subject=subject,
        answer=answer,
        store=store,
        top=top,
        context_tokens=context_tokens,
        steer_scale=steer,
    )
    data = {
        **result.to_dict(),
        "sae": str(sae_path),
        "config": sae.cfg.to_dict(),
        "command": command_line(),
        "factscope_version": __version__,
    }
    if paths:
        from factscope.report.features_html import features_report
        from factscope.report.features_plots import features_figure
        from factscope.report.plots import save_figure

        write_json(paths["features.json"], data)
        save_figure(features_figure(data), paths[f"features.{fmt}"], force=True)
        paths["report.html"].write_text(features_report(data), "utf-8")
    if as_json:
        print_json(data)
        return
    table = Table(title=f"top latents ({sae.cfg.kind}, layer {sae.cfg.layer} {sae.cfg.site})")
    for col in ("at", "latent", "act", "promotes", "fires on corpus"):
        table.add_column(col)
    for b in result.dashboards:
        table.add_row(
            b.position,
            str(b.latent),
            f"{b.activation:.3g}",
            " ".join(repr(t) for t, _ in b.promotes[:4]),
            f"{b.frequency:.2%}",
        )
    out.print(table)
    out.print(
        f"p({result.answer!r}) clean {result.p_clean:.4f}, SAE spliced {result.p_spliced:.4f}"
    )


def _recorded_store(sae_path: Path) -> Path | None:
    import json

    cfg = sae_path / "cfg.json"
    if not cfg.is_file():
        return None
    try:
        folder = json.loads(cfg.read_text()).get("factscope_activations")
    except ValueError:
        return None
    return Path(folder) if folder and (Path(folder) / "meta.json").is_file() else None
