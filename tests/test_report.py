"""Figures and HTML reports from plain result dicts: axes show the data they were given,
labels survive hostile tokens, files are never overwritten by accident, and a report is one
offline file whose embedded JSON reads back equal to the result."""

from __future__ import annotations

import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from matplotlib.cbook import is_math_text
from matplotlib.figure import Figure

from factscope.errors import FactscopeError
from factscope.report import (
    dla_bar,
    head_heatmap,
    head_position_heatmaps,
    lens_plot,
    lens_report,
    patch_heatmap,
    patch_report,
    read_report_data,
    save_figure,
    token_label,
    trace_heatmap,
    trace_report,
    write_report,
)
from factscope.report.html import Section, Table, render_report

TOKENS = ["<bos>", "Michael", " Jordan", " plays", " the", " sport", " of"]
LABELS = ["<bos>", "Michael*", "␣Jordan*", "␣plays", "␣the", "␣sport", "␣of"]
T, L, H = len(TOKENS), 6, 4
ANSWER = {"text": " basketball", "id": 7, "token": " basketball", "n_tokens": 1, "note": None}


def _trace(kind: str, seed: int = 0, prompt: str = "Michael Jordan plays the sport of") -> dict:
    rng = np.random.default_rng(seed)
    return {
        "model": "tiny",
        "prompt": prompt,
        "subject": "Michael Jordan",
        "answer": ANSWER,
        "tokens": TOKENS,
        "subject_span": [1, 3],
        "kind": kind,
        "window": 1 if kind == "hidden" else 3,
        "noise_std": 0.25,
        "samples": 4,
        "seed": 0,
        "method": "exact",
        "clean_p": 0.8,
        "corrupted_p": 0.1,
        "scores": rng.uniform(0.1, 0.7, (T, L)).tolist(),
    }


def _ticks(labels: list[Any]) -> list[str]:
    return [t.get_text() for t in labels]


# ---- token labels -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "label"),
    [
        (" Jordan", "␣Jordan"),
        ("\n", "↵"),
        ("a\tb", "a⇥b"),
        ("$", r"\$"),
        ("$x$", r"\$x\$"),
        ("\\", "\\"),
        ("\x07", "\\x07"),
        ("", "∅"),
        ("東京", "東京"),
    ],
)
def test_token_label_shows_whitespace_and_escapes_dollars(token: str, label: str) -> None:
    assert token_label(token) == label
    assert not is_math_text(token_label(token))


def test_mathtext_hostile_tokens_draw() -> None:
    tokens = ["<bos>", "$\\frac$", "\\", "$", " $x$", "^_{"]
    fig = trace_heatmap(np.full((6, 3), 0.5), tokens, (1, 3), "hidden", low=0.1)
    fig.savefig(io.BytesIO(), format="png")  # raises if a label were parsed as math
    ax = fig.axes[0]
    assert _ticks(ax.get_yticklabels()) == [
        "<bos>",
        r"\$\frac\$*",
        "\\*",
        r"\$",
        r"␣\$x\$",
        "^_{",
    ]
    # The same label unescaped does fail, so the escaping is what makes the draw pass.
    bad = Figure()
    bad.add_subplot().set_yticks([0], ["$\\frac$"])
    with pytest.raises(ValueError):
        bad.savefig(io.BytesIO(), format="png")


# ---- heatmaps -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "cmap", "xlabel"),
    [
        ("hidden", "Purples", "single restored layer within tiny"),
        ("mlp", "Greens", "center of interval of 3 restored MLP layers"),
        ("attn", "Reds", "center of interval of 3 restored Attn layers"),
    ],
)
def test_trace_heatmap_axes(kind: str, cmap: str, xlabel: str) -> None:
    trace = _trace(kind)
    fig = trace_heatmap(
        trace["scores"],
        TOKENS,
        (1, 3),
        kind,
        low=0.1,
        answer=" basketball",
        window=trace["window"],
        model="tiny",
    )
    ax, bar_ax = fig.axes
    image = ax.images[0]
    np.testing.assert_array_equal(image.get_array(), np.asarray(trace["scores"]))
    assert image.get_array().shape == (T, L)
    assert image.get_cmap().name == cmap
    assert image.norm.vmin == 0.1
    assert image.norm.vmax == pytest.approx(np.max(trace["scores"]))
    assert _ticks(ax.get_yticklabels()) == LABELS
    assert [float(t) for t in ax.get_yticks()] == list(range(T))  # one tick per token row
    assert ax.get_xlabel() == xlabel
    assert bar_ax.get_ylabel() == "p(basketball)"


def test_trace_heatmap_rejects_mismatched_data() -> None:
    scores = np.zeros((T, L))
    with pytest.raises(FactscopeError, match="rows"):
        trace_heatmap(scores[:-1], TOKENS, (1, 3))
    with pytest.raises(FactscopeError, match="subject span"):
        trace_heatmap(scores, TOKENS, (3, 3))
    with pytest.raises(FactscopeError, match="kind"):
        trace_heatmap(scores, TOKENS, (1, 3), "resid")


def test_patch_and_head_heatmaps_are_centred_at_zero() -> None:
    rng = np.random.default_rng(1)
    scores = rng.uniform(-0.5, 1.0, (L, T))
    corrupt = ["<bos>", "Tom", " Brady", *TOKENS[3:]]
    fig = patch_heatmap(scores, TOKENS, corrupt_tokens=corrupt, kind="resid")
    ax = fig.axes[0]
    image = ax.images[0]
    assert image.get_array().shape == (L, T)
    assert image.get_cmap().name == "RdBu"
    assert (image.norm.vmin, image.norm.vmax) == (-1.0, 1.0)
    assert _ticks(ax.get_xticklabels())[:3] == ["<bos>", "Michael/Tom", "␣Jordan/␣Brady"]
    assert _ticks(ax.get_xticklabels())[3:] == LABELS[3:]

    heads = rng.normal(0, 2.0, (L, H))
    head_image = head_heatmap(heads).axes[0].images[0]
    assert head_image.get_array().shape == (L, H)
    limit = np.abs(heads).max()
    assert (head_image.norm.vmin, head_image.norm.vmax) == pytest.approx((-limit, limit))

    with pytest.raises(FactscopeError, match="same length"):
        patch_heatmap(scores, TOKENS, corrupt_tokens=corrupt[:-1])


def test_head_position_heatmaps_one_panel_per_head() -> None:
    scores = np.random.default_rng(2).uniform(-1, 1, (L, H, T))
    fig = head_position_heatmaps(scores, TOKENS)
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == H
    for head, ax in enumerate(panels):
        np.testing.assert_array_equal(ax.images[0].get_array(), scores[:, head, :])
        assert ax.get_title() == f"head {head}"
        assert _ticks(ax.get_xticklabels()) == [token_label(t) for t in TOKENS]
    with pytest.raises(FactscopeError, match="L, H, T"):
        head_position_heatmaps(scores[0], TOKENS)


def test_lens_plot_shows_probabilities_ranks_and_top_tokens() -> None:
    rows, k = 5, 3
    top_tokens = [[" basketball", "$", " the"] for _ in range(rows)]
    top_probs = np.linspace(0.05, 0.9, rows * k).reshape(rows, k)
    probs = [0.01, 0.02, 0.1, 0.4, 0.9]
    ranks = [900, 40, 3, 1, 0]
    fig = lens_plot(probs, ranks, top_tokens, top_probs, answer=" basketball")
    line_ax, table_ax, rank_ax = fig.axes
    np.testing.assert_allclose(line_ax.lines[0].get_ydata(), probs)
    np.testing.assert_allclose(rank_ax.lines[0].get_ydata(), np.asarray(ranks) + 1)
    assert table_ax.images[0].get_array().shape == (rows, k)
    texts = [t.get_text() for t in table_ax.texts]
    assert texts == ["␣basketball", r"\$", "␣the"] * rows
    bold = [t.get_fontweight() for t in table_ax.texts]
    assert bold == ["bold", "normal", "normal"] * rows
    with pytest.raises(FactscopeError):
        lens_plot(probs[:-1], ranks, top_tokens, top_probs)


def test_dla_bar_heights_and_top_heads() -> None:
    attn, mlp = [0.5, -1.0, 2.0], [1.5, 0.25, -0.75]
    heads = [[0.1, 0.4], [-0.9, -0.1], [1.2, 0.8]]
    fig = dla_bar(attn, mlp, embed=0.3, heads=heads, top_k=3)
    bar_ax, head_ax = fig.axes
    attn_bars, mlp_bars, embed_bars = bar_ax.containers
    assert [b.get_height() for b in attn_bars] == attn
    assert [b.get_height() for b in mlp_bars] == mlp
    assert [b.get_height() for b in embed_bars] == [0.3]
    assert _ticks(head_ax.get_yticklabels()) == ["L2.H0", "L1.H0", "L2.H1"]
    assert [b.get_width() for b in head_ax.containers[0]] == [1.2, -0.9, 0.8]


# ---- saving -------------------------------------------------------------------------------


def test_save_figure_by_suffix_and_refuses_to_overwrite(tmp_path: Path) -> None:
    fig = trace_heatmap(np.eye(T, L), TOKENS, (1, 3))
    png = save_figure(fig, tmp_path / "trace.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = save_figure(fig, tmp_path / "trace.svg")
    assert "<svg" in svg.read_text()
    with pytest.raises(FactscopeError, match=r"trace\.png.*--force"):
        save_figure(fig, png)
    before = png.stat().st_mtime_ns
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_mtime_ns == before
    save_figure(fig, png, force=True)  # allowed
    with pytest.raises(FactscopeError, match=r"\.png or \.svg"):
        save_figure(fig, tmp_path / "trace.pdf")


# ---- HTML ---------------------------------------------------------------------------------


class _Scripts(HTMLParser):
    """Collects every <script>'s type and text and every src/href attribute."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[tuple[str | None, str]] = []
        self.links: list[str] = []
        self._type: str | None = None
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.links += [v or "" for k, v in attrs if k in ("src", "href", "xlink:href")]
        if tag == "script":
            self._in_script, self._type = True, dict(attrs).get("type")
            self.scripts.append((self._type, ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            kind, text = self.scripts[-1]
            self.scripts[-1] = (kind, text + data)


HOSTILE = 'Jordan <script>alert("x")</script> & --> "quotes" </script>'


def test_report_escapes_user_text_and_round_trips_json(tmp_path: Path) -> None:
    tokens = ["<bos>", "<script>", "-->", " $x$"]
    traces = [
        {
            **_trace(kind, prompt=HOSTILE),
            "tokens": tokens,
            "subject_span": [1, 2],
            "scores": np.full((4, L), 0.3).tolist(),
        }
        for kind in ("hidden", "mlp")
    ]
    page = trace_report(traces)
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page  # the title, escaped
    parser = _Scripts()
    parser.feed(page)
    assert [kind for kind, _ in parser.scripts] == ["application/json", None]
    assert json.loads(parser.scripts[0][1]) == {"traces": traces}  # parsed independently
    assert read_report_data(page) == {"traces": traces}
    # Offline: nothing is fetched.
    assert not [link for link in parser.links if not link.startswith(("#", "data:"))]
    for pattern in ('src="http', "href='http", 'href="http', "url(http", "@import", "<link"):
        assert pattern not in page
    # Inline SVGs keep unique ids, so one figure's glyphs and clips never stand for another's.
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) == len(set(ids))
    assert page.count("<svg") == 2

    path = write_report(tmp_path / "trace.html", page)
    assert path.read_text(encoding="utf-8") == page
    with pytest.raises(FactscopeError, match=r"trace\.html.*--force"):
        write_report(path, "other")
    assert path.read_text(encoding="utf-8") == page
    write_report(path, "other", force=True)
    assert path.read_text(encoding="utf-8") == "other"


def test_trace_report_summary_numbers() -> None:
    trace = _trace("hidden")
    scores = np.full((T, L), 0.1)
    scores[2, 4] = 0.9  # last subject token (" Jordan"), layer 4: IE 0.8
    scores[-1, 1] = 0.5  # last token, layer 1: IE 0.4
    trace["scores"] = scores.tolist()
    page = trace_report([trace], command="factscope trace 'x' --subject y")
    row = (
        '<td>hidden</td><td class="num">0.8</td><td class="num">0.1</td>'
        '<td class="num">0.8</td><td class="num">4</td><td class="num">0.1333</td>'
        '<td class="num">0.4</td><td class="num">1</td><td class="num">0.06667</td>'
    )
    assert row in page
    assert "factscope trace &#x27;x&#x27; --subject y" in page
    assert "factscope 0.1.0" in page
    with pytest.raises(FactscopeError):
        trace_report([])


def test_render_report_sections() -> None:
    page = render_report(
        "<b>t</b>",
        [Section("s<1>", text=["a < b"], tables=[Table(["c"], [[1.23456789], ["<i>"]])])],
        {"x": np.arange(3)},
    )
    assert "<h2>s&lt;1&gt;</h2>" in page and "<p>a &lt; b</p>" in page
    assert '<td class="num">1.235</td>' in page and "<td>&lt;i&gt;</td>" in page
    assert read_report_data(page) == {"x": [0, 1, 2]}
    with pytest.raises(FactscopeError, match="no factscope data"):
        read_report_data("<html></html>")


def _patch_dict() -> dict:
    rng = np.random.default_rng(2)
    resid = rng.uniform(-0.2, 1.0, (L, T)).tolist()
    resid[0][0] = None  # NaN scores are written as null
    return {
        "model": "tiny",
        "clean_prompt": "Michael Jordan plays the sport of",
        "corrupt_prompt": "Tom Brady plays the sport of",
        "clean_ids": list(range(T)),
        "corrupt_ids": list(range(T)),
        "clean_tokens": TOKENS,
        "corrupt_tokens": ["<bos>", "Tom", " Brady", *TOKENS[3:]],
        "answers": [ANSWER, {"text": " football", "id": 8, "token": " football"}],
        "clean_logit_diff": 3.5,
        "corrupt_logit_diff": -1.5,
        "sites": {"resid": "blocks.{l}.resid_pre"},
        "shapes": {
            "resid": "layer x position",
            "mlp": "layer x position",
            "heads": "layer x head (all positions)",
            "heads_pos": "layer x head x position",
        },
        "scores": {
            "resid": resid,
            "mlp": rng.uniform(0, 1, (L, T)).tolist(),
            "heads": rng.normal(size=(L, H)).tolist(),
            "heads_pos": rng.normal(size=(L, H, T)).tolist(),
        },
        "notes": ["a note <with> markup"],
    }


def test_patch_report() -> None:
    patch = _patch_dict()
    page = patch_report(patch)
    assert page.count("<svg") == 4  # resid, mlp, heads, and one panel per head for heads_pos
    assert "a note &lt;with&gt; markup" in page
    assert "factscope patch &#x27;Michael Jordan" in page
    assert read_report_data(page) == {"patch": patch}


def test_lens_report_with_dla() -> None:
    rows = L + 1
    lens = {
        "model": "tiny",
        "prompt": "Michael Jordan plays the sport of",
        "ids": list(range(T)),
        "tokens": TOKENS,
        "answer": ANSWER,
        "layers": [f"blocks.{i}.resid_pre" for i in range(L)] + [f"blocks.{L - 1}.resid_post"],
        "top_tokens": [[" basketball", " the", "$"]] * rows,
        "top_probs": [[0.5, 0.2, 0.1]] * rows,
        "answer_rank": [5, 4, 3, 2, 1, 0, 0],
        "answer_prob": [0.01, 0.02, 0.05, 0.1, 0.3, 0.5, 0.6],
        "notes": [],
    }
    attn, mlp = [0.5] * L, [0.25] * L
    dla = {
        "answer": ANSWER,
        "baseline": None,
        "logit": 0.1 + 0.75 * L,
        "embed": 0.1,
        "attn": attn,
        "mlp": mlp,
        "heads": [[0.125] * H] * L,
    }
    page = lens_report(lens, dla)
    assert page.count("<svg") == 2
    assert "<td>5.resid_post</td>" in page  # site names shortened
    assert '<td>sum - logit</td><td class="num">0</td>' in page
    assert read_report_data(page) == {"lens": lens, "dla": dla}
    alone = lens_report(lens)
    assert alone.count("<svg") == 1 and read_report_data(alone)["dla"] is None
