"""One-file HTML reports (and notebook fragments) for superposition and the parameter tally.

Each builder takes the `to_dict()` form of a result: `JLResult` ("jl"), `CapacityResult`
("capacity"), `ToyResult` ("toy"), `ModelAngles` ("model") from `factscope.read`, and
`VideoTally` from `factscope.read.params`. `*_sections` give the report sections, `*_report`
a whole page (report/html.py's `render_report`), `*_fragment` the sections alone for a
notebook's `_repr_html_`.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

from factscope.report.html import Section, Table, figure_svg, render_report
from factscope.report.superposition_plots import (
    capacity_plot,
    dims_per_feature,
    jl_histograms,
    jl_loss,
    jl_summary_bars,
    model_histograms,
    model_layer_stats,
    params_bar,
    phase_plot,
    toy_feature_norms,
    toy_grams,
)


def _fragment(sections: Sequence[Section], prefix: str) -> str:
    """Sections as HTML without a page around them (figures inline as SVG)."""
    parts = []
    for i, section in enumerate(sections):
        parts.append(f"<h3>{html.escape(section.heading)}</h3>")
        parts += [f"<p>{html.escape(p)}</p>" for p in section.text]
        for j, fig in enumerate(section.figures):
            parts.append(f"<figure>{figure_svg(fig, f'{prefix}{i}-{j}')}</figure>")
        for table in section.tables:
            head = "".join(f"<th>{html.escape(c)}</th>" for c in table.columns)
            body = "".join(
                "<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row) + "</tr>"
                for row in table.rows
            )
            caption = f"<caption>{html.escape(table.caption)}</caption>" if table.caption else ""
            parts.append(f"<table>{caption}<tr>{head}</tr>{body}</table>")
    return "<div>" + "\n".join(parts) + "</div>"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


# ---- JL -----------------------------------------------------------------------------------


def jl_sections(jl: Mapping[str, Any]) -> list[Section]:
    before, after = jl["before"], jl["after"]
    near_cos = math.sin(math.radians(1))
    rows = [
        ["max |cos|", before["max_abs_cos"], after["max_abs_cos"], jl["welch_bound"], "Welch"],
        ["worst pair, degrees from 90", before["max_deviation_degrees"],
         after["max_deviation_degrees"], math.degrees(math.asin(min(1.0, jl["welch_bound"]))),
         "Welch"],
        ["RMS cos", before["rms_cos"], after["rms_cos"], jl["rms_bound"], "sqrt(frame bound)"],
        ["mean cos²", before["rms_cos"] ** 2, after["rms_cos"] ** 2, jl["frame_bound"], "frame"],
        ["mean |cos|", before["mean_abs_cos"], after["mean_abs_cos"], "", ""],
        ["share of pairs within 89°–91°", before["share_89_91"], after["share_89_91"], "", ""],
    ]  # fmt: skip
    verdict = (
        "Every pair is within 89-91 degrees."
        if jl["all_within_89_91"]
        else f"Not every pair is within 89-91 degrees: that needs max |cos| <= {near_cos:.4f}, "
        f"and the Welch bound says some pair has |cos| >= {jl['welch_bound']:.4f}."
    )
    return [
        Section(
            f"Almost orthogonal: {jl['n']:,} vectors in {jl['dim']} dimensions",
            text=[
                f"Random unit vectors, then Adam (lr {jl['lr']:g}) for {jl['steps']} steps on "
                f"the loss '{jl.get('loss', 'scene')}': {jl.get('loss_meaning', '')}, with "
                f"c = {jl['cutoff']:g}, plus N sum (|v_i|^2 - 1)^2 (3Blue1Brown's scene code "
                "when the loss is 'scene'). Cosines of the normalised vectors. " + verdict,
                *jl["notes"],
            ],
            figures=[jl_histograms(jl), jl_summary_bars(jl), jl_loss(jl)],
            tables=[
                Table(
                    ["statistic", "random start", "optimised", "lower bound", "bound"],
                    rows,
                    caption="Angles against what geometry allows",
                )
            ],
        )
    ]


def capacity_sections(capacity: Mapping[str, Any]) -> list[Section]:
    rows = [
        [p["eps"], p["dim"], p["largest_n"], "yes" if p["capped"] else "",
         p["first_failure"] if p["first_failure"] is not None else "",
         p["welch_capacity"] if p["welch_capacity"] is not None else "none", len(p["trials"])]
        for p in capacity["points"]
    ]  # fmt: skip
    return [
        Section(
            "Capacity: how many directions fit with every |cos| <= eps",
            text=[capacity["method"]],
            figures=[capacity_plot(capacity)],
            tables=[
                Table(
                    ["eps", "d", "largest N", "capped", "first failing N", "Welch limit", "trials"],
                    rows,
                )
            ],
        )
    ]


def jl_report(
    jl: Mapping[str, Any], capacity: Mapping[str, Any] | None = None, *, command: str | None = None
) -> str:
    sections = jl_sections(jl) + (capacity_sections(capacity) if capacity else [])
    data = {"jl": dict(jl), "capacity": dict(capacity) if capacity else None}
    return render_report("Superposition: almost-orthogonal directions", sections, data,
                         command=command, data_name="jl.json")  # fmt: skip


def jl_fragment(jl: Mapping[str, Any]) -> str:
    return _fragment(jl_sections(jl), "jl")


def capacity_fragment(capacity: Mapping[str, Any]) -> str:
    return _fragment(capacity_sections(capacity), "cap")


# ---- toy models ---------------------------------------------------------------------------


def toy_sections(toy: Mapping[str, Any]) -> list[Section]:
    setup = toy["sweep_setup"]
    sweep = toy["sweep"]
    sections = [
        Section(
            f"Toy model: n = {setup['n_features']} features into m = {setup['n_hidden']} "
            "dimensions",
            text=[
                f"x' = ReLU(W^T W x + b), importance {toy['importance_decay']:g}^i, each "
                f"feature zero with probability S, else uniform on [0, 1]; Adam lr "
                f"{setup['lr']:g}, {setup['steps']} steps of {setup['batch']} samples.",
                *toy["notes"],
            ],
            figures=[toy_grams(sweep), toy_feature_norms(sweep)],
            tables=[
                Table(
                    ["sparsity S", "represented (||W_i|| > 0.5)", "m / ||W||_F^2", "loss"],
                    [
                        [s["sparsity"], s["represented"], s["dims_per_feature"], s["loss"]]
                        for s in sweep
                    ],
                )
            ],
        )
    ]
    if toy["dims"]:
        dim_setup = toy["dim_setup"]
        title = (f"n = {dim_setup['n_features']}, m = {dim_setup['n_hidden']}, equal "
                 "importance")  # fmt: skip
        sections.append(
            Section(
                "Feature dimensionality",
                text=[
                    f"{title}, {len(toy['dims'])} densities from 1 to "
                    f"{min(toy['dim_densities']):.3g}; {dim_setup['steps']} steps of "
                    f"{dim_setup['batch']}. Red lines: the fractions where the paper finds "
                    "plateaus (1, 3/4, 2/3, 1/2, 2/5, 3/8).",
                ],
                figures=[dims_per_feature(toy["dims"], toy["sticky_fractions"], title)],
            )
        )
    if toy["phase"]:
        phase = toy["phase"]
        sections.append(
            Section(
                "Phase diagram: 2 features in 1 dimension",
                text=[
                    "Feature 1 has importance 1, the extra feature the relative importance "
                    f"on the x axis; both have the density on the y axis. {phase['seeds']} "
                    f"seeds per cell, the lower loss kept, {phase['steps']} steps each; a "
                    "feature counts as represented when |W_i| > 0.5.",
                ],
                figures=[phase_plot(phase, toy["phase_names"])],
            )
        )
    return sections


def toy_report(toy: Mapping[str, Any], *, command: str | None = None) -> str:
    return render_report("Toy models of superposition", toy_sections(toy), dict(toy),
                         command=command, data_name="toy.json")  # fmt: skip


def toy_fragment(toy: Mapping[str, Any]) -> str:
    return _fragment(toy_sections(toy), "toy")


# ---- model directions ---------------------------------------------------------------------


def model_sections(angles: Mapping[str, Any]) -> list[Section]:
    rows = []
    for kind in angles["kinds"]:
        mine = [s for s in angles["sets"] if s["kind"] == kind]
        rand, bound = angles["random"][kind], angles["bounds"][kind]

        def mean(key: str, sets: list[dict[str, Any]] = mine) -> float:
            return sum(s[key] for s in sets) / len(sets)

        rows.append([kind, mine[0]["n"], len(mine), mean("rms_cos"), rand["rms_cos"],
                     bound["rms"], mean("mean_cos"), max(s["max_abs_cos"] for s in mine),
                     rand["max_abs_cos"], bound["welch"], mean("share_89_91"),
                     rand["share_89_91"]])  # fmt: skip
    columns = ["kind", "directions", "sets", "RMS cos", "random", "frame bound", "mean cos",
               "max |cos|", "random", "Welch", "within 89-91°", "random"]  # fmt: skip
    return [
        Section(
            f"{angles['model']}: angles between weight directions",
            text=[
                *(f"{k}: {v}." for k, v in angles["meaning"].items()),
                f"Unembedding: {angles['unembed_sample']:,} rows sampled (seed "
                f"{angles['seed']}), all pairs of those. Random: unit Gaussian vectors, same "
                "count and dimension.",
                *angles["notes"],
            ],
            figures=[model_histograms(angles), model_layer_stats(angles)],
            tables=[Table(columns, rows, caption="Mean over layers (max |cos|: over layers)")],
        )
    ]


def model_report(angles: Mapping[str, Any], *, command: str | None = None) -> str:
    return render_report(f"Superposition in {angles['model']}", model_sections(angles),
                         dict(angles), command=command, data_name="angles.json")  # fmt: skip


def model_fragment(angles: Mapping[str, Any]) -> str:
    return _fragment(model_sections(angles), "model")


# ---- parameters ---------------------------------------------------------------------------


def params_sections(tallies: Sequence[Mapping[str, Any]]) -> list[Section]:
    sections = []
    for tally in tallies:
        rows = [[k, n, tally["formulas"][k], n / tally["total"]] for k, n in tally["rows"].items()]
        rows.append(["total", tally["total"], "", 1.0])
        left_out = ", ".join(f"{k} {n:,}" for k, n in tally["left_out"].items())
        text = [
            "Weights only, each kind of matrix summed over layers, the unembedding counted on "
            f"its own. Left out: {left_out}. MLP share: {tally['mlp_fraction']:.1%}."
        ]
        if tally["tied"]:
            text.append(
                "This model ties the unembedding to the embedding: it stores "
                f"{tally['total'] - tally['rows']['unembedding']:,} of these weights."
            )
        sections.append(
            Section(
                f"{tally['name']}: parameters in the video's terms",
                text=text,
                figures=[params_bar(tally)],
                tables=[Table(["matrix", "weights", "rows x columns", "share"], rows)],
            )
        )
    return sections


def params_report(tallies: Sequence[Mapping[str, Any]], *, command: str | None = None) -> str:
    names = ", ".join(t["name"] for t in tallies)
    return render_report(f"Parameters: {names}", params_sections(tallies), list(tallies),
                         command=command, data_name="params.json")  # fmt: skip


def params_fragment(tally: Mapping[str, Any]) -> str:
    return _fragment(params_sections([tally]), "params")
