"""Read a Hugging Face folder's `*.safetensors` shards one tensor at a time, in a chosen dtype.

A safetensors file is an 8-byte little-endian header length, a JSON header naming each
tensor's dtype, shape and byte range, then the raw bytes. Two ways to read a tensor:

- stored in the dtype asked for (or a vector: norms and biases, left to the converter):
  a view of the memory-mapped file (safetensors' own `get_tensor`), no copy; its pages
  are read from disk when first used;
- stored in another dtype (a bfloat16 checkpoint loaded as float32): converted from a
  private memory map of the file, whose pages for that tensor are then released
  (`madvise(MADV_DONTNEED)`). Converting through safetensors' map instead keeps every
  source page mapped into the process until the shard is closed: with a bfloat16
  checkpoint read as float32 that is half a copy more at the peak (1.5x the float32
  weights); plain chunked reads cost the same memory but a copy more time.

Peak memory is then about one copy of the weights in the chosen dtype.
"""

from __future__ import annotations

import json
import math
import mmap
import struct
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from torch import Tensor

from factscope.errors import UnsupportedModelError

_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}


class ShardReader:
    """The tensors of some safetensors files, by name: `read(name, dtype)`."""

    def __init__(self, where: dict[str, Path]) -> None:
        self._where = where  # tensor name -> the file holding it
        self._headers: dict[Path, tuple[int, dict[str, Any]]] = {}
        self._mapped: dict[Path, Any] = {}  # file -> safe_open handle, for same-dtype views
        self._private: dict[Path, mmap.mmap] = {}  # file -> map read for conversions

    def read(self, name: str, dtype: torch.dtype) -> Tensor:
        """Tensor `name` in `dtype`: a memory-mapped view when stored so (vectors as
        stored), else converted from the mapped bytes, which are then released."""
        file = self._where[name]
        data_start, header = self._header(file)
        info = header[name]
        stored = _DTYPES.get(info["dtype"])
        if stored is None:
            raise UnsupportedModelError(
                f"{file.name}: tensor {name!r} is stored as {info['dtype']}, which factscope "
                "does not read"
            )
        # vectors (norms, biases: a few kB) as stored, so that a norm's offset is added
        # before the one rounding to `dtype` (weights/convert.py)
        if stored == dtype or not stored.is_floating_point or len(info["shape"]) < 2:
            if file not in self._mapped:
                self._mapped[file] = safe_open(str(file), framework="pt")
            return self._mapped[file].get_tensor(name)
        begin, end = info["data_offsets"]
        numel = math.prod(info["shape"])
        if end - begin != numel * stored.itemsize:
            raise UnsupportedModelError(
                f"{file.name}: tensor {name!r} holds {end - begin} bytes, not the "
                f"{numel * stored.itemsize} its shape {info['shape']} needs; the file is damaged"
            )
        if numel == 0:
            return torch.empty(info["shape"], dtype=dtype)
        source = torch.frombuffer(
            self._private_map(file), dtype=stored, count=numel, offset=data_start + begin
        ).view(info["shape"])
        converted = source.to(dtype)
        del source
        self._drop_pages(file, data_start + begin, data_start + end)
        return converted

    def _private_map(self, file: Path) -> mmap.mmap:
        """A copy-on-write map of `file` (writable as torch.frombuffer wants; never written)."""
        if file not in self._private:
            with open(file, "rb") as f:
                self._private[file] = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
        return self._private[file]

    def _drop_pages(self, file: Path, start: int, end: int) -> None:
        """Release the mapped pages of bytes [start, end) from this process (the data stays
        in the page cache; a later read maps it again)."""
        if hasattr(mmap, "MADV_DONTNEED"):  # Linux and macOS; elsewhere the pages stay
            first = start // mmap.PAGESIZE * mmap.PAGESIZE
            self._private[file].madvise(mmap.MADV_DONTNEED, first, end - first)

    def _header(self, file: Path) -> tuple[int, dict[str, Any]]:
        """(where the data starts, the JSON header) of one file, read once."""
        if file not in self._headers:
            with open(file, "rb") as f:
                (length,) = struct.unpack("<Q", f.read(8))
                header = json.loads(f.read(length))
            self._headers[file] = (8 + length, header)
        return self._headers[file]
