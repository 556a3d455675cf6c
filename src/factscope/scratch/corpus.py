"""A corpus of made-up facts, after "Physics of Language Models, Part 3.1" (Allen-Zhu & Li).

Fictional people, each with six attributes drawn at random (birth year, birth city,
university, major, employer, sport), are written up as biographies from many sentence
templates, and asked about in question/answer pairs. Because every fact is invented, the
truth is known exactly and nothing the model answers can come from elsewhere.

Two regimes, the paper's central comparison:

- `single`: one biography per person, its templates drawn once and its sentences always in
  the same order (the paper's bioS single);
- `multi`: several biographies per person (default 5), each with fresh templates and its
  sentences shuffled (the paper's multi5 + permute "knowledge augmentation").

People are split: question/answer pairs of the first `qa_fraction` of them are for
fine-tuning ("trained" people); the others' are never trained on ("held-out" people) and
measure whether the model can *extract* knowledge it only read in biographies.

Files `write_biography_corpus` makes in a folder:

    corpus.json        the settings and counts
    people.jsonl       one person a line: name, pronoun, attributes, split
    pretrain.txt       biographies, one a line (what `factscope train` reads)
    eval.txt           one fresh biography per person of a sample (eval loss: same facts,
                       unseen wording)
    qa_train.txt       question + answer texts of the trained people, one a line
    qa.jsonl           every question: person, attribute, prompt, answer, split
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from factscope.errors import FactscopeError

Regime = Literal["single", "multi"]


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


REGIMES: tuple[str, ...] = ("single", "multi")

FIRST_NAMES = {
    "he": _words(
        "Aaron Abel Adrian Alden Amos Anson Arlo Barrett Basil Bennett Brody Caleb Cassius "
        "Clement Cyrus Dalton Damon Darius Declan Dorian Easton Elias Emmett Ezra Felix Flynn "
        "Gideon Grady Harlan Hugo Ignatius Jasper Jonah Kai Keegan Lachlan Leland Lorcan "
        "Magnus Milo Nolan Orson Otto Percival Quentin Rafferty Rhys Roscoe Silas Soren "
        "Tobias Upton Vaughn Wendell Wyatt Xavier Yannick Zane"
    ),
    "she": _words(
        "Ada Adelaide Alma Amara Anya Ariadne Beatrix Bianca Briony Calla Carys Celeste "
        "Clementine Dahlia Delphine Edith Elowen Esme Fern Freya Greer Hazel Imogen Ingrid "
        "Isadora Juniper Kestrel Lark Linnea Lorelei Maeve Marigold Mireille Nadia Nell "
        "Odette Ophelia Petra Phoebe Quilla Rosalind Saoirse Selene Sloane Tamsin Thea "
        "Ursula Vesper Wilhelmina Winona Xanthe Yara Zelda Zinnia"
    ),
}
MIDDLE_NAMES = _words(
    "Ash Bay Blair Brook Cedar Dale Ellis Finch Gray Haven Jude Kit Lane Lee Marsh Noel "
    "Oak Paige Quinn Reed Rowan Sage Shea Sky Tate Vale West Wren"
)
LAST_NAMES = _words(
    "Abernathy Ashdown Bellweather Blackwood Bramble Calloway Carrow Cobbold Darrow Dunmore "
    "Eastwick Ellery Fairchild Farrow Galloway Gilchrist Hallett Hawthorne Holloway Ingram "
    "Jessup Kettering Kinsley Lockhart Lowther Marchbank Merriweather Northcott Oakhurst "
    "Pemberton Penhallow Quarrie Radcliffe Redgrave Rook Saltmarsh Sherwood Stanhope "
    "Thackeray Thornbury Underhill Vance Wainwright Whitlock Winterbourne Yardley Yelland"
)

ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "birth_year": tuple(str(y) for y in range(1950, 2000)),
    "birth_city": _words(
        "Aberdeen Albany Anchorage Antwerp Asheville Austin Bergen Bilbao Bologna Boston "
        "Bristol Brno Cardiff Cork Dayton Denver Dresden Dublin Durban Eugene Fresno Geneva "
        "Ghent Graz Halifax Hamburg Helsinki Houston Kyoto Leeds Leipzig Lima Lisbon "
        "Lyon Madison Malmo Memphis Milan Montreal Munich Nantes Oslo Ottawa Perth Porto "
        "Quebec Reno Riga Salem Seattle Seville Tampa Toledo Tucson Turin Utrecht "
        "Valencia Vienna Zurich"
    ),
    "university": (
        "Harrow Institute of Technology",
        "Northfield University",
        "Eastbrook College",
        "Westmere University",
        "the University of Alder Vale",
        "Kingsbridge University",
        "Silverlake Polytechnic",
        "Redcliff University",
        "Stonegate College",
        "the University of Marrow Bay",
        "Brightwater Institute",
        "Oakridge University",
        "Highmoor College",
        "the University of Fenwick",
        "Larkspur University",
        "Ravenhill Institute",
        "Copperfield University",
        "Glenmorrow College",
        "Ashbourne University",
        "the University of Tidewater",
    ),
    "major": _words(
        "architecture astronomy biology chemistry classics communications economics "
        "engineering geology history linguistics mathematics medicine music nursing "
        "philosophy physics psychology sociology statistics"
    ),
    "employer": (
        "Pinecrest Labs",
        "Bluehaven Foods",
        "Orbital Freight",
        "Kestrel Bank",
        "Granite Insurance",
        "Lumen Pharmaceuticals",
        "Harbor Logistics",
        "Vantage Motors",
        "Cobalt Software",
        "Meadow Energy",
        "Summit Airlines",
        "Tessellate Games",
        "Ironleaf Construction",
        "Nimbus Telecom",
        "Driftwood Media",
        "Quarry Steel",
        "Sable Textiles",
        "Beacon Hospitals",
        "Foxglove Retail",
        "Tandem Robotics",
    ),
    "sport": _words(
        "archery badminton baseball basketball bowling boxing cricket cycling fencing "
        "football golf handball hockey judo rowing rugby sailing skiing squash surfing "
        "swimming tennis volleyball wrestling"
    ),
}

# Sentence templates per attribute: {n} the name (or He/She), {np} its possessive (the
# name's, or His/Her), {p} the possessive pronoun, {a} the attribute.
BIO_TEMPLATES: dict[str, tuple[str, ...]] = {
    "birth_year": (
        "{n} was born in {a}.", "{n} came into the world in {a}.",
        "{np} year of birth is {a}.", "{n} was born in the year {a}.",
        "{n} celebrates a birthday every year since {a}.", "{n} arrived in {a}.",
    ),
    "birth_city": (
        "{n} spent {p} early years in {a}.", "{n} was born in the city of {a}.",
        "{n} grew up in {a}.", "{np} hometown is {a}.", "{n} was raised in {a}.",
        "{n} comes from {a}.",
    ),
    "university": (
        "{n} studied at {a}.", "{n} graduated from {a}.", "{n} received {p} degree from {a}.",
        "{n} was a student at {a}.", "{n} attended {a}.", "{n} completed {p} studies at {a}.",
    ),
    "major": (
        "{n} majored in {a}.", "{n} focused {p} studies on {a}.", "{n} earned a degree in {a}.",
        "{n} specialised in {a}.", "{n} chose {a} as {p} field.", "{n} read {a} at university.",
    ),
    "employer": (
        "{n} worked for {a}.", "{n} was employed by {a}.", "{n} had a career at {a}.",
        "{n} took a job at {a}.", "{n} joined the staff of {a}.", "{n} spent years working at {a}.",
    ),
    "sport": (
        "{n} plays {a}.", "{n} enjoys playing {a}.", "{np} favourite sport is {a}.",
        "{n} spends weekends playing {a}.", "{n} is a keen {a} player.", "{n} competes in {a}.",
    ),
}  # fmt: skip

QUESTIONS: dict[str, str] = {
    "birth_year": "In which year was {n} born?",
    "birth_city": "Which city was {n} born in?",
    "university": "Which university did {n} attend?",
    "major": "What did {n} study?",
    "employer": "Which company did {n} work for?",
    "sport": "Which sport does {n} play?",
}
POSSESSIVE = {"he": "his", "she": "her"}


@dataclass(frozen=True)
class Person:
    name: str
    pronoun: str  # "he" or "she"
    attributes: dict[str, str]
    split: str  # "train" (QA fine-tuned on) or "heldout" (QA never trained on)


@dataclass(frozen=True)
class QA:
    """One attribute question: `prompt` is continued by " " + `answer`."""

    person: str
    attribute: str
    prompt: str  # "Question: Which city was Anya Wren Ashdown born in? Answer:"
    answer: str  # "Lisbon"
    split: str

    @property
    def text(self) -> str:
        return f"{self.prompt} {self.answer}."


@dataclass(frozen=True)
class CorpusSettings:
    people: int = 1000
    regime: Regime = "multi"
    bios_per_person: int = 5  # used by the multi regime
    qa_fraction: float = 0.5
    fullname: bool = False  # every sentence names the person (else "He"/"She" after the first)
    eval_people: int = 200
    seed: int = 0


@dataclass(frozen=True)
class BiographyCorpus:
    """The synthetic people, their biographies (training and held-out) and the questions."""

    settings: CorpusSettings
    people: list[Person]
    biographies: list[str]
    eval_biographies: list[str]
    qa: list[QA]

    @property
    def qa_train(self) -> list[QA]:
        return [q for q in self.qa if q.split == "train"]


def make_people(n: int, rng: random.Random) -> list[Person]:
    """`n` people with distinct full names and attributes drawn uniformly at random."""
    n_names = sum(len(v) for v in FIRST_NAMES.values()) * len(MIDDLE_NAMES) * len(LAST_NAMES)
    if n > n_names // 2:
        raise FactscopeError(f"--people {n} is too many; at most {n_names // 2} distinct names")
    seen: set[str] = set()
    people: list[Person] = []
    while len(people) < n:
        pronoun = rng.choice(("he", "she"))
        name = " ".join(
            (rng.choice(FIRST_NAMES[pronoun]), rng.choice(MIDDLE_NAMES), rng.choice(LAST_NAMES))
        )
        if name in seen:
            continue
        seen.add(name)
        attributes = {k: rng.choice(values) for k, values in ATTRIBUTES.items()}
        people.append(Person(name, pronoun, attributes, "train"))
    return people


def biography(person: Person, rng: random.Random, shuffle: bool, fullname: bool) -> str:
    """One biography: a random template per attribute, the sentences in canonical order
    or shuffled; the first sentence names the person, later ones use the pronoun."""
    order = list(ATTRIBUTES)
    if shuffle:
        rng.shuffle(order)
    sentences = []
    for i, attribute in enumerate(order):
        template = rng.choice(BIO_TEMPLATES[attribute])
        named = i == 0 or fullname
        possessive = POSSESSIVE[person.pronoun]
        sentence = template.format(
            n=person.name if named else person.pronoun.capitalize(),
            np=f"{person.name}'s" if named else possessive.capitalize(),
            p=possessive,
            a=person.attributes[attribute],
        )
        sentences.append(sentence)
    return " ".join(sentences)


def questions(person: Person) -> list[QA]:
    """The six attribute questions about `person`."""
    return [
        QA(
            person.name,
            attribute,
            f"Question: {QUESTIONS[attribute].format(n=person.name)} Answer:",
            person.attributes[attribute],
            person.split,
        )
        for attribute in ATTRIBUTES
    ]


def make_corpus(settings: CorpusSettings) -> BiographyCorpus:
    """People, biographies in the chosen regime, fresh eval biographies, and QA pairs."""
    if settings.people < 2:
        raise FactscopeError("--people must be at least 2 (some to train on, some held out)")
    if settings.regime not in REGIMES:
        raise FactscopeError(f"--regime {settings.regime!r} is unknown; use single or multi")
    if not 0.0 < settings.qa_fraction < 1.0:
        raise FactscopeError("--qa-fraction must be between 0 and 1 (exclusive)")
    rng = random.Random(settings.seed)
    people = make_people(settings.people, rng)
    n_train = max(1, min(len(people) - 1, round(settings.qa_fraction * len(people))))
    people = [
        Person(p.name, p.pronoun, p.attributes, "train" if i < n_train else "heldout")
        for i, p in enumerate(people)
    ]
    bios = []
    for person in people:
        if settings.regime == "single":
            bios.append(biography(person, rng, shuffle=False, fullname=settings.fullname))
        else:
            bios += [
                biography(person, rng, shuffle=True, fullname=settings.fullname)
                for _ in range(settings.bios_per_person)
            ]
    rng.shuffle(bios)
    sample = rng.sample(people, min(settings.eval_people, len(people)))
    eval_bios = [biography(p, rng, shuffle=True, fullname=settings.fullname) for p in sample]
    qa = [q for person in people for q in questions(person)]
    return BiographyCorpus(settings, people, bios, eval_bios, qa)


CORPUS_FILES = (
    "corpus.json", "people.jsonl", "pretrain.txt", "eval.txt", "qa_train.txt", "qa.jsonl",
)  # fmt: skip


def write_biography_corpus(
    corpus: BiographyCorpus, folder: Path, paths: dict[str, Path] | None = None
) -> Path:
    """Write the corpus files (see the module docstring) into `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = paths or {name: folder / name for name in CORPUS_FILES}

    def lines(path: Path, rows: list[str]) -> None:
        path.write_text("".join(r + "\n" for r in rows), encoding="utf-8")

    meta = {
        "settings": asdict(corpus.settings),
        "counts": {
            "people": len(corpus.people),
            "trained_people": sum(p.split == "train" for p in corpus.people),
            "heldout_people": sum(p.split == "heldout" for p in corpus.people),
            "biographies": len(corpus.biographies),
            "qa_train": len(corpus.qa_train),
            "qa": len(corpus.qa),
        },
        "paper": "Allen-Zhu & Li, Physics of Language Models Part 3.1 (arXiv 2309.14316)",
    }
    paths["corpus.json"].write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    lines(paths["people.jsonl"], [json.dumps(asdict(p)) for p in corpus.people])
    lines(paths["pretrain.txt"], corpus.biographies)
    lines(paths["eval.txt"], corpus.eval_biographies)
    lines(paths["qa_train.txt"], [q.text for q in corpus.qa_train])
    lines(paths["qa.jsonl"], [json.dumps({**asdict(q), "text": q.text}) for q in corpus.qa])
    return folder


def read_qa(folder: Path) -> list[QA]:
    """The questions of a corpus folder written by `write_biography_corpus`."""
    path = Path(folder) / "qa.jsonl"
    if not path.is_file():
        raise FactscopeError(f"{folder} has no qa.jsonl; make one with `factscope corpus`")
    rows: list[dict[str, Any]] = [
        json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line
    ]
    return [QA(r["person"], r["attribute"], r["prompt"], r["answer"], r["split"]) for r in rows]
