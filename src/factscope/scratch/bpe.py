"""Train a byte-level BPE tokenizer on a corpus and wrap it as factscope's `Tokenizer`.

Byte-level BPE (GPT-2's scheme) starts from the 256 bytes, so any text can be encoded; it
then repeatedly merges the most frequent adjacent pair into a new token until the vocabulary
has `vocab_size` entries. One special token, `<|endoftext|>`, separates documents and also
serves as the beginning-of-sequence token (as in GPT-2). The result is the same
`Tokenizer` class the real models use, so it saves, loads, finds subject spans and spells
tokens the same way.
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer as Backend
from tokenizers import decoders, models, pre_tokenizers, trainers

from factscope.errors import FactscopeError
from factscope.tokenizer import Tokenizer

END_OF_TEXT = "<|endoftext|>"
MIN_VOCAB = 256 + 1  # every byte plus <|endoftext|>


def train_bpe(texts: Iterable[str], vocab_size: int) -> Tokenizer:
    """A byte-level BPE of at most `vocab_size` tokens learned from `texts`.

    Token 0 is `<|endoftext|>` (BOS and EOS); `Tokenizer.encode` puts it first by default,
    so every document and every prompt starts the way the training data did.
    """
    if vocab_size < MIN_VOCAB:
        raise FactscopeError(
            f"vocabulary of {vocab_size} is too small: a byte-level BPE needs at least "
            f"{MIN_VOCAB} (256 bytes + <|endoftext|>); raise --vocab-size"
        )
    backend = Backend(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[END_OF_TEXT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(texts, trainer=trainer)
    eot = backend.token_to_id(END_OF_TEXT)
    return Tokenizer(backend, bos_id=eot, eos_id=eot, add_bos_default=True)
