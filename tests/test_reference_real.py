"""Our forward pass on the real checkpoints against Hugging Face transformers.

transformers loads the same GGUF file (it dequantizes with the `gguf` package), so both
sides see identical weights: any difference is in the forward pass. Loading Gemma this way
takes about two minutes, so each reference model is loaded once per session.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from factscope.load import LoadedModel, load_model
from factscope.registry import MODELS
from reference_models import relative_error

pytestmark = [pytest.mark.realmodel, pytest.mark.reference]

PROMPTS = [
    "Michael Jordan plays the sport of",
    "Fact: Tiger Woods plays the sport of golf\nFact: Serena Williams plays the sport of",
    "The Eiffel Tower is located in the city of",
    "The capital of Japan is",
    "def fibonacci(n):\n    if n < 2:\n        return n\n    return",
    "1, 1, 2, 3, 5, 8, 13,",
    "Le chat est assis sur le",
    "東京は日本の首都です。",
    "   leading spaces and    runs of spaces",
    "Emoji time 🎉🎉 and accents: café, naïve, Ångström.",
    "import torch\nx = torch.zeros(3, 4)\nprint(x.",
    "Q: What is 12 times 12?\nA:",
    "The quick brown fox jumps over the lazy",
    "Water boils at a temperature of 100 degrees",
    "In 1969, Neil Armstrong became the first person to walk on the",
    "Barack Obama was born in the state of",
    "The chemical symbol for gold is",
    "SELECT name FROM users WHERE",
    "Roses are red, violets are",
    "Shakespeare wrote the play Romeo and",
    "\n\n\tTabs\tand\nnewlines\n",
    "A",
]


def _hf_model(path: Path) -> torch.nn.Module:
    transformers = pytest.importorskip("transformers")
    return transformers.AutoModelForCausalLM.from_pretrained(
        str(path.parent), gguf_file=path.name, dtype=torch.float32
    ).eval()


@pytest.fixture(scope="module", params=["smollm2-135m", "gemma-3-270m"])
def pair(request: pytest.FixtureRequest) -> Iterator[tuple[LoadedModel, torch.nn.Module]]:
    entry = MODELS[request.param]
    if entry.installed_path() is None:
        pytest.skip(f"{request.param} is not installed")
    ours = load_model(request.param)
    ref = _hf_model(ours.source)
    yield ours, ref
    del ref


def test_logits_match_transformers(pair: tuple[LoadedModel, torch.nn.Module]) -> None:
    ours, ref = pair
    assert len(PROMPTS) >= 20
    worst = 0.0
    for prompt in PROMPTS:
        tokens = ours.encode(prompt)
        with torch.no_grad():
            expected = ref(tokens).logits
            got = ours.model(tokens)
        err = relative_error(got, expected)
        worst = max(worst, err)
        assert err <= 1e-4, (prompt, err)
        assert torch.equal(got.argmax(-1), expected.argmax(-1)), prompt
    print(f"{ours.name}: worst relative error {worst:.2e} over {len(PROMPTS)} prompts")


def test_predicts_basketball() -> None:
    if MODELS["gemma-3-270m"].installed_path() is None:
        pytest.skip("gemma-3-270m is not installed")
    lm = load_model("gemma-3-270m")
    with torch.no_grad():
        logits = lm.model(lm.encode("Michael Jordan plays the sport of"), logits_at="last")
    assert lm.tokenizer.decode([int(logits[0, -1].argmax())]) == " basketball"


def test_hf_folder_of_the_same_model_matches(
    pair: tuple[LoadedModel, torch.nn.Module], tmp_path: Path
) -> None:
    """The Hugging Face folder path on a real model: the weights and config transformers
    loaded from the GGUF, written as a Hugging Face folder (config.json, safetensors,
    tokenizer files; `save_pretrained` refuses GGUF-loaded models), loaded by us."""
    transformers = pytest.importorskip("transformers")
    from safetensors.torch import save_file

    ours, ref = pair
    config = ref.config.to_dict()
    config.pop("quantization_config", None)
    (tmp_path / "config.json").write_text(json.dumps(config))
    state = {k: v.contiguous() for k, v in ref.state_dict().items()}
    if config.get("tie_word_embeddings", False):
        state.pop("lm_head.weight", None)
    save_file(state, tmp_path / "model.safetensors")
    path = ours.source
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    tokenizer.save_pretrained(tmp_path)
    folder = load_model(tmp_path)
    assert folder.cfg == ours.cfg
    for prompt in PROMPTS[:6]:
        assert folder.tokenizer.encode(prompt) == ours.tokenizer.encode(prompt), prompt
        tokens = ours.encode(prompt)
        with torch.no_grad():
            assert relative_error(folder.model(tokens), ours.model(tokens)) <= 1e-6, prompt
