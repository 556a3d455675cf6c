"""Features out of superposition: sparse autoencoders and transcoders trained on a CPU.

corpus.py       the text activations are collected on (packed into sequences)
activations.py  run the model only up to layer L; shards on disk; shuffled batches
sae.py          the sparse dictionary (TopK, JumpReLU, ReLU; SAE or transcoder), losses
train.py        resumable training with checkpoints
metrics.py      L0, explained variance, CE loss recovered, dead and dense latents
formats.py      SAELens folders and Gemma Scope parameter files, bit-exact
inspect.py      which latents fire on a prompt; dashboards, attribution, interventions
"""
