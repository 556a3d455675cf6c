"""Text to token ids and back, for both vocabularies factscope reads.

A GGUF file carries no `tokenizer.json`: it stores the vocabulary as metadata (tokens,
scores, token types, merges) under llama.cpp's key names. We rebuild from that metadata the
same `tokenizers` pipeline that Hugging Face transformers builds from the same file
(`AutoTokenizer.from_pretrained(folder, gguf_file=name)`), so token ids match transformers
exactly:

- **Gemma** (`tokenizer.ggml.model == "llama"`, a Gemma architecture): a SentencePiece-style
  BPE. Spaces become "▁" and the text is split after each one; pieces the vocabulary lacks
  fall back to the 256 byte tokens `<0x00>`..`<0xFF>`. The file lists no merges, so we
  recover them from the vocabulary: every way to cut a token into two tokens is a merge,
  ranked by the token's position in the file.
- **SmolLM2** (`tokenizer.ggml.model == "gpt2"`): GPT-2's byte-level BPE. Every byte is
  spelled as one printable character, text is pre-split with GPT-2's regex, and the file's
  merges are applied in order.

Tokens the file marks CONTROL (`<bos>`, `<|im_end|>`) or USER_DEFINED (runs of newlines)
are matched whole in the text before the BPE runs. The beginning-of-sequence token is added
by `Tokenizer.encode`, not by the pipeline, so callers can turn it off per call.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tokenizers import AddedToken, decoders, models, normalizers, pre_tokenizers, processors
from tokenizers import Tokenizer as Backend

from factscope.errors import FactscopeError, UnsupportedModelError

# llama.cpp's token types (`tokenizer.ggml.token_type`).
TOKEN_TYPE_CONTROL = 3  # special tokens: <bos>, <eos>, <|im_start|>, ...
TOKEN_TYPE_USER_DEFINED = 4  # added tokens that are not special: "\n\n", "<think>", ...

# Architectures whose "llama" (SentencePiece) vocabulary is Gemma's; transformers builds
# these with `GemmaTokenizer`, other "llama" vocabularies with `LlamaTokenizer`.
GEMMA_ARCHITECTURES = frozenset({"gemma", "gemma2", "gemma3"})

# `tokenizer.ggml.pre` values that mean GPT-2's own pre-tokenizer regex. llama.cpp's "smollm"
# first splits digits apart; transformers ignores that (SmolLM2's vocabulary has no multi-digit
# tokens, so digits come out one per token either way), and so do we.
GPT2_REGEX_PRE_TOKENIZERS = frozenset({"default", "gpt2", "gpt-2", "smollm"})

SAVE_FORMAT = "factscope-tokenizer/1"


class Tokenizer:
    """A `tokenizers.Tokenizer` plus what a language model needs around it.

    `encode` returns the ids the model was trained on, with the BOS token first when the
    checkpoint asks for one; `encode_with_offsets` also says which characters of the text
    each token covers, which `find_subject_span` uses to locate a subject inside a prompt.
    """

    def __init__(
        self, backend: Backend, bos_id: int | None, eos_id: int | None, add_bos_default: bool
    ) -> None:
        self.backend = backend
        self.bos_id = bos_id
        self.eos_id = eos_id
        self.add_bos_default = add_bos_default and bos_id is not None
        self.vocab_size: int = backend.get_vocab_size(with_added_tokens=True)
        self._byte_level = isinstance(backend.decoder, decoders.ByteLevel)
        self._added_ids = frozenset(backend.get_added_tokens_decoder())

    # ---- construction -------------------------------------------------------------------

    @classmethod
    def from_gguf_metadata(cls, metadata: Mapping[str, Any]) -> Tokenizer:
        """Build the tokenizer a GGUF file's `tokenizer.ggml.*` metadata describes."""
        model_type = metadata.get("tokenizer.ggml.model")
        architecture = metadata.get("general.architecture")
        tokens: list[str] = list(metadata["tokenizer.ggml.tokens"])
        token_types = [int(t) for t in metadata.get("tokenizer.ggml.token_type", ())]

        if model_type == "llama" and architecture in GEMMA_ARCHITECTURES:
            backend = _gemma_backend(tokens)
            add_bos = bool(metadata.get("tokenizer.ggml.add_bos_token", True))
        elif model_type == "gpt2":
            pre = metadata.get("tokenizer.ggml.pre", "default")
            if pre not in GPT2_REGEX_PRE_TOKENIZERS:
                raise UnsupportedModelError(
                    f"byte-level tokenizer with pre-tokenizer {pre!r} is not supported; "
                    f"supported: {sorted(GPT2_REGEX_PRE_TOKENIZERS)}"
                )
            tokens = _byte_level_spelling(tokens)
            backend = _byte_level_backend(tokens, list(metadata["tokenizer.ggml.merges"]))
            add_bos = bool(metadata.get("tokenizer.ggml.add_bos_token", False))
        else:
            raise UnsupportedModelError(
                f"tokenizer {model_type!r} for architecture {architecture!r} is not supported; "
                "factscope reads Gemma (SentencePiece) and GPT-2 byte-level BPE vocabularies"
            )
        if metadata.get("tokenizer.ggml.add_eos_token", False):
            raise UnsupportedModelError(
                "this checkpoint appends an end-of-sequence token to every prompt, "
                "which factscope does not support"
            )

        _add_gguf_added_tokens(backend, tokens, token_types, byte_level=model_type == "gpt2")
        bos_id = _optional_int(metadata.get("tokenizer.ggml.bos_token_id"))
        eos_id = _optional_int(metadata.get("tokenizer.ggml.eos_token_id"))
        # The same template transformers installs, so `backend.encode(text)` matches it too.
        backend.post_processor = _bos_template(tokens, bos_id if add_bos else None)
        return cls(backend, bos_id, eos_id, add_bos)

    @classmethod
    def from_hf_folder(cls, folder: Path) -> Tokenizer:
        """Load a Hugging Face checkpoint's `tokenizer.json` (+ `tokenizer_config.json`)."""
        folder = Path(folder)
        json_path = folder / "tokenizer.json"
        if not json_path.is_file():
            raise FactscopeError(
                f"no tokenizer.json in {folder}; point at a Hugging Face model folder"
            )
        backend = Backend.from_file(str(json_path))
        config_path = folder / "tokenizer_config.json"
        config: dict[str, Any] = (
            json.loads(config_path.read_text()) if config_path.is_file() else {}
        )

        def token_id(name: str) -> int | None:
            token = config.get(name)
            content = token.get("content") if isinstance(token, dict) else token
            return backend.token_to_id(content) if isinstance(content, str) else None

        bos_id, eos_id = token_id("bos_token"), token_id("eos_token")
        if "add_bos_token" in config:
            add_bos = bool(config["add_bos_token"])
        else:  # ask the file's own post-processor whether it puts BOS first
            ids = backend.encode("a", add_special_tokens=True).ids
            add_bos = bos_id is not None and ids[:1] == [bos_id]
        return cls(backend, bos_id, eos_id, add_bos)

    def save(self, path: Path) -> None:
        """Write one two-line file (JSON Lines): our fields, then the `tokenizers` JSON."""
        header = {
            "format": SAVE_FORMAT,
            "bos_id": self.bos_id,
            "eos_id": self.eos_id,
            "add_bos_default": self.add_bos_default,
        }
        # Compact JSON escapes newlines inside strings, so the backend is a single line.
        Path(path).write_text(
            json.dumps(header) + "\n" + _fast_json(self.backend), encoding="utf-8"
        )

    @classmethod
    def load(cls, path: Path) -> Tokenizer:
        """Read a file written by `save`."""
        header_line, _, backend_json = Path(path).read_text(encoding="utf-8").partition("\n")
        header = json.loads(header_line)
        if header.get("format") != SAVE_FORMAT:
            raise FactscopeError(f"{path} is not a saved factscope tokenizer; delete it to rebuild")
        return cls(
            Backend.from_str(backend_json),
            header["bos_id"],
            header["eos_id"],
            header["add_bos_default"],
        )

    # ---- text <-> ids -------------------------------------------------------------------

    def encode(self, text: str, add_bos: bool | None = None) -> list[int]:
        """Token ids of `text`, BOS first if `add_bos` (None: the checkpoint's default)."""
        return self.encode_with_offsets(text, add_bos)[0]

    def encode_with_offsets(
        self, text: str, add_bos: bool | None = None
    ) -> tuple[list[int], list[tuple[int, int]]]:
        """Token ids and, for each, the `[start, end)` characters of `text` it covers.

        BOS covers no text and gets (0, 0). A character split into several byte tokens
        gives each of them that character's span.
        """
        encoding = self.backend.encode(text, add_special_tokens=False)
        ids, offsets = list(encoding.ids), list(encoding.offsets)
        if self._wants_bos(add_bos):
            assert self.bos_id is not None
            ids.insert(0, self.bos_id)
            offsets.insert(0, (0, 0))
        return ids, offsets

    def decode(self, ids: Sequence[int]) -> str:
        """The text `ids` spell; special tokens such as `<bos>` are written out."""
        return self.backend.decode([int(i) for i in ids], skip_special_tokens=False)

    def token_str(self, id: int) -> str:
        """A readable spelling of one token for plots: word-start markers become spaces.

        SentencePiece's "▁Jordan" and byte-level "ĠJordan" both read " Jordan"; a lone byte
        that is not a whole character reads as an escape like "\\xe2".
        """
        piece = self.backend.id_to_token(int(id))
        if piece is None:
            raise FactscopeError(
                f"token id {id} is outside the vocabulary (0..{self.vocab_size - 1})"
            )
        if int(id) in self._added_ids:  # <bos>, <|im_end|>, "\n\n": spelled as they are
            return piece
        if self._byte_level:
            raw = bytes(_BYTE_OF_CHAR[c] for c in piece)
        elif len(piece) == 6 and piece.startswith("<0x") and piece.endswith(">"):
            raw = bytes([int(piece[3:5], 16)])  # a byte-fallback token such as <0x0A>
        else:
            return piece.replace("▁", " ")
        return raw.decode("utf-8", errors="backslashreplace")

    def find_subject_span(
        self, prompt: str, subject: str, add_bos: bool | None = None
    ) -> tuple[int, int]:
        """Token indices `[start, end)` covering the last occurrence of `subject` in `prompt`.

        These are the tokens whose characters overlap the subject's, indexed as in
        `encode(prompt, add_bos)`. Like ROME, we take the last occurrence: in a few-shot
        prompt the subject being asked about comes after the examples.
        """
        if not subject:
            raise FactscopeError("the subject is empty; give the words of the prompt it names")
        char_start = prompt.rfind(subject)
        if char_start < 0:
            raise FactscopeError(
                f"subject {subject!r} does not occur in prompt {prompt!r}; "
                "give it exactly as written in the prompt (case and spaces matter)"
            )
        char_end = char_start + len(subject)
        _, offsets = self.encode_with_offsets(prompt, add_bos)
        covering = [i for i, (s, e) in enumerate(offsets) if s < char_end and e > char_start]
        if not covering:  # cannot happen for a non-empty substring, but say so if it does
            raise FactscopeError(f"no token covers subject {subject!r} in prompt {prompt!r}")
        return covering[0], covering[-1] + 1

    def _wants_bos(self, add_bos: bool | None) -> bool:
        wanted = self.add_bos_default if add_bos is None else add_bos
        if wanted and self.bos_id is None:
            raise FactscopeError("this tokenizer has no BOS token; encode with add_bos=False")
        return wanted


# ---- building the pipelines from GGUF metadata ----------------------------------------------


def spell_tokens(tokenizer: Tokenizer | None, ids: Sequence[int]) -> list[str]:
    """Readable spellings of token ids for tables and plots (`Tokenizer.token_str`).

    Without a tokenizer, ids read `<N>`; an embedding row past the tokenizer's vocabulary
    (a model whose embedding was padded, e.g. to a multiple of 64) reads `<unused N>`.
    """
    if tokenizer is None:
        return [f"<{i}>" for i in ids]
    return [
        tokenizer.token_str(int(i)) if int(i) < tokenizer.vocab_size else f"<unused {i}>"
        for i in ids
    ]


def _gemma_backend(tokens: list[str]) -> Backend:
    """Gemma's SentencePiece-style BPE, as transformers' `GemmaTokenizer` sets it up.

    Tokens made only of spaces are stored with real spaces ("  "), but the text is looked up
    after spaces became "▁", so those tokens are respelled "▁▁" first.
    """
    tokens = ["▁" * len(t) if " " in t and not t.strip() else t for t in tokens]
    vocab = {token: index for index, token in enumerate(tokens)}
    backend = Backend(
        models.BPE(
            vocab=vocab,
            merges=_merges_from_vocab_order(tokens, vocab),
            unk_token="<unk>",
            fuse_unk=True,
            byte_fallback=True,
            dropout=None,
        )
    )
    backend.normalizer = normalizers.Replace(" ", "▁")
    backend.pre_tokenizer = pre_tokenizers.Split(" ", behavior="merged_with_previous")
    backend.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()]
    )
    return backend


def _merges_from_vocab_order(tokens: list[str], vocab: Mapping[str, int]) -> list[tuple[str, str]]:
    """Every cut of a token into two vocabulary tokens, ranked by the token's file position.

    Gemma's file lists no merges; its tokens appear in merge order, so a token earlier in the
    file merges first. Within one token, cuts with a longer left part come first (as
    transformers' `generate_merges` sorts them).
    """
    return [
        (token[:cut], token[cut:])
        for token in tokens
        for cut in range(len(token) - 1, 0, -1)
        if token[:cut] in vocab and token[cut:] in vocab
    ]


def _byte_level_backend(tokens: list[str], merges: list[str]) -> Backend:
    """GPT-2's byte-level BPE, as transformers' `GPT2Tokenizer` sets it up."""
    pairs = [(left, right) for left, _, right in (merge.partition(" ") for merge in merges)]
    backend = Backend(
        models.BPE(
            vocab={token: index for index, token in enumerate(tokens)},
            merges=pairs,
            continuing_subword_prefix="",
            end_of_word_suffix="",
            fuse_unk=False,
            dropout=None,
        )
    )
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    return backend


def _byte_level_spelling(tokens: list[str]) -> list[str]:
    """Respell tokens written in plain UTF-8 into GPT-2's one-character-per-byte alphabet."""
    return [
        token
        if all(c in _BYTE_OF_CHAR for c in token)
        else "".join(_CHAR_OF_BYTE[b] for b in token.encode("utf-8"))
        for token in tokens
    ]


def _add_gguf_added_tokens(
    backend: Backend, tokens: list[str], token_types: list[int], *, byte_level: bool
) -> None:
    """Match CONTROL tokens (as special) and USER_DEFINED tokens whole in the raw text.

    A USER_DEFINED token the model's vocabulary spells differently is left out. In a
    byte-level vocabulary a CONTROL token spelled outside the byte alphabet is a llama.cpp
    mislabel, and transformers skips it; so do we.
    """
    control = [
        AddedToken(token, normalized=False, special=True)
        for token, kind in zip(tokens, token_types, strict=False)
        if kind == TOKEN_TYPE_CONTROL
        and not (byte_level and not set(token) <= _BYTE_OF_CHAR.keys())
    ]
    user_defined = [
        AddedToken(token, normalized=False, special=False)
        for token, kind in zip(tokens, token_types, strict=False)
        if kind == TOKEN_TYPE_USER_DEFINED and backend.token_to_id(token) is not None
    ]
    backend.add_special_tokens(control)
    backend.add_tokens(user_defined)


def _bos_template(tokens: list[str], bos_id: int | None) -> processors.TemplateProcessing:
    """The post-processor transformers installs: "<bos> $A" when BOS is added, else "$A"."""
    if bos_id is None:
        return processors.TemplateProcessing(single="$A:0", pair="$A:0 $B:1", special_tokens=[])
    bos = tokens[bos_id]
    return processors.TemplateProcessing(
        single=f"{bos}:0 $A:0", pair=f"{bos}:0 $A:0 {bos}:1 $B:1", special_tokens=[(bos, bos_id)]
    )


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _gpt2_byte_alphabet() -> dict[int, str]:
    """GPT-2's map from each byte to one printable character.

    Printable Latin-1 bytes spell themselves; the other 68 (control bytes, space, ...) are
    moved to U+0100 onwards, so a space is "Ġ" and a newline is "Ċ".
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)]
    alphabet = {b: chr(b) for b in printable}
    shifted = (b for b in range(256) if b not in alphabet)
    for n, b in enumerate(shifted):
        alphabet[b] = chr(256 + n)
    return dict(sorted(alphabet.items()))


_CHAR_OF_BYTE = _gpt2_byte_alphabet()
_BYTE_OF_CHAR = {c: b for b, c in _CHAR_OF_BYTE.items()}


def _fast_json(backend: Backend) -> str:
    """The backend's JSON with BPE merges written as "left right" strings where no part
    holds a space: `tokenizers` parses Gemma's 514,906 merges about 0.2 s faster that way
    than as pairs (the two forms load to the same tokenizer)."""
    spec = json.loads(backend.to_str())
    merges = spec.get("model", {}).get("merges")
    if (
        merges
        and isinstance(merges[0], list)
        and not any(" " in m[0] or " " in m[1] for m in merges)
    ):
        spec["model"]["merges"] = [f"{left} {right}" for left, right in merges]
    return json.dumps(spec, ensure_ascii=False, separators=(",", ":"))
