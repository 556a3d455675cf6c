"""CounterFact's measures of an edit (Meng et al. 2022, experiments/summarize.py).

For an edit "subject: old → new", every prompt is scored by the length-normalised
probability of each answer, p(a) = exp(mean over a's tokens of log p(token)):

- efficacy ES: fraction of the edited prompt(s) where p(new) > p(old);
- paraphrase PS: the same on the paraphrases (the fact asked in other words);
- neighbourhood NS: fraction of neighbour prompts (other subjects whose answer is the old
  one) where p(old) > p(new) still — the edit did not bleed;
- S: the harmonic mean of ES, PS and NS;
- magnitudes: mean p(new) − p(old) on the edited prompts (EM) and paraphrases (PM), mean
  p(old) − p(new) on the neighbours (NM);
- fluency GE: n-gram entropy of text the model writes about the subject (ROME's
  `compute_n_gram_entropy`: the mean of ⅔·H(bigrams) and 4⁄3·H(trigrams) in bits, words
  split on word characters and punctuation as nltk's tokenizer roughly does); a model that
  repeats itself scores low;
- drift: perplexity of held-out text (documents of the statistics corpus that the
  statistics never saw) before and after.

Each fact's measures are averaged over its prompts first, then over facts (as ROME does).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from factscope.edit.handle import mlp_of
from factscope.edit.measure import answer_probabilities
from factscope.progress import progress_bar
from factscope.result import Result

if TYPE_CHECKING:
    from factscope.load import LoadedModel

GENERATION_PROMPTS = ("{} is", "{} was known for")


def ngram_entropy(
    text: str, ns: tuple[int, ...] = (2, 3), weights: tuple[float, ...] = (2 / 3, 4 / 3)
) -> float:
    """ROME's fluency of one text: mean over n of weight_n · H(n-grams of words), in bits."""
    words = re.findall(r"\w+|[^\w\s]", text)
    values = []
    for n, w in zip(ns, weights, strict=True):
        grams = Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
        total = sum(grams.values())
        h = -sum(c / total * math.log2(c / total) for c in grams.values()) if total else 0.0
        values.append(w * h)
    return sum(values) / len(values)


@torch.no_grad()
def generation_entropy(
    lm: LoadedModel,
    subject: str,
    n_tokens: int = 64,
    prompts: Sequence[str] = GENERATION_PROMPTS,
    seed: int = 0,
) -> tuple[float, list[str]]:
    """GE: mean n-gram entropy of texts the model writes about `subject` (top-k 5 sampling,
    as ROME's generate_fast), and the texts."""
    from factscope.edit.corpus import sample_continuations
    from factscope.generate import Sampling

    texts_in = [p.format(subject) for p in prompts]
    generator = torch.Generator(device=lm.model.device).manual_seed(seed)
    new = sample_continuations(
        lm, texts_in, n_tokens, Sampling(temperature=1.0, top_k=5), generator
    )
    texts = [p + lm.tokenizer.decode(ids) for p, ids in zip(texts_in, new, strict=True)]
    return sum(ngram_entropy(t) for t in texts) / len(texts), texts


@torch.no_grad()
def perplexity(lm: LoadedModel, documents: Sequence[str], max_tokens: int = 256) -> float:
    """exp(mean next-token loss) over the first `max_tokens` tokens of each document."""
    total, count = 0.0, 0
    for doc in documents:
        ids = lm.tokenizer.encode(doc)[:max_tokens]
        tokens = torch.tensor([ids], device=lm.model.device)
        log_p = torch.log_softmax(lm.model(tokens)[0, :-1].float(), dim=-1)
        total += float(-log_p.gather(1, tokens[0, 1:, None]).sum())
        count += len(ids) - 1
    return math.exp(total / max(count, 1))


def held_out_documents(
    lm: LoadedModel, n: int = 4, corpus: str = "self", n_tokens: int = 100_000
) -> list[str]:
    """The last `n` documents of the statistics corpus (for "self": written beyond the
    statistics' tokens, so the statistics never see them)."""
    from factscope.edit.corpus import load_corpus

    return list(load_corpus(corpus, lm, n_tokens, progress=False).documents[-n:])


@dataclass
class FactScores:
    """p(new) and p(old) on each kind of prompt for one fact, at one moment."""

    rewrite: list[list[float]]  # [[p_new, p_old]] per prompt
    paraphrase: list[list[float]]
    neighbourhood: list[list[float]]

    def measures(self) -> dict[str, float]:
        def frac(rows: list[list[float]], new_wins: bool) -> float:
            if not rows:
                return float("nan")
            return sum((r[0] > r[1]) == new_wins for r in rows) / len(rows)

        def diff(rows: list[list[float]], sign: float) -> float:
            return sum(sign * (r[0] - r[1]) for r in rows) / len(rows) if rows else float("nan")

        return {
            "efficacy": frac(self.rewrite, True),
            "paraphrase": frac(self.paraphrase, True),
            "neighbourhood": frac(self.neighbourhood, False),
            "efficacy_magnitude": diff(self.rewrite, 1.0),
            "paraphrase_magnitude": diff(self.paraphrase, 1.0),
            "neighbourhood_magnitude": diff(self.neighbourhood, -1.0),
        }


def score_fact(
    lm: LoadedModel,
    prompt: str,
    paraphrases: Sequence[str],
    neighbourhood: Sequence[str],
    new: str,
    old: str,
) -> FactScores:
    """p(new), p(old) on the edited prompt, its paraphrases and the neighbour prompts."""
    all_prompts = [prompt, *paraphrases, *neighbourhood]
    probs = answer_probabilities(lm, all_prompts, [new, old])
    n_p = len(paraphrases)
    return FactScores(probs[:1], probs[1 : 1 + n_p], probs[1 + n_p :])


def harmonic_mean(values: Sequence[float]) -> float:
    if any(v <= 0 or math.isnan(v) for v in values):
        return 0.0 if all(not math.isnan(v) for v in values) else float("nan")
    return len(values) / sum(1 / v for v in values)


@dataclass
class EvaluationSummary(Result):
    """CounterFact's table row for a set of edits: means over facts, in percent for the
    rates (as ROME reports them)."""

    method: str
    model: str
    dataset: str
    n_facts: int
    sequential: int
    pre: dict[str, float]
    post: dict[str, float]
    fluency_pre: float | None
    fluency_post: float | None
    perplexity_pre: float | None
    perplexity_post: float | None
    edit: dict[str, Any] = field(default_factory=dict)  # edit_means: reach, ρ, λ, null space

    def _repr_html_(self) -> str:
        from factscope.report.edit_html import summary_html

        return summary_html(self.to_dict())


RATES = ("efficacy", "paraphrase", "neighbourhood")


def summarise(records: Sequence[dict[str, Any]], when: str) -> dict[str, float]:
    """Mean of each measure over facts (rates ×100), plus S = hmean(ES, PS, NS)."""
    out: dict[str, float] = {}
    keys = [k for k in records[0][when] if isinstance(records[0][when][k], (int, float))]
    for k in keys:
        values = [r[when][k] for r in records if not math.isnan(r[when][k])]
        mean = sum(values) / len(values) if values else float("nan")
        out[k] = 100 * mean if k in RATES or k.endswith("magnitude") else mean
    out["score"] = harmonic_mean([out[k] for k in RATES])
    return out


# ---- the evaluation sweep (edit-eval) -------------------------------------------------------


def fact_request(record: Any) -> Any:
    """A dataset record as an edit: its prompt, subject, counterfactual (new) and answer (old)."""
    from factscope.edit.request import EditRequest

    return EditRequest(
        record.prompt, record.subject, record.counterfactual, record.answer, record.id
    )


def known_neighbourhood(
    facts: Sequence[Any], known: Sequence[Any], n: int = 3, edited: Collection[str] = ()
) -> list[Any]:
    """Each fact with its neighbour prompts replaced by those of other facts the model knows
    with the same answer (the next `n` in dataset order, cycling; fewer if there are not),
    leaving out the facts whose ids are in `edited`.

    CounterFact's neighbours are subjects that share the edited fact's true answer, on
    GPT-2 XL mostly ones it knows. A dataset's own neighbours are any subjects with the
    same answer; for gemma-3-270m, which knows 94 of 5,427 athletes, p(old) on them is
    near chance before any edit, and NS would measure noise rather than damage.

    `edited`: the facts edited in the same run (a batch or a sequence of edits). A neighbour
    that is itself edited to another answer loses the old one because its own edit worked,
    and NS would count that as damage; so it is never a neighbour (`batch_halves`)."""
    from dataclasses import replace

    by_answer: dict[str, list[Any]] = {}
    for record in known:
        by_answer.setdefault(record.answer, []).append(record)
    left_out = set(edited)
    out = []
    for fact in facts:
        others = by_answer.get(fact.answer, [])
        start = next((i for i, r in enumerate(others) if r.id == fact.id), -1) + 1
        cycle = [others[(start + i) % len(others)] for i in range(len(others))] if others else []
        picked = [r.prompt for r in cycle if r.id != fact.id and r.id not in left_out][:n]
        out.append(replace(fact, neighbourhood=tuple(picked)))
    return out


def batch_halves(known: Sequence[Any]) -> tuple[list[Any], list[Any]]:
    """The known facts split for a run that edits many at once (a batch or a sequence):
    every second fact of each answer to edit, the others left unedited as their neighbours
    (`known_neighbourhood(..., edited=...)`), so that each answer has facts on both sides.
    A fact alone with its answer (a country with one known city) has no neighbour to keep
    and is left unedited."""
    count = Counter(record.answer for record in known)
    seen: dict[str, int] = {}
    to_edit: list[Any] = []
    bystanders: list[Any] = []
    for record in known:
        rank = seen[record.answer] = seen.get(record.answer, -1) + 1
        alone = count[record.answer] == 1
        (to_edit if rank % 2 == 0 and not alone else bystanders).append(record)
    return to_edit, bystanders


def known_facts_to_edit(known: Sequence[Any], n: int, together: bool) -> list[Any]:
    """The first `n` facts `edit-eval` edits from the known ones, with their neighbours.

    One at a time (ROME's independent edits), every other known fact with the same answer
    may be a neighbour. Edited together (a batch, a sequence), the facts are the first `n`
    of `batch_halves`' half to edit and the neighbours come from the facts it leaves unedited
    (every edited fact has one: its answer has at least two known facts)."""
    if not together:
        return known_neighbourhood(known[:n], known)
    facts = batch_halves(known)[0][:n]
    return known_neighbourhood(facts, known, edited={r.id for r in facts})


def _score(lm: LoadedModel, record: Any, fluency_tokens: int) -> dict[str, Any]:
    scores = score_fact(
        lm, record.prompt, record.paraphrases, record.neighbourhood,
        record.counterfactual, record.answer,
    )  # fmt: skip
    out: dict[str, Any] = {**scores.measures(), "probs": asdict(scores)}
    if fluency_tokens:
        own = tuple(p.replace("{", "{{").replace("}", "}}") for p in record.generation)
        out["fluency"], texts = generation_entropy(
            lm, record.subject, fluency_tokens, own or GENERATION_PROMPTS
        )
        out["texts"] = texts
    return out


def run_edit_eval(
    lm: LoadedModel,
    records: Sequence[Any],
    run_dir: Any,
    method: str,
    layer: int,
    *,
    sequential: int = 0,
    hparams: Any = None,
    stats: dict[int, Any] | None = None,
    meta: dict[str, Any] | None = None,
    fluency_tokens: int = 48,
    drift_documents: int = 4,
    force: bool = False,
    progress: bool = True,
) -> tuple[list[dict[str, Any]], EvaluationSummary]:
    """Edit the facts of `records` and score them before and after, resumably.

    - ROME, not sequential: each fact alone — score, edit, score, undo — one record per fact
      (factscope.study.sweep: a killed run resumes at the next fact);
    - MEMIT / AlphaEdit, not sequential: all facts in one batch edit;
    - `sequential` N > 0: the first N facts edited one after another into the same model
      (AlphaEdit keeps its running statistics), then every fact scored on the final model.
    Batch and sequential runs score "pre" in one sweep, save the edited weights to
    run_dir/edited.pt as the edits go (so a killed run resumes after its last edit), then
    score "post" in a second sweep."""
    from pathlib import Path

    from factscope.edit import edit
    from factscope.study.sweep import run_sweep

    run_dir = Path(run_dir)
    meta = {**(meta or {}), "task": "edit-eval", "method": method, "layer": layer,
            "sequential": sequential, "n_items": len(records)}  # fmt: skip
    facts = list(records[: sequential or len(records)])
    corpus_name = getattr(hparams, "corpus", "self") if hparams is not None else "self"
    stats_tokens = getattr(hparams, "stats_tokens", 100_000) if hparams is not None else 100_000
    if hparams is not None and not getattr(hparams, "mom2_adjustment", True):
        stats_tokens = 0  # C = I: no statistics, so only the held-out text is written
    drift_docs = (
        held_out_documents(lm, drift_documents, corpus_name, stats_tokens)
        if drift_documents
        else []
    )
    ppl_pre = perplexity(lm, drift_docs) if drift_docs else None

    if method == "rome" and not sequential:

        def one_fact(record: Any) -> dict[str, Any]:
            pre = _score(lm, record, fluency_tokens)
            handle = edit(lm, fact_request(record), "rome", layer, hparams=hparams, stats=stats)
            try:
                post = _score(lm, record, fluency_tokens)
            finally:
                handle.undo()
            return {"id": record.id, "subject": record.subject, "pre": pre, "post": post,
                    "edit": handle.results[0].to_dict()}  # fmt: skip

        done = run_sweep(run_dir, facts, one_fact, meta=meta, force=force, progress=progress,
                         desc="edits")  # fmt: skip
        ppl_post = ppl_pre
    else:
        pre_records = run_sweep(
            run_dir / "pre", facts, lambda r: {"id": r.id, "pre": _score(lm, r, fluency_tokens)},
            meta=meta, force=force, progress=progress, desc="scoring before",
        )  # fmt: skip
        checkpoint = run_dir / "edited.pt"
        saved = (
            torch.load(checkpoint, weights_only=False)
            if checkpoint.exists() and not force
            else None
        )
        done_ids: list[str] = saved["done"] if saved else []
        state = saved.get("state") if saved else None
        reports: dict[str, Any] = dict(saved.get("reports", {})) if saved else {}
        # the model arrives unedited (and leaves so): its weights are the originals, also
        # when resuming, so the checkpoint holds only the changed layers
        originals = {
            l: mlp_of(lm.model, l).down_proj.weight.detach().clone() for l in range(lm.cfg.n_layers)
        }
        if saved:
            with torch.no_grad():
                for l, w in saved["weights"].items():
                    mlp_of(lm.model, l).down_proj.weight.copy_(w)
        todo = [r for r in facts if r.id not in set(done_ids)]
        chunks = (
            [todo[i : i + 1] for i in range(len(todo))] if sequential else [todo] if todo else []
        )
        bar = progress_bar(len(chunks), progress and len(chunks) >= 2, "editing", leave=True)
        for chunk in chunks:
            requests = [fact_request(r) for r in chunk]
            if method == "rome":
                handle = edit(lm, requests, "rome", layer, hparams=hparams, stats=stats)
                for r, res in zip(chunk, handle.results, strict=False):
                    reports[r.id] = res.to_dict()
            else:
                from factscope.edit.memit import AlphaEditState, apply_memit, memit_hparams

                hp = hparams or memit_hparams(lm.name)
                if method == "alphaedit" and state is None and stats is not None:
                    state = AlphaEditState.from_stats(
                        stats, hp.nullspace_threshold, hp.nullspace_energy
                    )
                handle = apply_memit(lm, requests, layer, hp, method=method, stats=stats,
                                     state=state, progress=progress)  # fmt: skip
                for i, r in enumerate(chunk):
                    reports[r.id] = handle.results[0].fact_report(i)
            done_ids += [r.id for r in chunk]
            weights = [
                mlp_of(lm.model, l).down_proj.weight.detach() for l in range(lm.cfg.n_layers)
            ]
            changed = {
                l: w.clone() for l, w in enumerate(weights) if not torch.equal(w, originals[l])
            }
            torch.save(
                {"done": done_ids, "weights": changed, "state": state, "reports": reports},
                checkpoint,
            )
            bar.update(1)
        bar.close()
        post_records = run_sweep(
            run_dir / "post", facts, lambda r: {"id": r.id, "post": _score(lm, r, fluency_tokens)},
            meta=meta, force=force, progress=progress, desc="scoring after",
        )  # fmt: skip
        ppl_post = perplexity(lm, drift_docs) if drift_docs else None
        with torch.no_grad():  # the loaded model back as it was
            for l, w in originals.items():
                mlp_of(lm.model, l).down_proj.weight.copy_(w)
        pre_by_id = {r["id"]: r["pre"] for r in pre_records}
        done = [
            {"id": r["id"], "pre": pre_by_id[r["id"]], "post": r["post"],
             **({"edit": reports[r["id"]]} if r["id"] in reports else {})}
            for r in post_records
        ]  # fmt: skip

    if method == "rome" and not sequential:
        # independent edits: drift of the model with each edit is the mean over facts; we
        # measure it on the last fact's edit only when asked for (cheap enough: one more edit)
        ppl_post = (
            _rome_drift(lm, facts[-1], layer, hparams, stats, drift_docs) if drift_docs else None
        )
    summary = EvaluationSummary(
        method=method, model=str(meta.get("model", lm.name)), dataset=str(meta.get("dataset", "")),
        n_facts=len(done), sequential=sequential,
        pre=summarise(done, "pre"), post=summarise(done, "post"),
        fluency_pre=_mean_of(done, "pre", "fluency"),
        fluency_post=_mean_of(done, "post", "fluency"),
        perplexity_pre=ppl_pre, perplexity_post=ppl_post, edit=edit_means(done),
    )  # fmt: skip
    return done, summary


EDIT_MEASURES = ("z_error", "rho", "reached", "error")


def edit_means(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Means over facts of what the edits record per layer (MEMIT / AlphaEdit: ‖R‖ before
    each layer's update, ρ, the reached share and error of the wanted output change), with
    λ and the null space; {} when the records carry none."""
    edits = [r["edit"] for r in records if "edit" in r and "reached" in r["edit"]]
    if not edits:
        return {}
    out: dict[str, Any] = {"layers": edits[0]["layers"]}
    for key in EDIT_MEASURES:
        rows = [e[key] for e in edits]
        out[key] = [sum(col) / len(col) for col in zip(*rows, strict=True)]
    for key in ("mom2_update_weight", "null_dims", "null_energy"):
        out[key] = edits[-1].get(key)
    return out


def _rome_drift(
    lm: LoadedModel, record: Any, layer: int, hparams: Any, stats: Any, docs: list[str]
) -> float:
    from factscope.edit import edit

    handle = edit(lm, fact_request(record), "rome", layer, hparams=hparams, stats=stats)
    try:
        return perplexity(lm, docs)
    finally:
        handle.undo()


def _mean_of(records: Sequence[dict[str, Any]], when: str, key: str) -> float | None:
    values = [r[when][key] for r in records if key in r[when]]
    return sum(values) / len(values) if values else None
