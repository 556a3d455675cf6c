"""Figures of locate results: pure functions from plain data (arrays, token strings) to a figure.

Nothing here touches a model or a result class: every function takes the numbers a result's
JSON holds, so a figure can be redrawn from a saved `result.json` alone. Figures are built as
bare `matplotlib.figure.Figure` objects (no pyplot, no global figure list, no GUI backend);
`save_figure` writes them with Agg (PNG) or the SVG backend.

- `trace_heatmap`: causal tracing in the style of ROME's figure (Meng et al. 2022): rows are
  the prompt's tokens (subject tokens marked with '*'), columns are layers, colour is
  p(answer) with the clean state restored at that cell; the colour scale starts at the
  corrupted p, so white means "restoring here does nothing".
- `patch_heatmap`, `head_heatmap`: activation patching, normalised so 0 = corrupt run and
  1 = clean run, on a diverging map centred at 0.
- `lens_plot`: logit lens, the answer's probability and rank per layer, and a table of each
  layer's top tokens.
- `dla_bar`: direct logit attribution, what each layer's attention and MLP add to the
  answer's logit, and the heads that add most.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from numpy.typing import ArrayLike, NDArray

from factscope.errors import FactscopeError

TRACE_KINDS = ("hidden", "mlp", "attn")
TRACE_CMAPS = {"hidden": "Purples", "mlp": "Greens", "attn": "Reds"}  # ROME's colours
KIND_NAMES = {"hidden": "state", "mlp": "MLP", "attn": "Attn"}
PATCH_CMAP = "RdBu"  # diverging: red below 0 (worse than corrupt), blue towards clean
FIGURE_SUFFIXES = (".png", ".svg")

_VISIBLE = {" ": "␣", "\n": "↵", "\t": "⇥", "$": r"\$"}


# ---- token labels -------------------------------------------------------------------------


def token_label(token: str) -> str:
    """A token spelled for a tick label: whitespace made visible, safe from mathtext.

    " Jordan" reads "␣Jordan", "\\n" reads "↵", other control characters read as "\\x07";
    every '$' is escaped so that matplotlib never parses a label as math (a token such as
    "$\\frac$" would otherwise fail to draw). An empty token reads "∅".
    """
    if token == "":
        return "∅"
    out = []
    for ch in token:
        if ch in _VISIBLE:
            out.append(_VISIBLE[ch])
        elif unicodedata.category(ch).startswith("C"):  # control, format, unassigned
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 256 else f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)


def text_label(text: str) -> str:
    """Free text (a title, an answer) made safe from mathtext, whitespace left as it is."""
    return text.replace("$", r"\$")


def subject_labels(tokens: Sequence[str], subject_span: tuple[int, int]) -> list[str]:
    """Token labels with the subject's tokens marked by a trailing '*', as in ROME."""
    start, stop = subject_span
    return [token_label(t) + ("*" if start <= i < stop else "") for i, t in enumerate(tokens)]


def pair_labels(clean: Sequence[str], corrupt: Sequence[str]) -> list[str]:
    """Labels for two aligned prompts: "␣Jordan/␣Brady" where they differ, one token if not."""
    if len(clean) != len(corrupt):
        raise FactscopeError(
            f"clean and corrupt prompts have {len(clean)} and {len(corrupt)} tokens; "
            "patching needs prompts of the same length"
        )
    return [
        token_label(a) if a == b else f"{token_label(a)}/{token_label(b)}"
        for a, b in zip(clean, corrupt, strict=True)
    ]


# ---- helpers ------------------------------------------------------------------------------


def _matrix(scores: ArrayLike, rows: int | None, what: str) -> NDArray[np.float64]:
    """`scores` as a 2-D float array, checking its row count when one is expected."""
    array = np.asarray(scores, dtype=np.float64)
    if array.ndim != 2 or 0 in array.shape:
        raise FactscopeError(f"{what} must be a non-empty 2-D table, got shape {array.shape}")
    if rows is not None and array.shape[0] != rows:
        raise FactscopeError(f"{what} has {array.shape[0]} rows but there are {rows} tokens")
    return array


def _layer_ticks(n_layers: int) -> list[int]:
    """Which layer indices to label: all of a small model, every 2nd or 5th of a deep one."""
    step = 1 if n_layers <= 12 else 2 if n_layers <= 30 else 5
    return list(range(0, n_layers, step))


def _figure_and_axes(ax: Axes | None, size: tuple[float, float]) -> tuple[Figure, Axes]:
    if ax is not None:
        fig = ax.get_figure()
        assert isinstance(fig, Figure)
        return fig, ax
    fig = Figure(figsize=size, layout="constrained")
    return fig, fig.add_subplot()


def _label_width(labels: Sequence[str]) -> float:
    """Inches taken by the longest tick label at ~8 pt."""
    return 0.08 * max((len(s) for s in labels), default=1)


# ---- causal tracing -----------------------------------------------------------------------


def trace_heatmap(
    scores: ArrayLike,
    tokens: Sequence[str],
    subject_span: tuple[int, int],
    kind: str = "hidden",
    title: str | None = None,
    *,
    low: float | None = None,
    answer: str | None = None,
    window: int | None = None,
    model: str | None = None,
    ax: Axes | None = None,
) -> Figure:
    """ROME's causal-tracing heatmap: p(answer) after restoring the clean state at each cell.

    scores: (T, L) p(answer) with the clean `kind` state restored at (token t, layer l)
        (for windowed kinds, the window of layers centred at l);
    tokens: T token strings; subject_span: [start, stop) of the subject's tokens;
    low: the corrupted p, the bottom of the colour scale (cells at or below it are white);
    answer: the answer's text for the colour bar; model: its name for the x label.
    Draws into `ax` when given (for side-by-side panels) and returns its figure.
    """
    if kind not in TRACE_KINDS:
        raise FactscopeError(f"unknown trace kind {kind!r}; use one of {', '.join(TRACE_KINDS)}")
    grid = _matrix(scores, len(tokens), f"{kind} trace scores")  # (T, L)
    n_tokens, n_layers = grid.shape
    start, stop = subject_span
    if not 0 <= start < stop <= n_tokens:
        raise FactscopeError(
            f"subject span [{start}, {stop}) is not inside the prompt's {n_tokens} tokens"
        )
    labels = subject_labels(tokens, subject_span)
    size = (1.6 + _label_width(labels) + 0.22 * n_layers, 1.2 + 0.3 * n_tokens)
    fig, ax = _figure_and_axes(ax, size)

    top = float(np.nanmax(grid))
    vmax = top if low is None else max(top, low)
    image = ax.imshow(
        grid, cmap=TRACE_CMAPS[kind], vmin=low, vmax=vmax, aspect="auto", interpolation="none"
    )
    ax.set_yticks(range(n_tokens), labels)
    ticks = _layer_ticks(n_layers)
    ax.set_xticks(ticks, [str(layer) for layer in ticks])

    name = KIND_NAMES[kind]
    within = f" within {text_label(model)}" if model else ""
    if kind == "hidden" or not window or window == 1:
        what = "layer" if kind == "hidden" else f"{name} layer"
        ax.set_xlabel(f"single restored {what}{within}")
    else:
        ax.set_xlabel(f"center of interval of {window} restored {name} layers")
    ax.set_title(
        text_label(title) if title else f"Impact of restoring {name} after corrupted input"
    )
    bar = fig.colorbar(image, ax=ax)
    bar.set_label(f"p({text_label(answer.strip())})" if answer else "p(answer)")
    return fig


# ---- activation patching ------------------------------------------------------------------


def _diverging(ax: Axes, grid: NDArray[np.float64], label: str, fig: Figure) -> None:
    """Draw `grid` on a red-white-blue scale symmetric about 0, at least [-1, 1]."""
    finite = np.abs(grid[np.isfinite(grid)])
    limit = max(1.0, float(finite.max()) if finite.size else 1.0)
    image = ax.imshow(
        grid, cmap=PATCH_CMAP, vmin=-limit, vmax=limit, aspect="auto", interpolation="none"
    )
    fig.colorbar(image, ax=ax).set_label(label)


def patch_heatmap(
    scores: ArrayLike,
    tokens: Sequence[str],
    title: str | None = None,
    *,
    corrupt_tokens: Sequence[str] | None = None,
    kind: str | None = None,
    label: str = "normalised logit difference (0 = corrupt, 1 = clean)",
    ax: Axes | None = None,
) -> Figure:
    """Activation patching: the metric after patching the clean `kind` at (layer, position).

    scores: (L, T), normalised so 0 = the corrupt run and 1 = the clean run;
    tokens: the clean prompt's T tokens; corrupt_tokens: the corrupt prompt's, shown as
    "clean/corrupt" where they differ. Rows are layers (0 at the top), columns positions.
    """
    grid = _matrix(scores, None, "patching scores")  # (L, T)
    n_layers, n_positions = grid.shape
    if len(tokens) != n_positions:
        raise FactscopeError(
            f"patching scores have {n_positions} positions but there are {len(tokens)} tokens"
        )
    if corrupt_tokens is None:
        labels = [token_label(t) for t in tokens]
    else:
        labels = pair_labels(tokens, corrupt_tokens)
    size = (2.2 + 0.45 * n_positions, 1.2 + _label_width(labels) + 0.2 * n_layers)
    fig, ax = _figure_and_axes(ax, size)
    _diverging(ax, grid, label, fig)
    ax.set_xticks(range(n_positions), labels, rotation=90)
    ticks = _layer_ticks(n_layers)
    ax.set_yticks(ticks, [str(layer) for layer in ticks])
    ax.set_ylabel("layer")
    ax.set_xlabel("position")
    ax.set_title(text_label(title) if title else f"Patching {kind or 'activations'}")
    return fig


def head_heatmap(
    scores: ArrayLike,
    title: str | None = None,
    *,
    label: str = "normalised logit difference (0 = corrupt, 1 = clean)",
    ax: Axes | None = None,
) -> Figure:
    """One value per attention head: scores (L, H), rows layers, columns heads, centred at 0."""
    grid = _matrix(scores, None, "head scores")  # (L, H)
    n_layers, n_heads = grid.shape
    fig, ax = _figure_and_axes(ax, (2.4 + 0.35 * n_heads, 1.2 + 0.2 * n_layers))
    _diverging(ax, grid, label, fig)
    ax.set_xticks(range(n_heads), [str(h) for h in range(n_heads)])
    ticks = _layer_ticks(n_layers)
    ax.set_yticks(ticks, [str(layer) for layer in ticks])
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    ax.set_title(text_label(title) if title else "Per-head effect")
    return fig


def head_position_heatmaps(
    scores: ArrayLike,
    tokens: Sequence[str],
    title: str | None = None,
    *,
    corrupt_tokens: Sequence[str] | None = None,
) -> Figure:
    """Patching one head at one position: scores (L, H, T), one (layer x position) panel
    per head, side by side, each centred at 0 like `patch_heatmap`."""
    grid = np.asarray(scores, dtype=np.float64)
    if grid.ndim != 3:
        raise FactscopeError(f"head x position scores must be (L, H, T), got {grid.shape}")
    n_layers, n_heads, n_positions = grid.shape
    labels = list(tokens) if corrupt_tokens is None else pair_labels(tokens, corrupt_tokens)
    panel = (2.2 + 0.45 * n_positions, 1.2 + _label_width(labels) + 0.2 * n_layers)
    fig = Figure(figsize=(panel[0] * n_heads, panel[1] + 0.4), layout="constrained")
    for head, ax in enumerate(fig.subplots(1, n_heads, squeeze=False)[0]):
        patch_heatmap(
            grid[:, head, :], tokens, f"head {head}", corrupt_tokens=corrupt_tokens, ax=ax
        )
    fig.suptitle(text_label(title) if title else "Patching one head at one position")
    return fig


# ---- logit lens and direct logit attribution ----------------------------------------------


def lens_plot(
    answer_prob: Sequence[float],
    answer_rank: Sequence[int],
    top_tokens: Sequence[Sequence[str]],
    top_probs: ArrayLike,
    *,
    layers: Sequence[str] | None = None,
    answer: str | None = None,
    title: str | None = None,
) -> Figure:
    """The logit lens at one position: each layer's residual read through the unembedding.

    answer_prob, answer_rank: (L,) the answer's probability and rank (0 = top-1) per layer;
    top_tokens: (L, k) each layer's k most likely tokens; top_probs: (L, k) their probs;
    layers: L row names (default "0".."L-1"); answer: the answer's token, drawn in bold
    where it is among a layer's top tokens.
    Top panel: probability (left axis) and place = rank + 1 (right axis, log scale).
    Bottom panel: a table, one row per layer, cells coloured by probability.
    """
    probs = _matrix(top_probs, len(top_tokens), "lens top-token probabilities")  # (L, k)
    n_layers, k = probs.shape
    if len(answer_prob) != n_layers or len(answer_rank) != n_layers:
        raise FactscopeError(
            f"the lens has {n_layers} layers of top tokens but {len(answer_prob)} answer "
            f"probabilities and {len(answer_rank)} ranks"
        )
    if any(len(row) != k for row in top_tokens):
        raise FactscopeError("every layer of the lens needs the same number of top tokens")
    names = list(layers) if layers is not None else [str(i) for i in range(n_layers)]
    if len(names) != n_layers:
        raise FactscopeError(f"{len(names)} layer names for {n_layers} lens layers")

    fig = Figure(figsize=(1.0 + 1.1 * k, 3.0 + 0.24 * n_layers), layout="constrained")
    line_ax, table_ax = fig.subplots(2, 1, height_ratios=[2.2, 0.24 * n_layers + 0.6])
    x = np.arange(n_layers)
    shown = text_label(answer.strip()) if answer else "answer"
    line_ax.plot(x, answer_prob, "o-", color="tab:blue", label=f"p({shown})")
    line_ax.set_ylabel(f"p({shown})", color="tab:blue")
    line_ax.set_ylim(0, max(1e-9, float(np.nanmax(np.asarray(answer_prob, float)))) * 1.1)
    rank_ax = line_ax.twinx()
    places = np.asarray(answer_rank, dtype=np.float64) + 1.0  # (L,) 1 = top
    rank_ax.plot(x, places, "s--", color="tab:orange", label="place")
    rank_ax.set_yscale("log")
    rank_ax.set_ylim(max(2.0, float(np.nanmax(places)) * 1.5), 0.8)  # place 1 at the top
    rank_ax.set_ylabel("place = rank + 1 (1 = top)", color="tab:orange")
    ticks = _layer_ticks(n_layers)
    line_ax.set_xticks(ticks, [text_label(names[i]) for i in ticks])
    line_ax.set_xlabel("layer")
    line_ax.set_title(text_label(title) if title else f"Logit lens: p({shown}) by layer")

    table_ax.imshow(probs, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto", interpolation="none")
    for row, tokens in enumerate(top_tokens):
        for col, token in enumerate(tokens):
            table_ax.text(
                col,
                row,
                token_label(token)[:14],
                ha="center",
                va="center",
                fontsize=7,
                color="white" if probs[row, col] > 0.55 else "black",
                fontweight="bold" if answer is not None and token == answer else "normal",
            )
    table_ax.set_yticks(range(n_layers), [text_label(n) for n in names])
    table_ax.set_xticks(range(k), [f"#{i + 1}" for i in range(k)])
    table_ax.xaxis.tick_top()
    table_ax.set_ylabel("layer")
    return fig


def dla_bar(
    attn: Sequence[float],
    mlp: Sequence[float],
    *,
    embed: float | None = None,
    heads: ArrayLike | None = None,
    top_k: int = 10,
    answer: str | None = None,
    title: str | None = None,
) -> Figure:
    """Direct logit attribution: what each component writes along the answer's unembedding.

    attn, mlp: (L,) each layer's attention and MLP term of the answer's logit;
    embed: the token embedding's term; heads: (L, H) per-head attention terms, of which the
    `top_k` largest in size are drawn as a second panel, labelled "L{layer}.H{head}".
    """
    n_layers = len(attn)
    if len(mlp) != n_layers:
        raise FactscopeError(f"{n_layers} attention terms but {len(mlp)} MLP terms")
    head_grid = None if heads is None else _matrix(heads, n_layers, "per-head terms")  # (L, H)
    panels = 1 if head_grid is None else 2
    fig = Figure(figsize=(2.0 + 0.32 * n_layers + 3.0 * (panels - 1), 3.4), layout="constrained")
    axes = fig.subplots(1, panels, width_ratios=[2.0 + 0.32 * n_layers, 3.0][:panels])
    bar_ax: Axes = axes if panels == 1 else axes[0]

    x = np.arange(n_layers)
    bar_ax.bar(x - 0.2, attn, width=0.4, color="tab:red", label="attn")
    bar_ax.bar(x + 0.2, mlp, width=0.4, color="tab:green", label="mlp")
    if embed is not None:
        bar_ax.bar([-1.0], [embed], width=0.6, color="tab:gray", label="embed")
    bar_ax.axhline(0.0, color="black", linewidth=0.6)
    ticks = _layer_ticks(n_layers)
    bar_ax.set_xticks(
        ([-1] if embed is not None else []) + ticks,
        (["emb"] if embed is not None else []) + [str(t) for t in ticks],
    )
    bar_ax.set_xlabel("layer")
    shown = text_label(answer.strip()) if answer else "answer"
    bar_ax.set_ylabel(f"contribution to logit({shown})")
    bar_ax.legend(fontsize=7)
    bar_ax.set_title(text_label(title) if title else "Direct logit attribution")

    if head_grid is not None:
        head_ax: Axes = axes[1]
        flat = head_grid.ravel()
        order = np.argsort(-np.abs(flat), kind="stable")[: min(top_k, flat.size)]
        n_heads = head_grid.shape[1]
        names = [f"L{i // n_heads}.H{i % n_heads}" for i in order]
        values = flat[order]
        rows = np.arange(len(order))
        colors = ["tab:blue" if v >= 0 else "tab:red" for v in values]
        head_ax.barh(rows, values, color=colors)
        head_ax.set_yticks(rows, names)
        head_ax.invert_yaxis()  # largest at the top
        head_ax.axvline(0.0, color="black", linewidth=0.6)
        head_ax.set_xlabel("contribution")
        head_ax.set_title(f"top {len(order)} heads")
    return fig


# ---- saving -------------------------------------------------------------------------------


def refuse_overwrite(path: Path, force: bool) -> None:
    """Raise unless `path` is free or `force` says to replace it."""
    if path.exists() and not force:
        raise FactscopeError(f"{path} already exists; pass --force to overwrite it")


def save_figure(fig: Figure, path: str | Path, *, force: bool = False, dpi: int = 150) -> Path:
    """Write `fig` as PNG or SVG, chosen by the path's suffix; never overwrite without force."""
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix not in FIGURE_SUFFIXES:
        raise FactscopeError(f"cannot save a figure as {target.name!r}; name it .png or .svg")
    refuse_overwrite(target, force)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Deterministic SVG ids and no date stamp, so the same result gives the same file.
    with matplotlib.rc_context({"svg.hashsalt": "factscope"}):
        metadata = {"Date": None} if suffix == ".svg" else {"Software": "factscope"}
        fig.savefig(target, format=suffix[1:], dpi=dpi, metadata=metadata)
    return target
