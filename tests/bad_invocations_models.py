"""Bad model folders: each names its problem (and the families factscope reads) in one line.

`prepare` writes the folders once (a tiny Llama 3 folder, then one thing broken in each);
test_cli_errors fills `{name}` in the rows with their paths.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from safetensors.torch import load_file, save_file

from reference_models import tiny_family_model
from tiny_checkpoints import write_tiny_hf_folder

PREDICT = ["predict", "w3 w5", "--model"]

ROWS: list[tuple[list[str], str]] = [
    ([*PREDICT, "{model_type}"], "model_type 'mamba' is not supported; factscope reads llama"),
    ([*PREDICT, "{rope_type}"], "RoPE scaling 'yarn' is not supported (supported: default"),
    ([*PREDICT, "{missing_shard}"], "shard model-00002-of-00002.safetensors listed in"),
    ([*PREDICT, "{wrong_shape}"], "has shape (32, 48), but the model's config implies (48, 32)"),
    ([*PREDICT, "{contradiction}"], "the config and the weights disagree"),
    ([*PREDICT, "{inconsistent}"], "config.json is inconsistent: n_heads=4 must be a multiple"),
    ([*PREDICT, "{missing_tensor}"], "'model.layers.1.mlp.up_proj.weight' is missing"),
    ([*PREDICT, "{bad_json}"], "config.json is not readable JSON"),
]


def prepare(tmp: Path) -> dict[str, str]:
    good = tmp / "good-llama"
    write_tiny_hf_folder(good, tiny_family_model("llama3"))
    folders: dict[str, str] = {}

    def variant(name: str) -> Path:
        folder = tmp / name
        shutil.copytree(good, folder)
        folders[name] = str(folder)
        return folder

    def edit_config(folder: Path, **changes: object) -> None:
        config = json.loads((folder / "config.json").read_text())
        config.update(changes)
        (folder / "config.json").write_text(json.dumps(config))

    edit_config(variant("model_type"), model_type="mamba")
    edit_config(variant("rope_type"), rope_parameters={"rope_type": "yarn", "factor": 4.0})
    edit_config(variant("contradiction"), intermediate_size=64)
    edit_config(variant("inconsistent"), num_key_value_heads=3)
    (variant("bad_json") / "config.json").write_text("{not json")
    shards = variant("missing_shard")
    weights = load_file(shards / "model.safetensors")
    weight_map = {n: "model-00001-of-00002.safetensors" for n in weights}
    weight_map["lm_head.weight"] = "model-00002-of-00002.safetensors"
    (shards / "model.safetensors").rename(shards / "model-00001-of-00002.safetensors")
    (shards / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    for name, change in (("wrong_shape", "transpose"), ("missing_tensor", "drop")):
        folder = variant(name)
        weights = load_file(folder / "model.safetensors")
        key = f"model.layers.{1 if change == 'drop' else 0}.mlp.up_proj.weight"
        if change == "drop":
            del weights[key]
        else:
            weights[key] = weights[key].t().contiguous()
        save_file(weights, folder / "model.safetensors")
    return folders
