"""Names for reading a fact: the AND test's name variants and a relation's prompts.

The AND test asks whether a neuron needs both of a subject's names. It reruns the prompt
with the subject replaced by

    first  - the first name kept, another last name   ("Michael Phelps")
    last   - the last name kept, another first name    ("Tom Jordan")
    neither - neither name kept                          ("Tom Brady")

Every variant must tokenise like the original (same number of tokens, the subject on the
same positions), so that "the last subject token" and "the final token" mean the same
positions in every run. Variants come from `--variants` or are built from the list of
common names shipped in `data/names.json`, keeping only those that tokenise alike.

The same file lists athletes by sport, the prompts `factscope directions` uses for a
difference-of-means direction per answer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from factscope.errors import FactscopeError
from factscope.tokenizer import Tokenizer

VARIANT_KINDS: tuple[str, ...] = ("first", "last", "neither")


@cache
def names_data() -> dict[str, Any]:
    """The shipped names file: first_names, last_names, sports {sport: [athlete, ...]}."""
    text = resources.files("factscope.read").joinpath("data/names.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def relation_prompts(template: str = "{} plays the sport of") -> list[tuple[str, str, str]]:
    """(prompt, subject, answer) for every athlete in the shipped list, answer " <sport>"."""
    if "{}" not in template:
        raise FactscopeError(f"template {template!r} has no '{{}}' for the subject's name")
    return [
        (template.format(name), name, f" {sport}")
        for sport, names in names_data()["sports"].items()
        for name in names
    ]


@dataclass(frozen=True)
class Variant:
    """The prompt with the subject replaced by `name`, of kind first / last / neither."""

    kind: str
    name: str
    prompt: str

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "name": self.name, "prompt": self.prompt}


def split_name(subject: str) -> tuple[str, str]:
    """A subject's first name and the rest: "Michael Jordan" -> ("Michael", "Jordan")."""
    words = subject.split()
    if len(words) < 2:
        raise FactscopeError(
            f"subject {subject!r} is one word; the AND test needs a first and a last name "
            "(or give --variants)"
        )
    return words[0], " ".join(words[1:])


def parse_variants(text: str) -> list[tuple[str, str]]:
    """`--variants "first:Michael Phelps,last:Tom Jordan,neither:Tom Brady"` as (kind, name)."""
    pairs = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        kind, sep, name = item.partition(":")
        kind, name = kind.strip(), name.strip()
        if not sep or kind not in VARIANT_KINDS or not name:
            raise FactscopeError(
                f"--variants item {item!r} is not KIND:NAME with KIND one of "
                f"{', '.join(VARIANT_KINDS)}; e.g. 'first:Michael Phelps,last:Tom Jordan'"
            )
        pairs.append((kind, name))
    if not pairs:
        raise FactscopeError(
            "--variants is empty; give e.g. 'first:Michael Phelps,neither:Tom Brady'"
        )
    return pairs


def replace_subject(prompt: str, subject: str, name: str) -> str:
    """`prompt` with the last occurrence of `subject` replaced by `name`."""
    start = prompt.rfind(subject)
    if start < 0:
        raise FactscopeError(f"subject {subject!r} does not occur in prompt {prompt!r}")
    return prompt[:start] + name + prompt[start + len(subject) :]


def tokenises_alike(tokenizer: Tokenizer, prompt: str, subject: str, variant: Variant) -> bool:
    """Same token count as the original prompt and the variant's name on the same positions."""
    if len(tokenizer.encode(variant.prompt)) != len(tokenizer.encode(prompt)):
        return False
    span = tokenizer.find_subject_span(prompt, subject)
    return tokenizer.find_subject_span(variant.prompt, variant.name) == span


def build_variants(
    tokenizer: Tokenizer,
    prompt: str,
    subject: str,
    given: list[tuple[str, str]] | None = None,
    per_kind: int = 5,
) -> list[Variant]:
    """The AND test's variants: `given` (checked) or up to `per_kind` of each kind built
    from the shipped names, keeping those that tokenise like the original."""
    if given is not None:
        variants = [Variant(k, n, replace_subject(prompt, subject, n)) for k, n in given]
        for v in variants:
            if not tokenises_alike(tokenizer, prompt, subject, v):
                n_var = len(tokenizer.encode(v.prompt))
                n_orig = len(tokenizer.encode(prompt))
                raise FactscopeError(
                    f"variant {v.name!r} does not tokenise like {subject!r} ({n_var} vs "
                    f"{n_orig} prompt tokens, or the name on other positions); choose names "
                    "with the same number of tokens"
                )
        return variants
    first, last = split_name(subject)
    data = names_data()
    firsts = [f for f in data["first_names"] if f != first]
    lasts = [x for x in data["last_names"] if x != last]
    candidates = {
        "first": [f"{first} {x}" for x in lasts],
        "last": [f"{f} {last}" for f in firsts],
        "neither": [f"{f} {x}" for f, x in zip(firsts, lasts, strict=False)],
    }
    variants = []
    for kind in VARIANT_KINDS:
        kept = []
        for name in candidates[kind]:
            v = Variant(kind, name, replace_subject(prompt, subject, name))
            if tokenises_alike(tokenizer, prompt, subject, v):
                kept.append(v)
            if len(kept) == per_kind:
                break
        if not kept:
            raise FactscopeError(
                f"no shipped name gives a {kind!r} variant of {subject!r} that tokenises like "
                "it; give --variants"
            )
        variants += kept
    return variants
