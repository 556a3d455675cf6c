"""Facts at scale: datasets of facts, what a model knows, probes and averaged traces."""
