"""The facts corpus: the two regimes, the held-out split, and the trained tokenizer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from factscope.errors import FactscopeError
from factscope.scratch.bpe import train_bpe
from factscope.scratch.corpus import (
    ATTRIBUTES,
    CORPUS_FILES,
    CorpusSettings,
    make_corpus,
    read_qa,
    write_biography_corpus,
)
from factscope.tokenizer import Tokenizer


def _bios_of(corpus_bios: list[str], name: str) -> list[str]:
    return [b for b in corpus_bios if b.startswith(name + " ") or b.startswith(name + "'s")]


def test_single_regime_one_fixed_biography_per_person() -> None:
    corpus = make_corpus(CorpusSettings(people=30, regime="single", seed=1))
    assert len(corpus.biographies) == 30
    for person in corpus.people:
        (bio,) = _bios_of(corpus.biographies, person.name)
        # every attribute is stated, in the canonical order
        positions = [bio.index(person.attributes[a]) for a in ATTRIBUTES]
        assert positions == sorted(positions)


def test_multi_regime_several_shuffled_biographies() -> None:
    corpus = make_corpus(CorpusSettings(people=30, regime="multi", bios_per_person=4, seed=1))
    assert len(corpus.biographies) == 120
    orders = set()
    for person in corpus.people:
        bios = _bios_of(corpus.biographies, person.name)
        assert len(bios) == 4
        for bio in bios:
            assert all(person.attributes[a] in bio for a in ATTRIBUTES)
            orders.add(tuple(sorted(ATTRIBUTES, key=lambda a: bio.index(person.attributes[a]))))
    assert len(orders) > 20  # sentence order is shuffled


def test_heldout_questions_are_never_in_the_training_text(tmp_path: Path) -> None:
    corpus = make_corpus(CorpusSettings(people=40, regime="multi", qa_fraction=0.5, seed=2))
    names = [p.name for p in corpus.people]
    assert len(set(names)) == len(names)
    assert sum(p.split == "heldout" for p in corpus.people) == 20
    write_biography_corpus(corpus, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(CORPUS_FILES)
    qa_train = (tmp_path / "qa_train.txt").read_text()
    heldout = [q for q in read_qa(tmp_path) if q.split == "heldout"]
    assert len(heldout) == 20 * len(ATTRIBUTES)
    assert not any(q.person in qa_train for q in heldout)
    # but their biographies are in the pretraining text
    pretrain = (tmp_path / "pretrain.txt").read_text()
    assert all(q.person in pretrain for q in heldout)
    meta = json.loads((tmp_path / "corpus.json").read_text())
    assert meta["counts"]["qa_train"] == 20 * len(ATTRIBUTES)


def test_same_seed_same_corpus() -> None:
    a = make_corpus(CorpusSettings(people=10, seed=5))
    b = make_corpus(CorpusSettings(people=10, seed=5))
    c = make_corpus(CorpusSettings(people=10, seed=6))
    assert a.biographies == b.biographies and a.biographies != c.biographies


def test_bad_settings_are_refused() -> None:
    with pytest.raises(FactscopeError, match="--people"):
        make_corpus(CorpusSettings(people=1))
    with pytest.raises(FactscopeError, match="--regime"):
        make_corpus(CorpusSettings(people=5, regime="double"))  # type: ignore[arg-type]


def test_trained_bpe_saves_and_loads_like_the_others(tmp_path: Path) -> None:
    corpus = make_corpus(CorpusSettings(people=50, seed=0))
    tokenizer = train_bpe(corpus.biographies, 600)
    assert 257 < tokenizer.vocab_size <= 600
    bio = corpus.biographies[0]
    ids = tokenizer.encode(bio)
    assert ids[0] == tokenizer.bos_id and tokenizer.decode(ids[1:]) == bio
    assert len(ids) < len(bio.encode()) / 3  # merges learned: far fewer tokens than bytes
    tokenizer.save(tmp_path / "tok.json")
    again = Tokenizer.load(tmp_path / "tok.json")
    assert again.encode(bio) == ids and again.vocab_size == tokenizer.vocab_size
    # any text encodes (byte level), and subject spans work as for real models
    assert again.decode(again.encode("Zoë 日本", add_bos=False)) == "Zoë 日本"
    person = corpus.people[0].name
    prompt = f"Question: Which sport does {person} play? Answer:"
    start, end = again.find_subject_span(prompt, person)
    assert again.decode(again.encode(prompt)[start:end]).strip() == person


def test_vocabulary_too_small_is_refused() -> None:
    with pytest.raises(FactscopeError, match="too small"):
        train_bpe(["some text"], 100)


def test_and_test_names_change_exactly_one_part() -> None:
    """The AND-neuron test's four names: A = first name, B = last name, middle kept."""
    import random

    from factscope.scratch.anatomy import CONDITIONS, _name_variants

    corpus = make_corpus(CorpusSettings(people=20, seed=3))
    rng = random.Random(0)
    for person in corpus.people:
        names = _name_variants(person, rng)
        assert list(names) == list(CONDITIONS) and names["A and B"] == person.name
        first, middle, last = person.name.split()
        for condition, keeps_first, keeps_last in (
            ("A only", True, False), ("B only", False, True), ("neither", False, False),
        ):  # fmt: skip
            f, m, la = names[condition].split()
            assert (f == first, m == middle, la == last) == (keeps_first, True, keeps_last)


def test_knowledge_check_scores_whole_answers(tmp_path: Path) -> None:
    """With logits forced to one token everywhere, exactly the questions whose whole answer
    is that one token count as right, in each split."""
    import torch

    from factscope.config import tiny_config
    from factscope.hooks import hooks
    from factscope.load import LoadedModel
    from factscope.model import Transformer
    from factscope.scratch.knowledge import knowledge_check

    corpus = make_corpus(CorpusSettings(people=60, seed=4))
    write_biography_corpus(corpus, tmp_path)
    tokenizer = train_bpe(corpus.biographies + [q.text for q in corpus.qa], 3000)
    model = Transformer(tiny_config("llama", vocab_size=tokenizer.vocab_size)).eval()
    lm = LoadedModel("tiny", model, tokenizer, tmp_path)
    sports = [p.attributes["sport"] for p in corpus.people]
    sport = max(set(sports), key=sports.count)
    (squash,) = tokenizer.encode(" " + sport, add_bos=False)

    def always_squash(logits: torch.Tensor, site: str) -> torch.Tensor:
        logits = logits.clone()
        logits[..., squash] = 1e4
        return logits

    with hooks(model, {"logits": always_squash}):
        result = knowledge_check(lm, tmp_path)
    for split in ("train", "heldout"):
        asked = [q for q in corpus.qa if q.split == split]
        expected = sum(q.answer == sport for q in asked) / len(asked)
        assert expected > 0
        assert result.accuracy[split]["all"] == pytest.approx(expected)
        assert result.counts[split] == len(asked)
