"""`factscope train`: the loss falls, a stopped-and-resumed run is bit-identical to an
uninterrupted one, the saved model reloads with equal logits, and runs that cannot train
are refused with one line."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from factscope.config import model_config
from factscope.errors import FactscopeError
from factscope.load import load_model
from factscope.model import Transformer
from factscope.scratch.bpe import train_bpe
from factscope.scratch.corpus import CorpusSettings, make_corpus
from factscope.scratch.train import (
    PackedData,
    RunSpec,
    TrainingSettings,
    lr_factor,
    read_training_texts,
    train,
)
from factscope.tokenizer import Tokenizer

TORCH_THREADS = torch.get_num_threads()


@pytest.fixture(scope="module")
def corpus() -> tuple[list[str], list[str], Tokenizer]:
    made = make_corpus(CorpusSettings(people=40, regime="multi", seed=0))
    return made.biographies, made.eval_biographies, train_bpe(made.biographies, 500)


def _spec(
    out: Path, corpus: tuple[list[str], list[str], Tokenizer], **train: int | float
) -> RunSpec:
    docs, eval_docs, tokenizer = corpus
    cfg = model_config("tiny", vocab_size=512, context_length=64, mlp="swiglu")
    defaults = dict(
        steps=12, batch_size=4, seq_len=32, lr=3e-3, warmup_steps=3, eval_every=4,
        checkpoint_every=5, seed=0,
    )  # fmt: skip
    return RunSpec(out, cfg, TrainingSettings(**{**defaults, **train}), tokenizer, docs, eval_docs)


def test_a_seconds_long_run_lowers_the_loss(tmp_path: Path, corpus) -> None:  # type: ignore[no-untyped-def]
    result = train(_spec(tmp_path / "run", corpus, steps=60, batch_size=8), progress=False)
    # from about ln(512) = 6.2 nats; a stated margin of 1 nat in 60 steps
    assert result.first_loss == pytest.approx(math.log(512), abs=0.3)
    assert result.last_loss < result.first_loss - 1.0
    assert result.eval_loss is not None and result.eval_loss < result.first_loss - 1.0
    assert (tmp_path / "run" / "model" / "factscope.json").is_file()
    assert len(result.history.eval_loss) == 15


def test_stop_and_resume_is_bit_identical(tmp_path: Path, corpus) -> None:  # type: ignore[no-untyped-def]
    torch.set_num_threads(1)  # the same reduction order in both runs
    try:
        straight = train(_spec(tmp_path / "a", corpus), progress=False)
        stopped = train(_spec(tmp_path / "b", corpus), stop_after=7, progress=False)
        assert stopped.steps_done == 7 and stopped.model_dir is None
        resumed = train(_spec(tmp_path / "b", corpus), resume=True, progress=False)
    finally:
        torch.set_num_threads(TORCH_THREADS)
    assert resumed.steps_done == 12
    a = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=False)
    b = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
    for key, state in a["optimizer"]["state"].items():
        for field in ("exp_avg", "exp_avg_sq"):
            assert torch.equal(state[field], b["optimizer"]["state"][key][field])
    assert a["scheduler"] == b["scheduler"]
    assert straight.history.loss == resumed.history.loss
    assert straight.history.eval_loss == resumed.history.eval_loss


def test_trained_model_reloads_with_equal_logits(tmp_path: Path, corpus) -> None:  # type: ignore[no-untyped-def]
    result = train(_spec(tmp_path / "run", corpus), progress=False)
    assert result.model_dir is not None
    saved = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    spec = _spec(tmp_path / "unused", corpus)
    trained = Transformer(spec.model_cfg)
    trained.load_state_dict(saved["model"])
    trained.eval()
    lm = load_model(result.model_dir)
    tokens = lm.encode(corpus[0][0][:60])
    with torch.no_grad():
        assert torch.equal(lm.model(tokens), trained(tokens))
    assert lm.tokenizer.encode(corpus[0][0]) == corpus[2].encode(corpus[0][0])


def test_fine_tuning_starts_from_the_given_weights(tmp_path: Path, corpus) -> None:  # type: ignore[no-untyped-def]
    base = train(_spec(tmp_path / "base", corpus), progress=False)
    lm = load_model(base.model_dir)  # type: ignore[arg-type]
    spec = _spec(tmp_path / "ft", corpus, steps=4, lr=1e-9, warmup_steps=1)
    spec.init_state = lm.model.state_dict()
    tuned = train(spec, progress=False)
    # with a negligible learning rate the first loss is the base model's on that batch
    x, y = PackedData([corpus[2].encode(d) for d in corpus[0]], 32, 4, 0, shuffle=True).batch(0)
    with torch.no_grad():
        loss = torch.nn.functional.cross_entropy(lm.model(x).flatten(0, 1), y.flatten())
    assert tuned.first_loss == pytest.approx(float(loss), abs=1e-5)


def test_data_order_is_a_function_of_the_step(corpus) -> None:  # type: ignore[no-untyped-def]
    docs = [corpus[2].encode(d) for d in corpus[0]]
    a, b = PackedData(docs, 32, 4, 0, True), PackedData(docs, 32, 4, 0, True)
    later = a.steps_per_epoch + 1
    for step in (0, 3, later, 1):
        assert torch.equal(a.batch(step)[0], b.batch(step)[0])
    x, y = a.batch(2)
    assert torch.equal(x[:, 1:], y[:, :-1])  # targets are the inputs shifted by one
    assert not torch.equal(a.batch(0)[0], a.batch(a.steps_per_epoch)[0])  # reshuffled


def test_warmup_then_cosine() -> None:
    f = lr_factor(TrainingSettings(steps=110, warmup_steps=10, min_lr_ratio=0.1))
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(60) == pytest.approx(0.55) and f(110) == pytest.approx(0.1)


def test_plain_relu_and_gated_mlps_have_equal_mlp_weights() -> None:
    gated = model_config("small", 1024, 128, "swiglu")
    plain = model_config("small", 1024, 128, "relu")
    assert not plain.gated_mlp and plain.activation == "relu"
    assert gated.gated_mlp and gated.activation == "silu"
    assert abs(3 * gated.d_mlp - 2 * plain.d_mlp) <= 3 * 16  # both about 8 * d_model^2


# ---- runs that cannot train ----------------------------------------------------------------


def test_empty_data_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(FactscopeError, match="no documents"):
        read_training_texts(tmp_path / "empty.txt")


def test_too_little_data_for_one_batch(tmp_path: Path, corpus) -> None:  # type: ignore[no-untyped-def]
    spec = _spec(tmp_path / "r", corpus)
    spec.train_docs = ["one short line"]
    with pytest.raises(FactscopeError, match="too few for one batch"):
        train(spec, progress=False)


def test_context_longer_than_configured(tmp_path: Path, corpus) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(FactscopeError, match="longer than the model's context of 64"):
        train(_spec(tmp_path / "r", corpus, seq_len=65), progress=False)


def test_existing_run_needs_resume_or_force(tmp_path: Path, corpus) -> None:  # type: ignore[no-untyped-def]
    train(_spec(tmp_path / "r", corpus, steps=4, warmup_steps=1), progress=False)
    with pytest.raises(FactscopeError, match="--resume to continue it or --force"):
        train(_spec(tmp_path / "r", corpus, steps=4, warmup_steps=1), progress=False)
    again = train(
        _spec(tmp_path / "r", corpus, steps=4, warmup_steps=1), force=True, progress=False
    )
    assert again.steps_done == 4
    with pytest.raises(FactscopeError, match=r"no checkpoint\.pt"):
        train(_spec(tmp_path / "new", corpus), resume=True, progress=False)


def test_checkpoint_from_another_config_is_refused(tmp_path: Path, corpus) -> None:  # type: ignore[no-untyped-def]
    train(_spec(tmp_path / "r", corpus), stop_after=3, progress=False)
    other = _spec(tmp_path / "r", corpus)
    other.model_cfg = model_config("tiny", vocab_size=512, context_length=64, mlp="relu")
    with pytest.raises(FactscopeError, match=r"from another config: model_config\.activation"):
        train(other, resume=True, progress=False)
    with pytest.raises(FactscopeError, match=r"train_config\.lr"):
        train(_spec(tmp_path / "r", corpus, lr=1e-2), resume=True, progress=False)
