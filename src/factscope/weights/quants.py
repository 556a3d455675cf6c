"""GGML tensor types and their dequantization to float32, in vectorised torch.

A quantized GGML tensor is a row-major sequence of fixed-size *blocks*; each block packs
`values_per_block` numbers into `bytes_per_block` bytes: one or two float16 scales and
small integers (4, 5, 6 or 8 bits) that the scales turn back into floats. Rows always hold
a whole number of blocks, so dequantizing a tensor means dequantizing its flat sequence of
blocks and reshaping.

Each `_dequantize_*` function below takes every block of a tensor at once as a
`(n_blocks, bytes_per_block)` uint8 tensor and writes `(n_blocks, values_per_block)` floats
into `out`; the bytes are unpacked with slicing, shifts and masks, never a loop per block.
The arithmetic (integer offsets first, then one float32 multiply and at most one add per
value, in that order) is the reference implementation's, so results are bit-identical to
`gguf.quants.dequantize` (and to ggml's C code).

Block layouts follow ggml's `ggml-common.h`; "f16" fields are little-endian IEEE half floats.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from enum import IntEnum
from math import prod

import numpy as np
import torch
from torch import Tensor

from factscope.errors import GGUFError


class GGMLType(IntEnum):
    """Tensor element types of ggml (the values of `GGMLQuantizationType` in the gguf spec)."""

    F32 = 0
    F16 = 1
    Q4_0 = 2
    Q4_1 = 3
    Q5_0 = 6
    Q5_1 = 7
    Q8_0 = 8
    Q8_1 = 9
    Q2_K = 10
    Q3_K = 11
    Q4_K = 12
    Q5_K = 13
    Q6_K = 14
    Q8_K = 15
    IQ2_XXS = 16
    IQ2_XS = 17
    IQ3_XXS = 18
    IQ1_S = 19
    IQ4_NL = 20
    IQ3_S = 21
    IQ2_S = 22
    IQ4_XS = 23
    I8 = 24
    I16 = 25
    I32 = 26
    I64 = 27
    F64 = 28
    IQ1_M = 29
    BF16 = 30
    TQ1_0 = 34
    TQ2_0 = 35
    MXFP4 = 39
    NVFP4 = 40
    Q1_0 = 41


QK_K = 256  # values per "K-quant" super-block

# (values_per_block, bytes_per_block) of every type ggml knows, so a file's tensor table can
# be sized even for types factscope cannot dequantize.
BLOCK_SIZES: dict[int, tuple[int, int]] = {
    GGMLType.F32: (1, 4),
    GGMLType.F16: (1, 2),
    GGMLType.Q4_0: (32, 2 + 16),
    GGMLType.Q4_1: (32, 2 + 2 + 16),
    GGMLType.Q5_0: (32, 2 + 4 + 16),
    GGMLType.Q5_1: (32, 2 + 2 + 4 + 16),
    GGMLType.Q8_0: (32, 2 + 32),
    GGMLType.Q8_1: (32, 4 + 4 + 32),
    GGMLType.Q2_K: (QK_K, 2 + 2 + QK_K // 16 + QK_K // 4),
    GGMLType.Q3_K: (QK_K, 2 + QK_K // 4 + QK_K // 8 + 12),
    GGMLType.Q4_K: (QK_K, 2 + 2 + QK_K // 2 + 12),
    GGMLType.Q5_K: (QK_K, 2 + 2 + QK_K // 2 + QK_K // 8 + 12),
    GGMLType.Q6_K: (QK_K, 2 + QK_K // 2 + QK_K // 4 + QK_K // 16),
    GGMLType.Q8_K: (QK_K, 4 + QK_K + QK_K // 8),
    GGMLType.IQ2_XXS: (QK_K, 2 + QK_K // 4),
    GGMLType.IQ2_XS: (QK_K, 2 + QK_K // 4 + QK_K // 32),
    GGMLType.IQ3_XXS: (QK_K, 2 + QK_K // 4 + QK_K // 8),
    GGMLType.IQ1_S: (QK_K, 2 + QK_K // 8 + QK_K // 16),
    GGMLType.IQ4_NL: (32, 2 + 16),
    GGMLType.IQ3_S: (QK_K, 2 + QK_K // 4 + QK_K // 8 + QK_K // 32 + 4),
    GGMLType.IQ2_S: (QK_K, 2 + QK_K // 4 + QK_K // 16),
    GGMLType.IQ4_XS: (QK_K, 2 + 2 + QK_K // 2 + QK_K // 64),
    GGMLType.I8: (1, 1),
    GGMLType.I16: (1, 2),
    GGMLType.I32: (1, 4),
    GGMLType.I64: (1, 8),
    GGMLType.F64: (1, 8),
    GGMLType.IQ1_M: (QK_K, QK_K // 8 + QK_K // 16 + QK_K // 32),
    GGMLType.BF16: (1, 2),
    GGMLType.TQ1_0: (QK_K, 2 + 4 * 13),
    GGMLType.TQ2_0: (QK_K, 2 + 64),
    GGMLType.MXFP4: (32, 1 + 16),
    GGMLType.NVFP4: (64, 4 + 32),
    GGMLType.Q1_0: (128, 2 + 16),
}


def type_name(ggml_type: int) -> str:
    """`Q4_K` for 12; `type 99` for a value ggml does not define."""
    try:
        return GGMLType(ggml_type).name
    except ValueError:
        return f"type {ggml_type}"


def tensor_n_bytes(ggml_type: int, shape: Sequence[int]) -> int:
    """Bytes a tensor of this type and shape occupies; its last dim must hold whole blocks."""
    values_per_block, bytes_per_block = BLOCK_SIZES[ggml_type]
    if shape and shape[-1] % values_per_block:
        raise ValueError(
            f"a {type_name(ggml_type)} row holds whole blocks of {values_per_block} values, "
            f"but the shape {tuple(shape)} has rows of {shape[-1]}"
        )
    return prod(shape) // values_per_block * bytes_per_block


# ---- field helpers ------------------------------------------------------------------------


def _f16(blocks: Tensor, start: int) -> Tensor:
    """The little-endian float16 at byte `start` of each block, as float32: (n_blocks, 1)."""
    return blocks[:, start : start + 2].contiguous().view(torch.float16).float()


def _nibbles(packed: Tensor) -> Tensor:
    """Split bytes (..., k) into their low and high 4 bits: (..., 2, k), low nibbles first."""
    return torch.stack((packed & 0x0F, packed >> 4), dim=-2)


def _bits(packed: Tensor, bits: int) -> Tensor:
    """Split bytes (..., k) into `8 // bits` fields, lowest first: (..., 8 // bits, k)."""
    shifts = torch.arange(0, 8, bits, dtype=torch.uint8).view(-1, 1)  # (8 // bits, 1)
    return (packed.unsqueeze(-2) >> shifts) & ((1 << bits) - 1)


def _k_scales_and_mins(scales: Tensor) -> tuple[Tensor, Tensor]:
    """Unpack Q4_K/Q5_K's 12 bytes of eight 6-bit scales and eight 6-bit mins: 2 x (n, 8).

    Bytes 0-3 hold scales 0-3 (low 6 bits), bytes 4-7 mins 0-3; scales and mins 4-7 keep
    their low 4 bits in the nibbles of bytes 8-11 and their top 2 bits in the top 2 bits
    of bytes 0-3 (scales) and 4-7 (mins).
    """
    lo, mid, hi = scales[:, 0:4], scales[:, 4:8], scales[:, 8:12]  # (n, 4) each
    sc = torch.cat((lo & 0x3F, (hi & 0x0F) | ((lo >> 2) & 0x30)), dim=1)
    mn = torch.cat((mid & 0x3F, (hi >> 4) | ((mid >> 2) & 0x30)), dim=1)
    return sc, mn


# ---- one function per type: (n_blocks, bytes_per_block) uint8 -> out (n_blocks, values) ----


def _dequantize_f32(blocks: Tensor, out: Tensor) -> None:
    # 4 bytes: one float32
    out.view(torch.int32).copy_(blocks.view(torch.int32))


def _dequantize_f16(blocks: Tensor, out: Tensor) -> None:
    # 2 bytes: one float16
    out.copy_(blocks.view(torch.float16))


def _dequantize_bf16(blocks: Tensor, out: Tensor) -> None:
    # 2 bytes: one bfloat16, the top half of a float32
    out.view(torch.int32).copy_(blocks.view(torch.int16)).bitwise_left_shift_(16)


def _dequantize_q8_0(blocks: Tensor, out: Tensor) -> None:
    # 34 bytes: d (f16) | 32 x int8 q;  x = q * d
    out.copy_(blocks[:, 2:].view(torch.int8))
    out.mul_(_f16(blocks, 0))


def _dequantize_q4_0(blocks: Tensor, out: Tensor) -> None:
    # 18 bytes: d (f16) | 16 bytes of 4-bit q (low nibbles: values 0-15, high: 16-31)
    # x = (q - 8) * d
    out.view(-1, 2, 16).copy_(_nibbles(blocks[:, 2:18]))
    out.sub_(8).mul_(_f16(blocks, 0))


def _dequantize_q4_1(blocks: Tensor, out: Tensor) -> None:
    # 20 bytes: d (f16) | m (f16) | 16 bytes of 4-bit q as in Q4_0;  x = q * d + m
    out.view(-1, 2, 16).copy_(_nibbles(blocks[:, 4:20]))
    out.mul_(_f16(blocks, 0)).add_(_f16(blocks, 2))


def _q5_values(qh: Tensor, qs: Tensor) -> Tensor:
    """Q5_0/Q5_1's 5-bit values (n, 32): low 4 bits from qs as in Q4_0, bit 4 from bit i of
    the little-endian uint32 qh (i = value index)."""
    high = _bits(qh, 1).transpose(1, 2).reshape(-1, 32)  # (n, 4 bytes, 8 bits) -> (n, 32)
    return _nibbles(qs).reshape(-1, 32) | (high << 4)


def _dequantize_q5_0(blocks: Tensor, out: Tensor) -> None:
    # 22 bytes: d (f16) | qh (4 bytes: bit 4 of each value) | 16 bytes of low nibbles
    # x = (q - 16) * d
    out.copy_(_q5_values(blocks[:, 2:6], blocks[:, 6:22]))
    out.sub_(16).mul_(_f16(blocks, 0))


def _dequantize_q5_1(blocks: Tensor, out: Tensor) -> None:
    # 24 bytes: d (f16) | m (f16) | qh (4 bytes) | 16 bytes of low nibbles;  x = q * d + m
    out.copy_(_q5_values(blocks[:, 4:8], blocks[:, 8:24]))
    out.mul_(_f16(blocks, 0)).add_(_f16(blocks, 2))


def _dequantize_q2_k(blocks: Tensor, out: Tensor) -> None:
    # 84 bytes: scales (16 bytes: low nibble scale, high nibble min of each 16-value group)
    # | qs (64 bytes of 2-bit q) | d (f16) | dmin (f16)
    # value 128*h + 32*k + l is bits 2k..2k+1 of qs[32*h + l];  x = d*scale * q - dmin*min
    scales = blocks[:, 0:16]
    d, dmin = _f16(blocks, 80), _f16(blocks, 82)
    q = _bits(blocks[:, 16:80].reshape(-1, 2, 32), 2)  # (n, 2, 4, 32)
    grouped = out.view(-1, 16, 16)  # (n, group, value)
    grouped.copy_(q.reshape(-1, 16, 16))
    grouped.mul_((d * (scales & 0x0F)).unsqueeze(-1)).sub_((dmin * (scales >> 4)).unsqueeze(-1))


def _dequantize_q3_k(blocks: Tensor, out: Tensor) -> None:
    # 110 bytes: hmask (32 bytes) | qs (64 bytes of 2-bit low parts) | scales (12 bytes:
    # sixteen 6-bit scales, bias 32) | d (f16)
    # value 128*h + 32*k + l: low 2 bits from bits 2k of qs[32*h + l], and 4 is subtracted
    # unless bit (4*h + k) of hmask[l] is set;  x = d * (scale - 32) * q
    n = blocks.shape[0]
    hmask, qs, packed = blocks[:, 0:32], blocks[:, 32:96], blocks[:, 96:108]
    # scale j: low 4 bits in nibble (j // 8) of byte j % 8; top 2 bits in bits 2*(j // 4)
    # of byte 8 + j % 4
    low = _nibbles(packed[:, 0:8]).reshape(n, 16)
    high = _bits(packed[:, 8:12], 2).reshape(n, 16)
    scales = (low | (high << 4)).to(torch.int8) - 32
    q_low = _bits(qs.reshape(n, 2, 32), 2).reshape(n, 16, 16).to(torch.int8)
    q_high = _bits(hmask, 1).reshape(n, 16, 16).to(torch.int8)
    grouped = out.view(n, 16, 16)  # (n, group, value)
    grouped.copy_(q_low - ((1 - q_high) << 2))
    grouped.mul_((_f16(blocks, 108) * scales).unsqueeze(-1))


def _dequantize_q4_k(blocks: Tensor, out: Tensor) -> None:
    # 144 bytes: d (f16) | dmin (f16) | scales (12 bytes: eight 6-bit scales and mins)
    # | qs (128 bytes): value 64*j + 32*h + l is nibble h of qs[32*j + l]
    # group g = value // 32:  x = d*scale[g] * q - dmin*min[g]
    sc, mn = _k_scales_and_mins(blocks[:, 4:16])
    out.view(-1, 4, 2, 32).copy_(_nibbles(blocks[:, 16:144].reshape(-1, 4, 32)))
    grouped = out.view(-1, 8, 32)  # (n, group, value)
    grouped.mul_((_f16(blocks, 0) * sc).unsqueeze(-1))
    grouped.sub_((_f16(blocks, 2) * mn).unsqueeze(-1))


def _dequantize_q5_k(blocks: Tensor, out: Tensor) -> None:
    # 176 bytes: d (f16) | dmin (f16) | scales (12 bytes, as Q4_K) | qh (32 bytes)
    # | qs (128 bytes, as Q4_K); bit 4 of value 32*g + l is bit g of qh[l]
    # x = d*scale[g] * q - dmin*min[g]
    n = blocks.shape[0]
    sc, mn = _k_scales_and_mins(blocks[:, 4:16])
    low = _nibbles(blocks[:, 48:176].reshape(n, 4, 32)).reshape(n, 8, 32)
    high = _bits(blocks[:, 16:48], 1)  # (n, 8, 32)
    grouped = out.view(n, 8, 32)  # (n, group, value)
    grouped.copy_(low | (high << 4))
    grouped.mul_((_f16(blocks, 0) * sc).unsqueeze(-1))
    grouped.sub_((_f16(blocks, 2) * mn).unsqueeze(-1))


def _dequantize_q6_k(blocks: Tensor, out: Tensor) -> None:
    # 210 bytes: ql (128 bytes) | qh (64 bytes) | scales (16 x int8) | d (f16)
    # value 128*h + 64*k + l (l < 64): low 4 bits are nibble k of ql[64*h + l];
    # value 128*h + 32*k + l (l < 32): top 2 bits are bits 2k of qh[32*h + l]
    # group g = value // 16:  x = d*scale[g] * (q - 32)
    n = blocks.shape[0]
    low = _nibbles(blocks[:, 0:128].reshape(n, 2, 64)).reshape(n, 256)
    high = _bits(blocks[:, 128:192].reshape(n, 2, 32), 2).reshape(n, 256)
    scales = blocks[:, 192:208].view(torch.int8)
    out.copy_((low | (high << 4)).view(torch.int8) - 32)
    out.view(n, 16, 16).mul_((_f16(blocks, 208) * scales).unsqueeze(-1))


_DEQUANTIZERS: dict[int, Callable[[Tensor, Tensor], None]] = {
    GGMLType.F32: _dequantize_f32,
    GGMLType.F16: _dequantize_f16,
    GGMLType.BF16: _dequantize_bf16,
    GGMLType.Q8_0: _dequantize_q8_0,
    GGMLType.Q4_0: _dequantize_q4_0,
    GGMLType.Q4_1: _dequantize_q4_1,
    GGMLType.Q5_0: _dequantize_q5_0,
    GGMLType.Q5_1: _dequantize_q5_1,
    GGMLType.Q2_K: _dequantize_q2_k,
    GGMLType.Q3_K: _dequantize_q3_k,
    GGMLType.Q4_K: _dequantize_q4_k,
    GGMLType.Q5_K: _dequantize_q5_k,
    GGMLType.Q6_K: _dequantize_q6_k,
}

SUPPORTED_TYPES: tuple[GGMLType, ...] = tuple(GGMLType(t) for t in _DEQUANTIZERS)

# Blocks are dequantized in chunks of about this many values, so the uint8 and float
# intermediates of one chunk stay in cache instead of streaming the whole tensor each pass.
_CHUNK_VALUES = 1 << 16


def is_supported(ggml_type: int) -> bool:
    """Whether `dequantize` handles this type."""
    return ggml_type in _DEQUANTIZERS


def unsupported_type_message(ggml_type: int) -> str:
    """Names the type and the ones factscope reads (for error messages)."""
    supported = ", ".join(t.name for t in SUPPORTED_TYPES)
    return f"tensor type {type_name(ggml_type)} is not supported (supported: {supported})"


def dequantize(raw: np.ndarray | Tensor, ggml_type: int, shape: Sequence[int]) -> Tensor:
    """Decode a tensor's raw bytes (flat uint8) into a new float32 tensor of `shape`.

    `shape` is in torch order (outermost first). The input is only read, never written,
    so it may be a read-only view of a memory-mapped file.
    """
    if ggml_type not in _DEQUANTIZERS:
        raise GGUFError(unsupported_type_message(ggml_type))
    data = _as_byte_tensor(raw)
    values_per_block, bytes_per_block = BLOCK_SIZES[ggml_type]
    n_values = prod(shape)
    n_blocks = n_values // values_per_block
    if n_values % values_per_block or data.numel() != n_blocks * bytes_per_block:
        raise ValueError(
            f"{data.numel()} bytes do not hold a {type_name(ggml_type)} tensor of shape "
            f"{tuple(shape)} ({tensor_n_bytes(ggml_type, shape)} bytes expected)"
        )
    blocks = data.view(n_blocks, bytes_per_block)
    out = torch.empty(n_blocks, values_per_block, dtype=torch.float32)
    decode = _DEQUANTIZERS[ggml_type]
    chunk = max(1, _CHUNK_VALUES // values_per_block)
    for start in range(0, n_blocks, chunk):
        decode(blocks[start : start + chunk], out[start : start + chunk])
    return out.view(tuple(shape))


def _as_byte_tensor(raw: np.ndarray | Tensor) -> Tensor:
    """A flat uint8 torch view of `raw`, sharing its memory (which is never written)."""
    if isinstance(raw, Tensor):
        if raw.dtype != torch.uint8:
            raise TypeError(f"expected raw bytes (uint8), got a {raw.dtype} tensor")
        return raw.reshape(-1)
    array = np.asarray(raw)
    if array.dtype != np.uint8:
        raise TypeError(f"expected raw bytes (uint8), got a {array.dtype} array")
    array = array.reshape(-1)
    if array.flags.writeable:
        return torch.from_numpy(array)
    with warnings.catch_warnings():  # read-only memory map: we only read it
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(array)
