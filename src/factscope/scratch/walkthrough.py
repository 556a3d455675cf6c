"""The article's first network, worked by hand, and one token's trip through a real block.

"Understanding LLMs from scratch using middle school math" (Rohit Patel) starts with a
network that tells a leaf from a flower from four numbers: the dominant colour (R, G, B) and
the volume in millilitres. Its first hidden node computes

    (32 * 0.10) + (107 * -0.29) + (56 * -0.07) + (11.2 * 0.46) = -26.6

and with a bias of 0.25, -26.35. `basics_forward` does exactly that sum for every node,
keeping each product so that a person can check it; `train_basics` then fits the same
network to a small made-up data set by gradient descent.

The article prints the weights of the first hidden node, its bias, and (in its "without an
activation" example) the R and G weights of the other two hidden nodes and the three weights
into one output node. The remaining numbers (B and Vol weights of hidden nodes 2 and 3, the
weights into the second output node, the other biases) are not in the text; we fill them in
ourselves and `ARTICLE_NUMBERS` / `OUR_NUMBERS` say which is which.

`explain_layer` is the same story on a real model: the numbers at every hook site of one
block for one token, read from the model's own forward pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from factscope.errors import FactscopeError
from factscope.result import Result

INPUT_NAMES = ("R", "G", "B", "Vol")
OUTPUT_NAMES = ("leaf", "flower")
ARTICLE_INPUT = (32.0, 107.0, 56.0, 11.2)

# hidden-layer weights, one row per hidden node, columns (R, G, B, Vol)
HIDDEN_WEIGHTS = (
    (0.10, -0.29, -0.07, 0.46),  # the article's first hidden node
    (0.12, -0.05, 0.09, 0.30),  # R, G from the article; B, Vol ours
    (-0.36, -0.21, 0.15, 0.41),  # R, G from the article; B, Vol ours
)
HIDDEN_BIAS = (0.25, 0.0, 0.0)  # 0.25 is the article's; the zeros are ours
# output weights, one row per output node, columns (hidden 1, 2, 3)
OUTPUT_WEIGHTS = (
    (-0.17, 0.39, 0.10),  # the article's (its "green node"; we read it as "leaf")
    (0.24, -0.11, 0.46),  # ours
)
OUTPUT_BIAS = (0.0, 0.0)

ARTICLE_NUMBERS = (
    "inputs (32, 107, 56, 11.2); hidden node 1 weights (0.10, -0.29, -0.07, 0.46) and bias "
    "0.25; R and G weights of hidden nodes 2 and 3 (0.12, -0.05; -0.36, -0.21); weights into "
    "one output node (-0.17, 0.39, 0.10)"
)
OUR_NUMBERS = (
    "B and Vol weights of hidden nodes 2 and 3, the weights into the second output node, "
    "and the biases other than 0.25 (the article shows them only in a figure)"
)


@dataclass(frozen=True)
class Node:
    """One node's sum, term by term: value = sum(inputs[i] * weights[i]) + bias."""

    name: str
    inputs: tuple[float, ...]
    weights: tuple[float, ...]
    bias: float
    value: float  # the sum before the activation
    activated: float  # after ReLU (hidden nodes) or the same value (output nodes)

    @property
    def products(self) -> tuple[float, ...]:
        return tuple(x * w for x, w in zip(self.inputs, self.weights, strict=True))

    def arithmetic(self) -> str:
        """The sum as a line of school arithmetic, e.g. "(32 * 0.10) + ... = -26.6"."""
        terms = " + ".join(
            f"({_num(x, 4)} * {w:.2f})" for x, w in zip(self.inputs, self.weights, strict=True)
        )
        plain = sum(self.products)
        line = f"{terms} = {_num(plain, 4)} (≈ {plain:.1f})"
        if self.bias:
            line += f"; + bias {self.bias:.2f} = {_num(self.value, 4)} (≈ {self.value:.2f})"
        return line


@dataclass(frozen=True)
class BasicsForward(Result):
    """The whole forward pass of the 4-3-2 network on one input."""

    inputs: tuple[float, ...]
    hidden: tuple[Node, ...]
    outputs: tuple[Node, ...]
    probabilities: tuple[float, ...]  # softmax of the outputs
    label: str  # the output with the larger value


def _num(x: float, digits: int = 2) -> str:
    """A number as the article writes it: no trailing zeros past what it needs."""
    text = f"{x:.{digits}f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def softmax(values: tuple[float, ...]) -> tuple[float, ...]:
    """exp(v_i) / sum_j exp(v_j), computed after subtracting the largest value (same result,
    no overflow)."""
    top = max(values)
    exps = [math.exp(v - top) for v in values]
    total = sum(exps)
    return tuple(e / total for e in exps)


def basics_forward(
    inputs: tuple[float, ...] = ARTICLE_INPUT,
    hidden_weights: tuple[tuple[float, ...], ...] = HIDDEN_WEIGHTS,
    hidden_bias: tuple[float, ...] = HIDDEN_BIAS,
    output_weights: tuple[tuple[float, ...], ...] = OUTPUT_WEIGHTS,
    output_bias: tuple[float, ...] = OUTPUT_BIAS,
) -> BasicsForward:
    """Run the leaf/flower network on (R, G, B, Vol) with plain Python arithmetic."""
    if len(inputs) != len(INPUT_NAMES):
        raise FactscopeError(f"the network takes 4 inputs (R, G, B, Vol), got {len(inputs)}")
    hidden = []
    for j, (weights, bias) in enumerate(zip(hidden_weights, hidden_bias, strict=True)):
        value = sum(x * w for x, w in zip(inputs, weights, strict=True)) + bias
        hidden.append(Node(f"hidden {j + 1}", inputs, weights, bias, value, max(0.0, value)))
    relu = tuple(h.activated for h in hidden)
    outputs = []
    for name, weights, bias in zip(OUTPUT_NAMES, output_weights, output_bias, strict=True):
        value = sum(h * w for h, w in zip(relu, weights, strict=True)) + bias
        outputs.append(Node(name, relu, weights, bias, value, value))
    probabilities = softmax(tuple(o.value for o in outputs))
    label = OUTPUT_NAMES[max(range(len(outputs)), key=lambda i: outputs[i].value)]
    return BasicsForward(tuple(inputs), tuple(hidden), tuple(outputs), probabilities, label)


def basics_lines(result: BasicsForward) -> list[str]:
    """The forward pass written out as lines of checkable arithmetic."""
    x = ", ".join(f"{n}={_num(v, 1)}" for n, v in zip(INPUT_NAMES, result.inputs, strict=True))
    lines = [f"inputs: {x}", "", "hidden layer (weighted sum + bias, then ReLU = max(0, x)):"]
    for h in result.hidden:
        lines.append(f"  {h.name}: {h.arithmetic()}")
        lines.append(f"      ReLU({_num(h.value, 4)}) = {_num(h.activated, 4)}")
    lines += ["", "output layer (weighted sum of the ReLU outputs):"]
    for o in result.outputs:
        lines.append(f"  {o.name}: {o.arithmetic()}")
    values = [o.value for o in result.outputs]
    top = max(values)
    exps = [math.exp(v - top) for v in values]
    lines += ["", "softmax (exp of each output over the sum of exps; the largest is subtracted"]
    lines.append("first, which changes nothing):")
    for o, e, p in zip(result.outputs, exps, result.probabilities, strict=True):
        lines.append(
            f"  p({o.name}) = exp({_num(o.value, 4)} - {_num(top, 4)}) / "
            f"{_num(sum(exps), 6)} = {_num(e, 6)} / {_num(sum(exps), 6)} = {p:.6f}"
        )
    total = sum(result.probabilities)
    lines.append(f"  sum of probabilities = {total:.6f}")
    lines.append(f"prediction: {result.label}")
    return lines


# ---- training the same network by gradient descent -------------------------------------------


@dataclass(frozen=True)
class BasicsTraining(Result):
    """Gradient descent on a made-up leaf/flower data set, from the article's weights."""

    n_examples: int
    learning_rate: float
    scale: tuple[float, ...]  # inputs are divided by these before entering the network
    losses: list[float]  # mean cross-entropy after each step (index 0: before training)
    accuracies: list[float]
    first_step: dict[str, float]  # one weight's update, written out
    final_hidden_weights: list[list[float]] = field(default_factory=list)


def leaf_flower_data(n: int = 40, seed: int = 0) -> tuple[Tensor, Tensor]:
    """A made-up data set: leaves are green and small, flowers colourful and larger.

    Returns inputs (n, 4) as (R, G, B, Vol) and labels (n,) with 0 = leaf, 1 = flower.
    """
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    x = torch.empty(n, 4)
    for i in range(n):
        u = torch.rand(4, generator=g)
        if labels[i] == 0:  # leaf: dominant green, a few ml
            x[i] = torch.stack([10 + 50 * u[0], 90 + 80 * u[1], 10 + 60 * u[2], 2 + 14 * u[3]])
        else:  # flower: red, yellow or purple, larger
            x[i] = torch.stack([150 + 100 * u[0], 20 + 140 * u[1], 20 + 200 * u[2], 8 + 50 * u[3]])
    return x, labels


def train_basics(
    steps: int = 200, learning_rate: float = 0.5, n_examples: int = 40, seed: int = 0
) -> BasicsTraining:
    """Fit the 4-3-2 ReLU network by full-batch gradient descent on cross-entropy.

    Starts from the weights `basics_forward` uses. Inputs are scaled to about 0..1 (colour
    / 255, volume / 50) so that one learning rate suits every weight; the loss is the mean
    of -log p(correct label) under the softmax.
    """
    x, y = leaf_flower_data(n_examples, seed)
    scale = (255.0, 255.0, 255.0, 50.0)
    x = x / torch.tensor(scale)
    w1 = torch.tensor(HIDDEN_WEIGHTS, dtype=torch.float64, requires_grad=True)  # (3, 4)
    b1 = torch.tensor(HIDDEN_BIAS, dtype=torch.float64, requires_grad=True)  # (3,)
    w2 = torch.tensor(OUTPUT_WEIGHTS, dtype=torch.float64, requires_grad=True)  # (2, 3)
    b2 = torch.tensor(OUTPUT_BIAS, dtype=torch.float64, requires_grad=True)  # (2,)
    params = [w1, b1, w2, b2]
    x = x.double()

    def loss_and_accuracy() -> tuple[Tensor, float]:
        hidden = torch.relu(x @ w1.T + b1)  # (n, 3)
        logits = hidden @ w2.T + b2  # (n, 2)
        loss = torch.nn.functional.cross_entropy(logits, y)
        accuracy = float((logits.argmax(-1) == y).double().mean())
        return loss, accuracy

    losses, accuracies = [], []
    first_step: dict[str, float] = {}
    for step in range(steps + 1):
        loss, accuracy = loss_and_accuracy()
        losses.append(float(loss.detach()))
        accuracies.append(accuracy)
        if step == steps:
            break
        for p in params:
            p.grad = None
        loss.backward()
        with torch.no_grad():
            if step == 0:  # the article's first weight, 0.10 (R into hidden 1)
                first_step = {
                    "weight": float(w1[0, 0]),
                    "gradient": float(w1.grad[0, 0]),  # type: ignore[index]
                    "learning_rate": learning_rate,
                }
                first_step["new_weight"] = first_step["weight"] - (
                    learning_rate * first_step["gradient"]
                )
            for p in params:
                p -= learning_rate * p.grad  # type: ignore[operator]
    return BasicsTraining(
        n_examples, learning_rate, scale, losses, accuracies, first_step,
        w1.detach().tolist(),
    )  # fmt: skip


def training_lines(result: BasicsTraining, every: int = 25) -> list[str]:
    """The training run as lines: the first update written out, then the falling loss."""
    s = result.first_step
    lines = [
        f"gradient descent on {result.n_examples} made-up examples (half leaves, half flowers),",
        "inputs scaled to about 0..1 (R, G, B / 255, Vol / 50), loss = mean -log p(correct):",
        f"  step 1 for the weight R -> hidden 1: {s['weight']:.4f} - {s['learning_rate']} * "
        f"({s['gradient']:+.6f}) = {s['new_weight']:.6f}",
    ]
    for step in range(0, len(result.losses), every):
        lines.append(
            f"  step {step:4d}: loss {result.losses[step]:.4f}, "
            f"accuracy {result.accuracies[step]:.0%}"
        )
    last = len(result.losses) - 1
    if last % every:
        lines.append(
            f"  step {last:4d}: loss {result.losses[last]:.4f}, "
            f"accuracy {result.accuracies[last]:.0%}"
        )
    return lines


# ---- one token's trip through a real block ---------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One stage of a block for one token: where it is read, its shape, a few numbers."""

    name: str  # what the article calls it, e.g. "attention weights"
    site: str  # the hook site it was read from ("" when computed by the block's own module)
    shape: list[int]  # the full tensor's shape at that site
    values: list[float]  # the first few numbers for the chosen token (or the pattern row)
    note: str = ""


@dataclass(frozen=True)
class LayerTrip(Result):
    """`explain_layer`'s result: every step of block `layer` for token `token`."""

    model: str
    prompt: str
    layer: int
    token: int
    tokens: list[str]
    steps: list[Step]
    checks: dict[str, float]  # max |difference| of each residual add, recomputed


def explain_layer(
    lm: Any, prompt: str, layer: int, token: int = -1, n_values: int = 4
) -> LayerTrip:
    """Follow token `token` of `prompt` through block `layer` of the loaded model `lm`.

    Every tensor is read at the block's hook sites during one forward pass (so the numbers
    are the model's own); the normed input, which has no site, is recomputed by the block's
    own `attn_norm`/`mlp_norm` from the hooked residual. Each residual add is recomputed and
    the largest difference from the model's value recorded in `checks`.
    """
    from factscope.hooks import run_with_cache
    from factscope.locate.prompts import encode_prompt

    model = lm.model
    n_layers = model.cfg.n_layers
    if not 0 <= layer < n_layers:
        raise FactscopeError(f"--layer {layer} is outside 0..{n_layers - 1} for this model")
    tokens = encode_prompt(model, lm.tokenizer, prompt)
    T = tokens.shape[1]
    t = token if token >= 0 else T + token
    if not 0 <= t < T:
        raise FactscopeError(f"--token {token} is outside the prompt's {T} tokens")
    prefix = f"blocks.{layer}"
    block = model.blocks[layer]
    sites = [s for s in model.hook_points if s.startswith(prefix + ".")]
    _, cache = run_with_cache(model, tokens, sites)
    labels = [lm.tokenizer.token_str(i) for i in tokens[0].tolist()]
    head = 0

    def row(site: str) -> Tensor:
        return cache[site][0, t].float().flatten()

    def step(name: str, site: str, note: str = "", values: Tensor | None = None) -> Step:
        full = cache[site]
        shown = row(site) if values is None else values.float().flatten()
        return Step(name, site, list(full.shape), _round(shown[:n_values]), note)

    post = ", then its post-norm" if model.cfg.post_norms else ""
    rotated = "after QK-norm and RoPE" if model.cfg.qk_norm else "after RoPE"
    with torch.no_grad():
        resid_pre = cache[f"{prefix}.resid_pre"]
        attn_in = block.attn_norm(resid_pre)
        mlp_in = block.mlp_norm(cache[f"{prefix}.{block.mlp_reads}"])  # resid_pre if parallel

    def head_step(name: str, site: str, head_index: int) -> Step:
        return step(name, f"{prefix}.{site}", values=cache[f"{prefix}.{site}"][0, t, head_index])

    rms = float(resid_pre[0, t].float().pow(2).mean().sqrt())
    steps = [
        step("residual stream in", f"{prefix}.resid_pre", "what earlier layers wrote"),
        Step(
            "RMS norm before attention",
            "",
            list(attn_in.shape),
            _round(attn_in[0, t, :n_values].float()),
            f"x / rms(x) * weight; rms = {rms:.4f}",
        ),
        head_step(f"query (head 0, {rotated})", "attn.q", head),
        head_step(f"key (kv head 0, {rotated})", "attn.k", 0),
        head_step("value (kv head 0)", "attn.v", 0),
    ]
    pattern = cache[f"{prefix}.attn.pattern"][0, head, t, : t + 1].float()  # (t+1,)
    steps.append(
        Step(
            "attention weights (head 0) over tokens 0..t",
            f"{prefix}.attn.pattern",
            list(cache[f"{prefix}.attn.pattern"].shape),
            _round(pattern),
            f"softmax of q·k / sqrt(dh); sums to {float(pattern.sum()):.4f}; largest on "
            f"{labels[int(pattern.argmax())]!r}",
        )
    )
    mlp_in_row = _round(mlp_in[0, t, :n_values].float())
    steps += [
        head_step("per-head mix of values (head 0)", "attn.z", head),
        step("attention output", f"{prefix}.attn.out", "o_proj of all heads' mixes" + post),
        step("residual after attention (+)", f"{prefix}.resid_mid", "resid_in + attention output"),
        Step("RMS norm before the MLP", "", list(mlp_in.shape), mlp_in_row),
    ]
    if block.mlp.gated:
        steps.append(step("MLP gate (pre-activation)", f"{prefix}.mlp.gate"))
    steps.append(step("MLP up", f"{prefix}.mlp.up"))
    neurons = row(f"{prefix}.mlp.post")
    active = float((neurons > 0).float().mean()) if model.cfg.activation == "relu" else None
    note = f"{model.cfg.activation}" + (" (gate) * up" if block.mlp.gated else "")
    if active is not None:
        note += f"; {active:.0%} of neurons positive"
    steps += [
        step("MLP neurons (activation)", f"{prefix}.mlp.post", note),
        step("MLP output (down)", f"{prefix}.mlp.out", "down_proj of the neurons" + post),
        step("residual after the MLP (+)", f"{prefix}.resid_post", "resid_mid + MLP output"),
    ]
    resid_mid = cache[f"{prefix}.resid_mid"]
    checks = {
        "resid_mid - (resid_pre + attn.out)": float(
            (resid_mid - (resid_pre + cache[f"{prefix}.attn.out"])).abs().max()
        ),
        "resid_post - (resid_mid + mlp.out)": float(
            (cache[f"{prefix}.resid_post"] - (resid_mid + cache[f"{prefix}.mlp.out"])).abs().max()
        ),
    }
    return LayerTrip(lm.name, prompt, layer, t, labels, steps, checks)


def layer_lines(trip: LayerTrip) -> list[str]:
    """The trip as text: one line per step with its shape and first numbers."""
    lines = [
        f"{trip.model}: token {trip.token} {trip.tokens[trip.token]!r} through block "
        f"{trip.layer} of {trip.prompt!r}",
    ]
    for s in trip.steps:
        where = s.site or "(block's own norm module)"
        shape = "x".join(str(d) for d in s.shape)
        numbers = ", ".join(f"{v:+.4f}" for v in s.values)
        lines.append(f"  {s.name:<44} {shape:<14} [{numbers}{', ...' if len(s.values) else ''}]")
        lines.append(f"      {where}" + (f"  — {s.note}" if s.note else ""))
    for name, diff in trip.checks.items():
        lines.append(f"check: max |{name}| = {diff:.2e}")
    return lines


def _round(values: Tensor) -> list[float]:
    return [round(float(v), 6) for v in values.tolist()]
