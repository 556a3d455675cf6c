"""One-file HTML reports of locate results: open offline, share as a single attachment.

A report holds its figures as inline SVG, a few small tables, the command that reproduces
it, the factscope version and a timestamp, and the whole JSON result in a
`<script type="application/json" id="factscope-data">` block with a button to download it
(`read_report_data` parses it back). Nothing is fetched: no external CSS, scripts or fonts.
All user text (prompts, tokens, answers) is escaped; a prompt may contain `<script>`.

This module is the page engine: `Section` and `Table`, figures as SVG, `render_report` for a
whole page, `render_fragment` for a notebook cell or a web view. The builders of each
result's sections live next to their kind: locate_html.py (trace, patch, lens, DLA, the
prediction), reading_html.py, study_html.py, edit_html.py, superposition_html.py.
"""

from __future__ import annotations

import html
import io
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from factscope import __version__
from factscope.errors import FactscopeError
from factscope.report.plots import (
    refuse_overwrite,
)

DATA_ID = "factscope-data"


@dataclass
class Table:
    """A small table: column names and rows of cells (numbers are formatted, text escaped)."""

    columns: list[str]
    rows: list[list[Any]]
    caption: str = ""


@dataclass
class Section:
    """A heading, paragraphs of plain text, figures side by side, then tables."""

    heading: str
    text: list[str] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)


# ---- rendering ----------------------------------------------------------------------------

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
       max-width: 80em; padding: 0 1em; color: #222; line-height: 1.4; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; } h2 { font-size: 1.2em; margin-top: 1.6em; }
.meta { color: #666; font-size: 0.9em; }
pre { background: #f4f4f4; padding: 0.6em; overflow-x: auto; white-space: pre-wrap; }
.figures { display: flex; flex-wrap: wrap; gap: 1em; align-items: flex-start; }
figure { margin: 0; } figure svg { max-width: 100%; height: auto; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
caption { text-align: left; font-weight: 600; padding-bottom: 0.3em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.tok { font-family: ui-monospace, monospace; white-space: pre; background: #eef; }
button { font: inherit; padding: 0.3em 0.8em; }
"""

_DOWNLOAD_JS = """
document.getElementById("download").addEventListener("click", function () {
  var text = document.getElementById("@DATA_ID@").textContent;
  var url = URL.createObjectURL(new Blob([text], {type: "application/json"}));
  var a = document.createElement("a");
  a.href = url; a.download = this.dataset.name; document.body.appendChild(a); a.click();
  a.remove(); URL.revokeObjectURL(url);
});
""".replace("@DATA_ID@", DATA_ID)


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _cell(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return f"<td>{_esc(value)}</td>"
    if isinstance(value, int | np.integer):
        return f'<td class="num">{value}</td>'
    if isinstance(value, float | np.floating):
        return f'<td class="num">{float(value):.4g}</td>'
    return f"<td>{_esc(value)}</td>"


def _table(table: Table) -> str:
    head = "".join(f"<th>{_esc(c)}</th>" for c in table.columns)
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in table.rows)
    caption = f"<caption>{_esc(table.caption)}</caption>" if table.caption else ""
    return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def figure_svg(fig: Figure, prefix: str) -> str:
    """`fig` as an inline `<svg>` element whose ids all start with `prefix`.

    Several SVGs in one page share one id namespace; matplotlib names glyphs and clip paths
    by content, so two figures could define the same id differently. Prefixing keeps them
    apart. The XML prolog, DOCTYPE and metadata block are dropped.
    """
    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": "factscope", "svg.fonttype": "path"}):
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg") :]
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg, flags=re.DOTALL)
    ids = set(re.findall(r'\bid="([^"]+)"', svg))

    def rename(match: re.Match[str]) -> str:
        name = match.group(2)
        return match.group(1) + (f"{prefix}-{name}" if name in ids else name)

    return re.sub(r'(\bid="|href="#|url\(#)([^")]+)', rename, svg)


def _json_for_script(data: Any) -> str:
    """JSON text safe inside a <script> element: '<', '>' and '&' written as \\u escapes."""

    def plain(value: Any) -> Any:
        if isinstance(value, np.ndarray):
            return value.tolist()
        if isinstance(value, np.generic):
            return value.item()
        raise TypeError(f"cannot store a {type(value).__name__} in a report's JSON")

    text = json.dumps(data, ensure_ascii=False, default=plain)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_report(
    title: str,
    sections: Sequence[Section],
    data: Any,
    *,
    command: str | None = None,
    data_name: str = "result.json",
    created: datetime | None = None,
) -> str:
    """A whole self-contained HTML page: sections, the reproducing command, the JSON data."""
    created = created or datetime.now(UTC)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_esc(title)}</title><style>{_STYLE}</style></head><body>",
        f"<header><h1>{_esc(title)}</h1>",
        f'<p class="meta">factscope {_esc(__version__)} · created '
        f"{_esc(created.isoformat(timespec='seconds'))}</p>",
    ]
    if command:
        parts.append(f"<p>Reproduce with:</p><pre><code>{_esc(command)}</code></pre>")
    parts.append("</header>")
    parts.append(sections_html(sections))
    parts += [
        "<section><h2>Data</h2>",
        "<p>The full result as JSON, embedded in this file.</p>",
        f'<p><button id="download" data-name="{_esc(data_name)}">Download '
        f"{_esc(data_name)}</button></p></section>",
        f'<script type="application/json" id="{DATA_ID}">{_json_for_script(data)}</script>',
        f"<script>{_DOWNLOAD_JS}</script>",
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def sections_html(sections: Sequence[Section], prefix: str = "fig") -> str:
    """The HTML of `sections` (headings, text, inline SVG figures, tables): the fragment
    shared by reports, `explain-fact`, the web app and notebooks. Figure ids start with
    `prefix` so that several fragments can share one page."""
    parts: list[str] = []
    n_figures = 0
    for section in sections:
        parts.append(f"<section><h2>{_esc(section.heading)}</h2>")
        parts.extend(f"<p>{_esc(p)}</p>" for p in section.text)
        if section.figures:
            parts.append('<div class="figures">')
            for fig in section.figures:
                n_figures += 1
                parts.append(f"<figure>{figure_svg(fig, f'{prefix}{n_figures}')}</figure>")
            parts.append("</div>")
        parts.extend(_table(t) for t in section.tables)
        parts.append("</section>")
    return "\n".join(parts)


def render_fragment(sections: Sequence[Section]) -> str:
    """`sections` as one `<div>` with its own scoped style, for a notebook cell
    (`_repr_html_`) or a page that is not a factscope report."""
    import uuid

    prefix = "fs" + uuid.uuid4().hex[:8]
    style = re.sub(r"(^|})\s*([^{}]+?)\s*{", lambda m: _scope_rule(m, prefix), _STYLE)
    return (
        f'<div class="factscope-fragment" id="{prefix}"><style>{style}</style>'
        f"{sections_html(sections, prefix + '-fig')}</div>"
    )


def _scope_rule(match: re.Match[str], prefix: str) -> str:
    """A CSS rule of _STYLE limited to one fragment: `h1, h2 {` -> `#p h1, #p h2 {`."""
    selectors = ", ".join(
        f"#{prefix}" if s.strip() == "body" else f"#{prefix} {s.strip()}"
        for s in match.group(2).split(",")
    )
    return f"{match.group(1)} {selectors} {{"


def read_report_data(page: str) -> Any:
    """The JSON result embedded in a report made by `render_report`."""
    match = re.search(
        rf'<script type="application/json" id="{DATA_ID}">(.*?)</script>', page, re.DOTALL
    )
    if match is None:
        raise FactscopeError("this HTML file holds no factscope data; is it a factscope report?")
    return json.loads(match.group(1))


def write_report(path: str | Path, page: str, force: bool = False) -> Path:
    """Write the page to `path` (UTF-8); never overwrite an existing file without force."""
    target = Path(path)
    refuse_overwrite(target, force)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(page, encoding="utf-8")
    return target
