"""One-file HTML reports for `sae train` and `features`, from their result dicts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from factscope.report.features_plots import features_figure, training_curves
from factscope.report.html import Section, Table, render_report

METRIC_KEYS = (
    "n_tokens",
    "l0",
    "explained_variance",
    "mse",
    "dead_fraction",
    "dense_fraction",
    "ce_clean",
    "ce_spliced",
    "ce_zero_ablated",
    "ce_loss_recovered",
)


def metrics_section(metrics: Mapping[str, Any], heading: str = "Held-out metrics") -> Section:
    rows = [[k, metrics.get(k) if metrics.get(k) is not None else "-"] for k in METRIC_KEYS]
    return Section(
        heading,
        ["CE loss recovered = (CE zero-ablated - CE spliced) / (CE zero-ablated - CE clean)."],
        tables=[Table(["metric", "value"], rows)],
    )


def train_sections(data: Mapping[str, Any]) -> list[Section]:
    sae = data["sae"]
    text = [
        f"{data['kind']} dictionary of {sae['d_sae']:,} latents at layer {data['layer']} "
        f"({data['site']}) of {data['model']}, trained on {data['train_tokens']:,} tokens of "
        f"{data['corpus']}."
    ]
    return [
        Section("Training", text, figures=[training_curves(data)]),
        metrics_section(data["metrics"]),
    ]


def train_report(data: Mapping[str, Any]) -> str:
    return render_report(
        "sae train", train_sections(data), data, command=data.get("command"), data_name="train.json"
    )


def features_sections(data: Mapping[str, Any]) -> list[Section]:
    tokens = data["tokens"]
    active_rows = [
        [i, tok, ", ".join(f"{l} ({a:.3g})" for l, a in data["active"][i])]
        for i, tok in enumerate(tokens)
    ]
    sections = [
        Section(
            "Latents at each token",
            [
                f"p({data['answer']!r}): clean {data['p_clean']:.4f}, "
                f"with the SAE spliced in {data['p_spliced']:.4f}."
            ],
            tables=[Table(["position", "token", "active latents (activation)"], active_rows)],
        ),
    ]
    for b in data["dashboards"]:
        ctx = [[c["act"], c["left"], c["token"], c["right"]] for c in b["contexts"]]
        searched = bool(b["contexts"] or b["histogram"])  # no corpus given: nothing to say
        sections.append(
            Section(
                f"Latent {b['latent']} (at the {b['position']} token, "
                f"activation {b['activation']:.3g})",
                [
                    *([f"Fires on {b['frequency']:.2%} of the corpus tokens searched."] * searched),
                    "Promotes: " + ", ".join(repr(t) for t, _ in b["promotes"]),
                    "Suppresses: " + ", ".join(repr(t) for t, _ in b["suppresses"]),
                ],
                tables=[Table(["act", "before", "token", "after"], ctx, "top-activating contexts")]
                * searched,
            )
        )
    attr = [
        [
            r["position"],
            tokens[r["position"]],
            r["latent"],
            r["act"],
            r["grad_x_act"],
            r["ablation_delta"],
        ]
        for r in data["attribution"]
    ]
    sections.append(
        Section(
            "Attribution of log p(answer)",
            [
                "gradient x activation beside the true change when the latent is zeroed "
                "at that token."
            ],
            figures=[features_figure(data)],
            tables=[Table(["position", "token", "latent", "act", "grad x act", "ablation"], attr)],
        )
    )
    inter = [
        [
            r["mode"],
            r["latent"],
            r["position"],
            r["scale"],
            r["p_before"],
            r["p_after"],
            " ".join(repr(t) for t, _ in r["top_after"][:3]),
        ]
        for r in data["interventions"]
    ]
    sections.append(
        Section(
            "Interventions",
            [],
            tables=[
                Table(
                    ["mode", "latent", "position", "scale", "p before", "p after", "top after"],
                    inter,
                )
            ],
        )
    )
    return sections


def features_report(data: Mapping[str, Any]) -> str:
    return render_report(
        f"features: {data['prompt']}",
        features_sections(data),
        data,
        command=data.get("command"),
        data_name="features.json",
    )
