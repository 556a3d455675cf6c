"""Locate where a model stores a fact: causal tracing, activation patching, logit lens."""
