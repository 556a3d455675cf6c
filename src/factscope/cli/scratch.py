"""Build one from scratch: worked examples, a facts corpus, tokenizer and training."""

from __future__ import annotations
