"""The text a sparse dictionary is trained on, packed into fixed-length sequences.

The default corpus ("installed") is text already on every machine that runs factscope,
so nothing is downloaded:

- the model's own encyclopedic text that ships with the package (the statistics corpus of
  `factscope.edit.corpus`: ~300 openings about people, places, science and sport, continued
  by the model, ~105k tokens for gemma-3-270m): prose of the kind facts are asked about;
- the docstrings of the Python standard library of the interpreter running factscope
  (~2,000 docstrings longer than 200 characters, ~290k tokens for Python 3.11): English
  prose written by people, about many subjects, with code mixed in.

A `.txt` (documents separated by blank lines) or `.jsonl[.gz]` file is taken instead with
`--corpus FILE`. Documents are split into train and held-out sets by a hash of their text
(one in `HELD_OUT_EVERY`), so the held-out metrics never see a training document.
"""

from __future__ import annotations

import ast
import hashlib
import sysconfig
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from factscope.edit.corpus import Corpus
from factscope.errors import FactscopeError

if TYPE_CHECKING:
    from factscope.load import LoadedModel
    from factscope.tokenizer import Tokenizer

DEFAULT_CORPUS = "installed"
HELD_OUT_EVERY = 20  # one document in 20 is held out
MIN_DOCSTRING_CHARS = 200


@dataclass(frozen=True)
class TextCorpus(Corpus):
    """Named documents (the editing statistics' `Corpus`: `digest` names the text in cache
    keys) that split themselves into training and held-out text."""

    def split(self) -> tuple[TextCorpus, TextCorpus]:
        """(train, held-out): a document is held out when the hash of its text says so."""
        train: list[str] = []
        held: list[str] = []
        for doc in self.documents:
            bucket = int(hashlib.sha256(doc.encode("utf-8")).hexdigest()[:8], 16)
            (held if bucket % HELD_OUT_EVERY == 0 else train).append(doc)
        return TextCorpus(self.name + ":train", tuple(train)), TextCorpus(
            self.name + ":held-out", tuple(held)
        )


def stdlib_docstrings(root: Path | None = None, min_chars: int = MIN_DOCSTRING_CHARS) -> list[str]:
    """Docstrings (modules, classes, functions) of the Python files under `root` (default:
    this interpreter's standard library, test suites left out), in sorted file order."""
    root = Path(sysconfig.get_paths()["stdlib"]) if root is None else root
    docs: list[str] = []
    for path in sorted(root.rglob("*.py")):
        parts = set(path.relative_to(root).parts)
        if parts & {"test", "tests", "site-packages", "dist-packages", "idle_test"}:
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError, OSError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                doc = ast.get_docstring(node)
                if doc and len(doc) >= min_chars:
                    docs.append(doc)
    return docs


def installed_corpus(lm: LoadedModel) -> TextCorpus:
    """The model's packaged encyclopedic text (if it has one) and the stdlib's docstrings."""
    from factscope.edit.corpus import packaged_corpus_path, read_documents
    from factscope.edit.stats import model_fingerprint

    packaged = packaged_corpus_path(model_fingerprint(lm.model, lm.cfg.n_layers - 1))
    own = [d["text"] for d in read_documents(packaged)] if packaged.is_file() else []
    return TextCorpus(DEFAULT_CORPUS, tuple(own + stdlib_docstrings()))


def load_text_corpus(name_or_path: str, lm: LoadedModel) -> TextCorpus:
    """ "installed" (see the module docstring) or a .txt / .jsonl[.gz] file."""
    if name_or_path == DEFAULT_CORPUS:
        return installed_corpus(lm)
    from factscope.edit.corpus import load_corpus

    path = Path(name_or_path)
    if not path.is_file():
        raise FactscopeError(
            f"--corpus {name_or_path!r} is not a file; give a .txt or .jsonl[.gz] file "
            f"or {DEFAULT_CORPUS!r}"
        )
    corpus = load_corpus(path)
    return TextCorpus(corpus.name, corpus.documents)


def pack_sequences(
    documents: Sequence[str], tokenizer: Tokenizer, seq_len: int, max_tokens: int | None = None
) -> Tensor:
    """Documents as rows of `seq_len` token ids, (N, seq_len), each row BOS + text.

    The documents are tokenized without BOS, joined by a blank line and cut into pieces of
    seq_len - 1 tokens (the final partial piece dropped); BOS starts every row so that each
    sequence looks like the start of a prompt. `max_tokens` counts non-BOS tokens.
    """
    bos = tokenizer.bos_id
    if bos is None:
        raise FactscopeError("the tokenizer has no BOS token to start each sequence")
    body = seq_len - 1
    sep = tokenizer.encode("\n\n", add_bos=False)
    stream: list[int] = []
    limit = None if max_tokens is None else (max_tokens // body + 1) * body
    for doc in documents:
        stream += tokenizer.encode(doc, add_bos=False) + sep
        if limit is not None and len(stream) >= limit:
            break
    n_rows = len(stream) // body
    if max_tokens is not None:
        n_rows = min(n_rows, max(1, max_tokens // body))
    if n_rows == 0:
        raise FactscopeError(f"the corpus holds fewer than {body} tokens; give more text")
    ids = torch.tensor(stream[: n_rows * body], dtype=torch.int64).view(n_rows, body)
    return torch.cat([torch.full((n_rows, 1), bos, dtype=torch.int64), ids], dim=1)
