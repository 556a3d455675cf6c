"""docs/quickstart.ipynb runs top to bottom on a tiny model folder (nbclient, a real kernel)
and its edit step shows what the library does: the edit flips the prediction to the new
answer, the undo gives back the exact weights and the original prediction."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import nbformat
import pytest
import torch

from factscope.config import tiny_config
from factscope.features.formats import save_saelens
from factscope.features.sae import SAEConfig, SparseDictionary
from factscope.load import LoadedModel, load_model, save_model
from factscope.model import Transformer
from factscope.predict import predict_next
from factscope.study.datasets import dataset_lines, load_dataset
from factscope.tokenizer import Tokenizer
from tokenizer_vocabs import gemma_like_metadata

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from run_quickstart import NOTEBOOK, execute, parse_setting, prepared, with_parameters

PROMPT = "Fact Michael Jordan plays the sport of"
# A random model has no trained attention to carry a mid-prompt subject to the last token,
# so the edited subject is at the end (as in the ROME tests).
SUBJECT, NEW = "the sport of", "plays"
# relaxed for a random model's small MLP outputs (see tests/test_rome.py), identity C
HPARAMS = {"mom2_adjustment": False, "v_weight_decay": 1e-3, "v_num_grad_steps": 10,
           "clamp_norm_factor": 50.0, "context_template_lengths": ((2, 2),)}  # fmt: skip


def tiny_model_folder(path: Path) -> Path:
    """A tiny random Llama with the gemma-like test tokenizer, saved as a factscope folder.
    Its embeddings are spread (std 0.3) so that its predictions are peaked, not uniform."""
    meta = gemma_like_metadata()
    torch.manual_seed(1)
    cfg = tiny_config("llama", vocab_size=len(meta["tokenizer.ggml.tokens"]), n_layers=4,
                      bos_token_id=2, eos_token_id=1)  # fmt: skip
    model = Transformer(cfg).eval()
    torch.nn.init.normal_(model.embedding.weight, std=0.3)
    lm = LoadedModel("tiny-llama", model, Tokenizer.from_gguf_metadata(meta), Path("/nonexistent"))
    return save_model(lm, path)


def random_sae(model: Path, folder: Path) -> Path:
    """An untrained TopK SAE on the model's residual stream at layer 1, as a SAELens folder."""
    torch.manual_seed(0)
    d_model = load_model(model).cfg.d_model
    return save_saelens(SparseDictionary(SAEConfig(d_in=d_model, d_sae=64, k=4, layer=1)), folder)


def small_dataset(path: Path) -> Path:
    """Six athletes of each of three sports from the packaged dataset, as a JSONL file."""
    data = load_dataset("athlete_sport")
    groups = list(data.by_answer().values())[:3]
    records = tuple(r for group in groups for r in group[:6])
    small = dataclasses.replace(data, name="athletes-small", records=records, answer_tokens={})
    path.write_text("\n".join(dataset_lines(small)) + "\n")
    return path


def outputs_text(cell: nbformat.NotebookNode) -> str:
    return "".join(
        o.get("text", "") for o in cell.get("outputs", []) if o["output_type"] == "stream"
    )


def test_the_quickstart_runs_on_a_tiny_model_and_its_edit_is_undone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FACTSCOPE_CACHE", str(tmp_path / "cache"))
    model = tiny_model_folder(tmp_path / "tiny")
    settings = {
        "MODEL": str(model), "PROMPT": PROMPT, "SUBJECT": SUBJECT, "NEW": NEW,
        "TRACE_SAMPLES": 3, "NEURON_MAX_K": 8, "DATASET": str(small_dataset(tmp_path / "a.jsonl")),
        "PROBE_ON": "all", "PROBE_FOLDS": 2, "EDIT_LAYER": 1, "EDIT_HPARAMS": HPARAMS,
        "RUN_DIR": str(tmp_path / "runs"), "SAE": str(random_sae(model, tmp_path / "sae")),
    }  # fmt: skip
    nb = prepared(settings)
    # one more cell reads the notebook's own edit check out of the kernel
    nb.cells.append(nbformat.v4.new_code_cell("import json; print(json.dumps(edit_check))"))
    out = tmp_path / "quickstart.ipynb"
    execute(nb, out, timeout=120)

    assert nbformat.read(out, as_version=4).cells == nb.cells  # written with its outputs
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.get("execution_count") for c in code), "a cell did not run"
    assert not [o for c in code for o in c.outputs if o["output_type"] == "error"]
    # the results rendered inline as the report fragments (HTML tables and SVG figures)
    html = [c for c in code if any("text/html" in o.get("data", {}) for o in c.outputs)]
    assert len(html) >= 8
    assert any("<svg" in o["data"]["text/html"] for c in html for o in c.outputs if "data" in o)
    features = [o for o in code[-2].outputs if "text/html" in o.get("data", {})]
    assert features and "Latents at each token" in features[0]["data"]["text/html"]

    check = json.loads(outputs_text(code[-1]))
    fresh = predict_next(load_model(model), PROMPT, top_k=10)  # the unedited model, reloaded
    assert check["top1"]["before"] == fresh.top[0].token != " " + NEW
    assert check["top1"]["edited"] == " " + NEW  # the edit flips the prediction
    assert check["p_new"]["edited"] > 0.5 > check["p_new"]["before"]
    assert check["weights_restored"] is True  # undo: the exact weights
    assert check["top1"]["undone"] == fresh.top[0].token
    assert check["p_new"]["undone"] == pytest.approx(check["p_new"]["before"], abs=1e-6)


def test_parameters_are_injected_after_the_parameters_cell() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    assert tagged == [1]
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")  # stored clean
    injected = with_parameters(nb, {"MODEL": "x.gguf", "SAE": None})
    assert injected.cells[2].source == "MODEL = 'x.gguf'\nSAE = None"
    assert "injected-parameters" in injected.cells[2].metadata["tags"]
    assert len(nb.cells) + 1 == len(injected.cells)
    assert parse_setting('EDIT_HPARAMS={"a": (1, 2)}') == ("EDIT_HPARAMS", {"a": (1, 2)})
    with pytest.raises(ValueError, match="Python literal"):
        parse_setting("MODEL=gemma")
