"""Build one from scratch: the article's first network with its numbers, one token's trip
through a real block, a corpus of made-up facts, a tokenizer and a training loop for a small
model of the same Transformer class, and the knowledge check that asks what it learned.

    explain.py    the leaf/flower network (forward, softmax, gradient descent); explain_layer
    corpus.py     fictional people, biographies (two regimes), question/answer pairs
    bpe.py        byte-level BPE trained on a corpus, wrapped as factscope's Tokenizer
    train.py      configs, packing, AdamW + warm-up + cosine, checkpoints with exact resume
    knowledge.py  attribute-question accuracy for trained and held-out people
"""
