"""A lean reader of GGUF files: header, metadata and tensor table over a memory map.

The `gguf` package's `GGUFReader` builds several numpy objects per metadata array element,
which takes about 28 s for the 262,144-entry vocabulary of Gemma 3's file. This reader
walks the same layout with `struct` over an `mmap` and turns numeric arrays into single
numpy arrays, so reading the Gemma file's metadata takes a fraction of a second. Tensor
data is never copied until asked for: `GGUFFile.raw(name)` is a read-only view of the map.

Layout (little-endian, versions 2 and 3):

    magic "GGUF" | version u32 | n_tensors u64 | n_kv u64
    n_kv x (key: string, value_type u32, value)
    n_tensors x (name: string, n_dims u32, dims n_dims x u64, ggml_type u32, offset u64)
    padding to `general.alignment` (default 32) | tensor data

where a string is a u64 byte length and UTF-8 bytes, and an array value is an element type
u32, a count u64 and the elements. Dims are innermost first (ggml's `ne`); `TensorInfo.shape`
reverses them into torch order.

Every malformed input (bad magic, unknown version or value type, truncation, sizes beyond
the end of the file, invalid UTF-8) raises `GGUFError` with the file name and what is
wrong; counts are checked against the bytes left before anything is allocated, so a garbled
file cannot make the reader loop or allocate without bound.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from factscope.errors import GGUFError
from factscope.weights.quants import (
    BLOCK_SIZES,
    dequantize,
    is_supported,
    type_name,
    unsupported_type_message,
)

MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32
MAX_DIMS = 4  # ggml's GGML_MAX_DIMS
MAX_NESTING = 8  # arrays of arrays deeper than this are treated as corrupt

# GGUF metadata value types -> (struct format, numpy dtype) for the fixed-size ones.
_SCALAR_TYPES: dict[int, tuple[str, np.dtype[Any]]] = {
    0: ("<B", np.dtype("<u1")),
    1: ("<b", np.dtype("<i1")),
    2: ("<H", np.dtype("<u2")),
    3: ("<h", np.dtype("<i2")),
    4: ("<I", np.dtype("<u4")),
    5: ("<i", np.dtype("<i4")),
    6: ("<f", np.dtype("<f4")),
    7: ("<?", np.dtype("?")),
    10: ("<Q", np.dtype("<u8")),
    11: ("<q", np.dtype("<i8")),
    12: ("<d", np.dtype("<f8")),
}
_STRING, _ARRAY = 8, 9


@dataclass(frozen=True)
class TensorInfo:
    """One entry of the tensor table."""

    name: str
    shape: tuple[int, ...]  # torch order: outermost dimension first
    ggml_type: int
    offset: int  # absolute byte offset of the data in the file
    n_bytes: int

    @property
    def type_name(self) -> str:
        return type_name(self.ggml_type)


class GGUFFile:
    """A parsed GGUF file: `metadata`, `tensors`, and tensor data on demand.

    Metadata values are Python scalars and strings; arrays of strings are `list[str]`;
    numeric arrays are numpy arrays; nested arrays are lists of those.
    """

    def __init__(
        self,
        path: Path,
        buffer: mmap.mmap | bytes,
        version: int,
        metadata: dict[str, Any],
        tensors: dict[str, TensorInfo],
        data_offset: int,
    ) -> None:
        self.path = path
        self.version = version
        self.metadata = metadata
        self.tensors = tensors
        self.data_offset = data_offset
        self._buffer = buffer

    def raw(self, name: str) -> np.ndarray:
        """The tensor's bytes, a read-only uint8 view of the file (no copy)."""
        info = self._info(name)
        return np.frombuffer(self._buffer, dtype=np.uint8, count=info.n_bytes, offset=info.offset)

    def tensor(self, name: str) -> Tensor:
        """The tensor decoded to a new float32 torch tensor of `info.shape`."""
        info = self._info(name)
        if not is_supported(info.ggml_type):
            raise GGUFError(f"{self.path.name}: {name}: {unsupported_type_message(info.ggml_type)}")
        out = dequantize(self.raw(name), info.ggml_type, info.shape)
        if not torch.isfinite(out.sum()):  # a NaN or inf anywhere makes the sum non-finite
            raise GGUFError(
                f"{self.path.name}: tensor {name} holds NaN or infinite values; "
                "the file is corrupt, re-create it"
            )
        return out

    def _info(self, name: str) -> TensorInfo:
        try:
            return self.tensors[name]
        except KeyError:
            raise GGUFError(f"{self.path.name} has no tensor named {name!r}") from None


def read_gguf(path: str | Path) -> GGUFFile:
    """Parse the header, metadata and tensor table of the GGUF file at `path`."""
    path = Path(path)
    if not path.is_file():
        raise GGUFError(f"no GGUF file at {path}; check the path")
    with path.open("rb") as f:
        size = path.stat().st_size
        if size < 4:
            raise GGUFError(f"{path.name} is not a GGUF file (it is only {size} bytes)")
        buffer: mmap.mmap | bytes = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    return parse_gguf(buffer, path)


def parse_gguf(buffer: mmap.mmap | bytes, path: Path) -> GGUFFile:
    """Parse GGUF bytes already in memory (or mapped); `path` is used in messages."""
    return _Parser(buffer, path).parse()


class _Parser:
    def __init__(self, buffer: mmap.mmap | bytes, path: Path) -> None:
        self.buf = buffer
        self.size = len(buffer)
        self.path = path
        self.pos = 0

    def fail(self, what: str) -> GGUFError:
        return GGUFError(f"{self.path.name} is not a valid GGUF file: {what}")

    def need(self, n: int, what: str) -> None:
        if n < 0 or self.pos + n > self.size:
            raise self.fail(f"truncated while reading {what} at byte {self.pos}")

    def unpack(self, fmt: str, n: int, what: str) -> Any:
        self.need(n, what)
        value = struct.unpack_from(fmt, self.buf, self.pos)[0]
        self.pos += n
        return value

    def u32(self, what: str) -> int:
        return int(self.unpack("<I", 4, what))

    def u64(self, what: str) -> int:
        return int(self.unpack("<Q", 8, what))

    def string(self, what: str) -> str:
        n = self.u64(f"the length of {what}")
        self.need(n, what)
        start = self.pos
        self.pos += n
        try:
            return bytes(self.buf[start : self.pos]).decode("utf-8")
        except UnicodeDecodeError:
            raise self.fail(f"{what} at byte {start} is not valid UTF-8") from None

    def parse(self) -> GGUFFile:
        magic = bytes(self.buf[:4])
        if magic != MAGIC:
            raise GGUFError(
                f"{self.path.name} is not a GGUF file (its magic bytes are {magic!r}, not b'GGUF')"
            )
        self.pos = 4
        version = self.u32("the version")
        if version not in SUPPORTED_VERSIONS:
            hint = " (a big-endian file?)" if version > 0xFFFF else ""
            raise GGUFError(
                f"{self.path.name}: GGUF version {version}{hint} is not supported "
                f"(supported: {', '.join(map(str, SUPPORTED_VERSIONS))}); re-convert the model"
            )
        n_tensors = self.u64("the tensor count")
        n_kv = self.u64("the metadata count")
        # every key-value pair takes at least 8 + 4 bytes, every tensor entry 8 + 4 + 4 + 8
        if n_kv * 12 + n_tensors * 24 > self.size - self.pos:
            raise self.fail(f"header claims {n_kv} metadata entries and {n_tensors} tensors")

        metadata: dict[str, Any] = {}
        for _ in range(n_kv):
            key = self.string("a metadata key")
            value_type = self.u32(f"the type of {key}")
            metadata[key] = self.value(value_type, key, depth=0)

        alignment = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
        if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
            raise self.fail(f"general.alignment is {alignment!r}, not a power of two")

        entries = [self.tensor_entry() for _ in range(n_tensors)]
        data_offset = -(-self.pos // alignment) * alignment
        tensors: dict[str, TensorInfo] = {}
        for name, shape, ggml_type, rel_offset in entries:
            if name in tensors:
                raise self.fail(f"tensor {name} is listed twice")
            if rel_offset % alignment:
                raise self.fail(f"tensor {name}'s offset {rel_offset} is not aligned")
            values_per_block, bytes_per_block = BLOCK_SIZES[ggml_type]
            n_values = int(np.prod(shape, dtype=np.uint64)) if shape else 1
            if shape and shape[-1] % values_per_block:
                raise self.fail(
                    f"tensor {name} ({type_name(ggml_type)}) has rows of {shape[-1]} values, "
                    f"not a multiple of its block size {values_per_block}"
                )
            n_bytes = n_values // values_per_block * bytes_per_block
            offset = data_offset + rel_offset
            if offset + n_bytes > self.size:
                raise self.fail(
                    f"tensor {name} ends at byte {offset + n_bytes}, past the end of the "
                    f"file ({self.size} bytes): the file is truncated"
                )
            tensors[name] = TensorInfo(name, shape, ggml_type, offset, n_bytes)
        return GGUFFile(self.path, self.buf, version, metadata, tensors, data_offset)

    def tensor_entry(self) -> tuple[str, tuple[int, ...], int, int]:
        name = self.string("a tensor name")
        n_dims = self.u32(f"the rank of {name}")
        if n_dims > MAX_DIMS:
            raise self.fail(f"tensor {name} has {n_dims} dimensions (at most {MAX_DIMS})")
        dims = [self.u64(f"the shape of {name}") for _ in range(n_dims)]
        if any(d == 0 or d >= 1 << 40 for d in dims):
            raise self.fail(f"tensor {name} has an impossible shape {dims}")
        ggml_type = self.u32(f"the type of {name}")
        if ggml_type not in BLOCK_SIZES:
            raise GGUFError(
                f"{self.path.name}: tensor {name} has {type_name(ggml_type)}, which ggml does "
                "not define; the file is corrupt or newer than factscope"
            )
        offset = self.u64(f"the offset of {name}")
        return name, tuple(reversed(dims)), ggml_type, offset

    def value(self, value_type: int, key: str, depth: int) -> Any:
        scalar = _SCALAR_TYPES.get(value_type)
        if scalar is not None:
            fmt, dtype = scalar
            value = self.unpack(fmt, dtype.itemsize, key)
            return bool(value) if value_type == 7 else value
        if value_type == _STRING:
            return self.string(key)
        if value_type == _ARRAY:
            if depth >= MAX_NESTING:
                raise self.fail(f"{key} nests arrays more than {MAX_NESTING} deep")
            element_type = self.u32(f"the element type of {key}")
            count = self.u64(f"the length of {key}")
            scalar = _SCALAR_TYPES.get(element_type)
            if scalar is not None:
                dtype = scalar[1]
                self.need(count * dtype.itemsize, key)
                array = np.frombuffer(self.buf, dtype=dtype, count=count, offset=self.pos)
                self.pos += count * dtype.itemsize
                return array.astype(dtype.newbyteorder("="), copy=True)
            if element_type == _STRING:
                self.need(count * 8, key)  # each string has at least its 8-byte length
                return self.strings(count, key)
            if element_type == _ARRAY:
                self.need(count * 12, key)
                return [self.value(_ARRAY, key, depth + 1) for _ in range(count)]
            raise self.fail(f"{key} is an array of unknown value type {element_type}")
        raise self.fail(f"{key} has unknown value type {value_type}")

    def strings(self, count: int, key: str) -> list[str]:
        """`count` strings in a row: the hot loop for vocabularies (262,144 for Gemma)."""
        buf, size, pos = self.buf, self.size, self.pos
        read_length = struct.Struct("<Q").unpack_from
        out: list[str] = []
        append = out.append
        try:
            for _ in range(count):
                if pos + 8 > size:
                    raise IndexError
                (n,) = read_length(buf, pos)
                pos += 8
                if pos + n > size:
                    raise IndexError
                append(buf[pos : pos + n].decode("utf-8"))
                pos += n
        except IndexError:
            self.pos = pos
            raise self.fail(f"truncated while reading {key} at byte {pos}") from None
        except UnicodeDecodeError:
            raise self.fail(f"an element of {key} at byte {pos} is not valid UTF-8") from None
        self.pos = pos
        return out
