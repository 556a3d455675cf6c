"""HTML fragments and one-file reports of read results: neurons, directions, knockout.

Each result type has one `*_sections(data)` builder (a list of `Section`s from the result's
`to_dict()`), used by the command's report (`*_report`, a whole page through
`render_report`) and by notebooks (`*_fragment`, through `render_fragment`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from factscope.report.html import Section, Table, render_fragment, render_report
from factscope.report.read_plots import (
    ablation_plot,
    and_test_plot,
    cosine_heatmap,
    knockout_plot,
    neuron_scores_plot,
    projection_heatmap,
)


def _tokens(pairs: Sequence[Sequence[Any]] | None, n: int = 6) -> str:
    if not pairs:
        return ""
    return " ".join(repr(str(p[0])) for p in list(pairs)[:n])


def _fmt(value: Any) -> str:
    return "" if value is None else f"{float(value):.2f}"


def _page(
    title: str,
    sections: list[Section],
    data: Mapping[str, Any],
    data_name: str,
    command: str | None,
    created: datetime | None,
) -> str:
    """A command's whole report: `sections`, then `data` embedded as `data_name`; the command
    shown is `command`, else the one the data records."""
    return render_report(
        title, sections, dict(data), command=command or data.get("command"),
        data_name=data_name, created=created,
    )  # fmt: skip


def _questions(means: Mapping[str, Any] | None) -> str:
    """A gate or up pre-activation on the prompt and per variant kind, "1.62 / 0.22 / ..."."""
    if not means:
        return ""
    return " / ".join(_fmt(means.get(k)) for k in ("both", "first", "last", "neither"))


# ---- neurons ------------------------------------------------------------------------------


def neurons_sections(data: Mapping[str, Any]) -> list[Section]:
    """Scores, top neurons with their AND test and what they read and write, ablation."""
    answer = str(data["answer"]["token"])
    sections = [
        Section(
            "MLP neurons",
            text=[
                f"Prompt {data['prompt']!r}, subject {data['subject']!r}, answer {answer!r}: "
                f"p = {data['clean_p']:.4f}. Positions: last subject token "
                f"{data['tokens'][data['positions']['subject']]!r}, final token "
                f"{data['tokens'][data['positions']['final']]!r}.",
                *(f"{pos}: {m}." for pos, m in data["methods"].items()),
                f"Check: each layer's final-token scores sum to its MLP term of the direct "
                f"logit attribution (max relative error {data['sum_rel_error']:.1e}).",
                "Mean activations (for grad x (act - mean) and mean ablation) are over the "
                f"prompt with {len(data['reference_names'])} other names.",
                *(str(n) for n in data.get("notes") or []),
            ],
            figures=[
                neuron_scores_plot(data["scores"], data["methods"], data["top"], answer=answer)
            ],
        )
    ]
    for pos, neurons in data["top"].items():
        where = "last subject token" if pos == "subject" else "final token"
        rows = []
        for n in neurons:
            test = n.get("and_test") or {}
            mean = test.get("mean") or {}
            rows.append(
                [
                    f"L{n['layer']}.N{n['index']}",
                    n["score"],
                    n["gate"],
                    n["up"],
                    n["act"],
                    n["mean_act"],
                    n["ablated_p"],
                    " / ".join(_fmt(mean.get(k)) for k in ("first", "last", "neither")),
                    _questions(test.get("gate_mean")),
                    _questions(test.get("up_mean")),
                    test.get("verdict", "no AND test"),
                ]
            )
        writes = [
            [
                f"L{n['layer']}.N{n['index']}",
                _tokens(n["promotes"]),
                _tokens(n["suppresses"]),
                _tokens(n.get("gate_tokens")),
                _tokens(n["up_tokens"]),
            ]
            for n in neurons
        ]
        figures = []
        if any(n.get("and_test") for n in neurons):
            figures.append(and_test_plot(neurons, title=f"AND test, top neurons at the {where}"))
        sections.append(
            Section(
                f"Top neurons at the {where}",
                text=[
                    "act: the neuron's activation (input of the down-projection); p ablated: "
                    f"p({answer!r}) with this neuron alone set to its mean. AND test: mean "
                    "activation with the first name only / the last name only / neither "
                    "(gate, up: the neuron's two questions, the pre-activations, on the prompt "
                    "and per kind); AND "
                    "when the full name's response above 'neither' is at least twice either "
                    "name's alone.",
                ],
                figures=figures,
                tables=[
                    Table(
                        [
                            "neuron",
                            "score",
                            "gate",
                            "up",
                            "act",
                            "mean act",
                            "p ablated",
                            "first / last / neither",
                            "gate: both / first / last / neither",
                            "up: both / first / last / neither",
                            "verdict",
                        ],
                        rows,
                        f"Top neurons at the {where}",
                    ),
                    Table(
                        ["neuron", "promotes", "suppresses", "gate row reads", "up row reads"],
                        writes,
                        "What each writes (down column through the unembedding) and reads "
                        "(embeddings closest to its gate and up rows)",
                    ),
                ],
            )
        )
    if data.get("variants"):
        sections[-1].tables.append(
            Table(
                ["kind", "name", f"p({answer!r})"],
                [[v["kind"], v["name"], v["p_answer"]] for v in data["variants"]],
                "Name variants of the AND test",
            )
        )
    curves = list(data.get("ablation") or [])
    if curves:
        rows = []
        for c in curves:
            for k, top, mean, std in zip(
                c["ks"], c["top_p"], c["random_mean"], c["random_std"], strict=True
            ):
                if k in (1, 5, 10, 20, 50, 100, 200) or k == c["ks"][-1]:
                    rows.append([c["position"], c["mode"], k, top, mean, std])
        passes = data.get("forward_passes") or {}
        sections.append(
            Section(
                "Ablation curve",
                text=[
                    f"p({answer!r}) as the top-k neurons of each ranking are set to zero or "
                    "to their mean at that position, against k random neurons from the same "
                    f"layers ({len(curves[0]['random_p'][0])} draws; band: +-1 std, faint: "
                    "min to max).",
                    f"Forward passes: {passes.get('calls')} batched calls, {passes.get('rows')} "
                    f"sequences, {passes.get('tokens')} token positions computed, "
                    f"{passes.get('backward')} backward passes.",
                ],
                figures=[ablation_plot(curves, answer=answer)],
                tables=[
                    Table(
                        ["position", "mode", "k", "p, top-k ablated", "p, random (mean)", "std"],
                        rows,
                        "Selected k",
                    )
                ],
            )
        )
    return sections


def neurons_fragment(data: Mapping[str, Any]) -> str:
    return render_fragment(neurons_sections(data))


def neurons_report(
    data: Mapping[str, Any], *, command: str | None = None, created: datetime | None = None
) -> str:
    title = f"Neurons: {data['prompt']}"
    return _page(title, neurons_sections(data), data, "neurons.json", command, created)


# ---- directions ----------------------------------------------------------------------------


def directions_sections(data: Mapping[str, Any]) -> list[Section]:
    """The answer direction per layer and token; difference-of-means directions."""
    sections = []
    proj = data.get("projection")
    if proj:
        answer = str(proj["answer"]["token"])
        rows = [
            [name, proj["lens_logit"][i][-1], proj["cosine"][i][-1], proj["projection"][i][-1]]
            for i, name in enumerate(proj["layers"])
        ]
        first = proj.get("first_top_layer")
        sections.append(
            Section(
                "The answer's direction in the residual stream",
                text=[
                    f"Projection of each residual stream on the unit vector of W_U[{answer!r}], "
                    "per layer (row: the stream entering that block; last row: the final "
                    f"stream) and token. Prompt {proj['prompt']!r}.",
                    "First layer from which the answer stays the top-1 lens token at the final "
                    f"position: {first if first is not None else 'never'}.",
                ],
                figures=[
                    projection_heatmap(
                        proj["projection"], proj["tokens"], proj["layers"], answer=answer
                    ),
                    projection_heatmap(
                        proj["cosine"],
                        proj["tokens"],
                        proj["layers"],
                        answer=answer,
                        label="cosine with W_U[answer]",
                    ),
                ],
                tables=[
                    Table(
                        ["residual", "lens logit", "cosine", "projection"],
                        rows,
                        "At the final token",
                    )
                ],
            )
        )
    means = data.get("means")
    if means:
        labels = [str(c["answer"]) for c in means["classes"]]
        rows = [
            [
                c["answer"],
                c["n_known"],
                c["n_prompts"],
                c["cos_with_unembedding"],
                c.get("cos_normed_with_unembedding"),
                c["share_explained"],
                c.get("share_held_out"),
            ]
            for c in means["classes"]
        ]
        sections.append(
            Section(
                "Difference-of-means directions",
                text=[
                    f"For each answer: the mean final-token residual at {means['site']!r} over "
                    "the prompts whose answer the model ranks first among the candidates, "
                    "minus the mean over the other answers' prompts. share explained: of the "
                    "answer's logit above the all-prompts mean, the part carried by the "
                    "residual's component along its class direction (frozen final norm); "
                    "held out: the prompt left out of its own direction and mean.",
                    f"Template {means['template']!r}; {means['n_known']} of "
                    f"{means['n_prompts']} prompts known.",
                ],
                figures=[
                    cosine_heatmap(means["cosines"], labels, title="cosines between directions"),
                ],
                tables=[
                    Table(
                        [
                            "answer",
                            "known",
                            "prompts",
                            "cos with g*W_U[answer]",
                            "cos, normed stream",
                            "share explained",
                            "share, held out",
                        ],
                        rows,
                        "Per answer",
                    )
                ],
            )
        )
    return sections


def directions_fragment(data: Mapping[str, Any]) -> str:
    return render_fragment(directions_sections(data))


def directions_report(
    data: Mapping[str, Any], *, command: str | None = None, created: datetime | None = None
) -> str:
    title = f"Directions: {(data.get('projection') or {}).get('prompt') or 'directions'}"
    return _page(title, directions_sections(data), data, "directions.json", command, created)


# ---- knockout and heads ---------------------------------------------------------------------


def knockout_sections(data: Mapping[str, Any]) -> list[Section]:
    """Attention knockout per window, and the heads that write the answer."""
    answer = str(data["answer"]["token"])
    rows = [
        [s, *(data["probs"][src][i] for src in data["probs"])] for i, s in enumerate(data["starts"])
    ]
    sections = [
        Section(
            "Attention knockout",
            text=[
                f"The final token may not attend to the blocked tokens in a window of "
                f"{data['window']} layers centred on each layer (attention scores set to -inf "
                f"before the softmax, every head). Clean p({answer!r}) = {data['clean_p']:.4f}. "
                f"Subject tokens: {data['subject_span']}.",
                *(str(n) for n in data.get("notes") or []),
            ],
            figures=[
                knockout_plot(
                    data["starts"],
                    data["probs"],
                    data["clean_p"],
                    window=data["window"],
                    answer=answer,
                )
            ],
            tables=[Table(["window centre", *data["probs"]], rows, f"p({answer!r}) per window")],
        )
    ]
    heads = data.get("heads") or []
    if heads:
        sections.append(
            Section(
                "Heads that write the answer",
                text=[
                    "Heads with the largest direct contribution to the answer's logit at the "
                    "final token (DLA), their attention from the final token to the subject "
                    "tokens, the tokens their actual output promotes, and the tokens their OV "
                    "circuit writes when reading the last subject token.",
                ],
                tables=[
                    Table(
                        [
                            "head",
                            "DLA",
                            "attention on subject",
                            "output promotes",
                            "OV of subject promotes",
                        ],
                        [
                            [
                                f"L{h['layer']}.H{h['head']}",
                                h["dla"],
                                h["attn_to_subject"],
                                _tokens(h["writes"]),
                                _tokens(h["ov_subject"]),
                            ]
                            for h in heads
                        ],
                        "Top heads",
                    )
                ],
            )
        )
    return sections


def knockout_fragment(data: Mapping[str, Any]) -> str:
    return render_fragment(knockout_sections(data))


def knockout_report(
    data: Mapping[str, Any], *, command: str | None = None, created: datetime | None = None
) -> str:
    title = f"Knockout: {data['prompt']}"
    return _page(title, knockout_sections(data), data, "knockout.json", command, created)
