"""A user cache of converted checkpoints, keyed by the source file's content.

The first load of a GGUF file parses, dequantizes and converts it (seconds); the float
weights, the config and the tokenizer are then saved under the cache directory, so every
later load memory-maps them. The key is the SHA-256 of the source file, remembered per
(path, size, mtime) so it is computed once per file, not once per load.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import platformdirs

# Bump when the internal layout or the cache format changes: old entries are then ignored.
CACHE_FORMAT = 4  # 4: ModelConfig gained the fields of the families (older code rejects them)


def cache_root() -> Path:
    """$FACTSCOPE_CACHE, or the platform's user cache dir (~/.cache/factscope on Linux)."""
    env = os.environ.get("FACTSCOPE_CACHE")
    return Path(env) if env else Path(platformdirs.user_cache_dir("factscope"))


def content_key(path: Path) -> str:
    """SHA-256 of the file's bytes, memoised by (resolved path, size, mtime)."""
    path = path.resolve()
    stat = path.stat()
    index_path = cache_root() / "content-keys.json"
    stamp = f"{path}|{stat.st_size}|{stat.st_mtime_ns}"
    try:
        index: dict[str, str] = json.loads(index_path.read_text())
    except (OSError, ValueError):
        index = {}
    if stamp in index:
        return index[stamp]
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 24):
            digest.update(chunk)
    index[stamp] = digest.hexdigest()
    _write_atomic(index_path, json.dumps(index, indent=1))
    return index[stamp]


def entry_dir(key: str) -> Path:
    """Where the converted checkpoint with this content key lives."""
    return cache_root() / "models" / f"v{CACHE_FORMAT}-{key[:24]}"


def is_complete(entry: Path) -> bool:
    return (entry / "complete").exists()


def publish(build: Path, entry: Path) -> None:
    """Move a fully written temporary entry into place (atomic; a racing writer wins)."""
    (build / "complete").write_text("ok\n")
    entry.parent.mkdir(parents=True, exist_ok=True)
    try:
        build.rename(entry)
    except OSError:  # another process published first: keep theirs
        shutil.rmtree(build, ignore_errors=True)


def new_build_dir() -> Path:
    """A fresh temporary directory on the cache's file system, for `publish`."""
    root = cache_root() / "models"
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=".build-", dir=root))


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(text)
    tmp.replace(path)
