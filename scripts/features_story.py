"""The measured story of docs/features.md: a TopK SAE on gemma-3-270m's residual stream
after block 6, trained on CPU, evaluated on held-out text; then its latents on the fact
"Michael Jordan plays the sport of" beside the top neurons.

    python scripts/features_story.py train    # activations (cached), training, metrics
    python scripts/features_story.py finish   # metrics of the last checkpoint (a stopped run)
    python scripts/features_story.py jordan   # the features of the fact, specificity

Writes docs/results/features/{sae.json, jordan.json}; the SAE itself (SAELens folder,
~10 MB) goes to $FACTSCOPE_CACHE/features/runs/story/sae/, not into the repository.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

from factscope.features.activations import ShuffledBatches, cached_activations
from factscope.features.formats import load_saelens, save_saelens
from factscope.features.metrics import evaluate
from factscope.features.sae import SAEConfig
from factscope.features.train import TrainConfig, batch_sites, train_dictionary
from factscope.load import load_model
from factscope.weights.cache import cache_root

MODEL, LAYER, SITE = "gemma-3-270m", 6, "resid"
TRAIN_TOKENS, HELD_OUT_TOKENS = 254_000, 19_685
LATENTS, K, BATCH, STEPS, LR = 2048, 64, 1024, 600, 1e-3
CE_SEQUENCES = 8
OUT = Path(__file__).resolve().parent.parent / "docs" / "results" / "features"
RUN = cache_root() / "features" / "runs" / "story"


def train() -> None:
    lm = load_model(MODEL)
    t0 = time.perf_counter()
    train_store, held_store = cached_activations(
        lm, "installed", LAYER, TRAIN_TOKENS, HELD_OUT_TOKENS
    )
    collect_s = time.perf_counter() - t0
    cfg = SAEConfig(
        d_in=lm.cfg.d_model, d_sae=LATENTS, kind="topk", k=K, layer=LAYER, site=SITE, model=MODEL
    )
    tc = TrainConfig(
        n_steps=STEPS, lr=LR, warmup_steps=20, dead_after_tokens=50_000, checkpoint_every=50
    )
    batches = ShuffledBatches(train_store, batch_sites(cfg), BATCH)
    t0 = time.perf_counter()
    sae, history = train_dictionary(cfg, tc, batches, RUN)
    train_s = time.perf_counter() - t0
    folded = sae.fold_scales()
    save_saelens(folded, RUN / "sae")
    t0 = time.perf_counter()
    metrics = evaluate(folded, held_store, lm.model, held_store.tokens()[:CE_SEQUENCES])
    eval_s = time.perf_counter() - t0
    data = {
        "model": MODEL,
        "layer": LAYER,
        "site": SITE,
        "hook": f"blocks.{LAYER}.resid_post",
        "corpus": train_store.info.corpus,
        "corpus_digest": train_store.info.corpus_digest,
        "train_tokens": train_store.info.n_sequences * (train_store.info.seq_len - 1),
        "held_out_tokens": metrics.n_tokens,
        "sae": cfg.to_dict(),
        "train": tc.__dict__,
        "batch_size": BATCH,
        "epochs": STEPS * BATCH / batches.batches_per_epoch / BATCH,
        "metrics": metrics.to_dict(),
        "history": history,
        "seconds": {
            "train": round(train_s, 1),
            "eval": round(eval_s, 1),
            "collect_this_run": round(collect_s, 1),
        },
        "published": {
            "saelens_gpt2_small_resid_L0_32": {"explained_variance": 0.93, "ce_score": 0.99}
        },
        "threads": torch.get_num_threads(),
    }
    (OUT / "sae.json").write_text(json.dumps(data, indent=1) + "\n")
    print(json.dumps(data["metrics"], indent=1))


def finish() -> None:
    """Evaluate the last checkpoint of a training run stopped early (the machine was shared
    and slowed ~5x during the documented run): the same metrics and files as `train`."""
    from factscope.features.sae import SparseDictionary

    lm = load_model(MODEL)
    train_store, held_store = cached_activations(
        lm, "installed", LAYER, TRAIN_TOKENS, HELD_OUT_TOKENS, progress=False
    )
    state = torch.load(RUN / "checkpoint.pt", weights_only=False)
    cfg = SAEConfig.from_dict(state["settings"]["sae"])
    tc = TrainConfig(**state["settings"]["train"])
    sae = SparseDictionary(cfg)
    sae.load_state_dict(state["sae"])
    folded = sae.fold_scales()
    save_saelens(folded, RUN / "sae")
    t0 = time.perf_counter()
    metrics = evaluate(folded, held_store, lm.model, held_store.tokens()[:CE_SEQUENCES])
    batches_per_epoch = ShuffledBatches(train_store, batch_sites(cfg), BATCH).batches_per_epoch
    data = {
        "model": MODEL,
        "layer": LAYER,
        "site": SITE,
        "hook": f"blocks.{LAYER}.resid_post",
        "corpus": train_store.info.corpus,
        "corpus_digest": train_store.info.corpus_digest,
        "train_tokens": train_store.info.n_sequences * (train_store.info.seq_len - 1),
        "held_out_tokens": metrics.n_tokens,
        "sae": cfg.to_dict(),
        "train": tc.__dict__,
        "batch_size": BATCH,
        "steps_done": state["step"],
        "steps_planned": tc.n_steps,
        "epochs": state["step"] / batches_per_epoch,
        "metrics": metrics.to_dict(),
        "history": state["history"],
        "seconds": {"eval": round(time.perf_counter() - t0, 1)},
        "published": {
            "saelens_gpt2_small_resid_L0_32": {"explained_variance": 0.93, "ce_score": 0.99}
        },
    }
    (OUT / "sae.json").write_text(json.dumps(data, indent=1) + "\n")
    print(json.dumps(data["metrics"], indent=1))


def jordan() -> None:
    from factscope.features.inspect import feature_specificity, inspect_prompt

    lm = load_model(MODEL)
    sae = load_saelens(RUN / "sae")
    train_store, _ = cached_activations(
        lm, "installed", LAYER, TRAIN_TOKENS, HELD_OUT_TOKENS, progress=False
    )
    prompt, subject, answer = "Michael Jordan plays the sport of", "Michael Jordan", " basketball"
    result = inspect_prompt(
        lm, sae, prompt, subject=subject, answer=answer, store=train_store, top=3
    )
    docs = OUT.parent
    neurons_json = json.loads((docs / "read-neurons" / "neurons.json").read_text())
    neurons = [(n["layer"], n["index"]) for n in neurons_json["top"]["subject"][:3]]
    known = json.loads((docs / "study-know" / "athlete_sport.json").read_text())["known_ids"]
    spec = feature_specificity(lm, sae, result, neurons=neurons, known_ids=known)
    data = {
        "prompt": prompt,
        "subject": subject,
        "answer": answer,
        **result.to_dict(),
        "specificity": spec,
    }
    (OUT / "jordan.json").write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    print(json.dumps(spec, indent=1))


if __name__ == "__main__":
    {"train": train, "finish": finish, "jordan": jordan}[
        sys.argv[1] if len(sys.argv) > 1 else "train"
    ]()
