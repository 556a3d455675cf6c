"""A capability is left out only when it is not there: its own module missing, or an
optional library it needs not installed. An import error inside factscope is raised."""

from __future__ import annotations

from pathlib import Path

import pytest

from factscope.story.capabilities import CAPABILITIES, Capability


def _module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, source: str) -> str:
    (tmp_path / f"{name}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def test_every_registered_capability_is_available() -> None:
    assert [name for name, c in CAPABILITIES.items() if not c.available()] == []


def test_a_capability_not_landed_is_absent() -> None:
    assert not Capability("ghost", "factscope.no_such_capability", ("f",), "").available()


def test_a_missing_optional_library_hides_the_capability(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = _module(tmp_path, monkeypatch, "needs_a_library", "import no_such_library_xyz\n")
    assert not Capability("optional", name, ("f",), "").available()


@pytest.mark.parametrize(
    "source",
    ["from factscope.no_such_module import f\n", "from factscope.errors import NoSuchName\n"],
)
def test_an_import_bug_inside_factscope_is_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    name = _module(tmp_path, monkeypatch, f"broken_{abs(hash(source))}", source)
    with pytest.raises(ImportError):
        Capability("broken", name, ("f",), "").available()
