"""The lean GGUF reader and the torch dequantizers, checked against the `gguf` package."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from factscope.errors import GGUFError
from factscope.registry import resolve_model
from factscope.weights.gguf import parse_gguf, read_gguf
from factscope.weights.quants import BLOCK_SIZES, SUPPORTED_TYPES, GGMLType, dequantize

Q = gguf.GGMLQuantizationType
# Types whose raw blocks we draw at random (any bit pattern is a valid block once its float16
# scales are finite): every type the dequantizer supports.
RANDOM_BLOCK_TYPES = [t for t in SUPPORTED_TYPES if t not in (GGMLType.F32,)]


def _random_blocks(ggml_type: int, n_blocks: int, seed: int) -> np.ndarray:
    """Random raw bytes for `n_blocks` blocks, float16 scale fields forced to finite values."""
    rng = np.random.default_rng(seed)
    _, bytes_per_block = BLOCK_SIZES[ggml_type]
    raw = rng.integers(0, 256, size=(n_blocks, bytes_per_block), dtype=np.uint8)
    halves = raw.view(np.uint8).reshape(n_blocks, -1)
    if ggml_type in (GGMLType.F16, GGMLType.BF16):
        # clear the top exponent bit: no inf/NaN
        halves[:, 1::2] &= 0xBF
        return raw
    # scale fields of each block layout (byte offsets of float16 values)
    scale_offsets = {
        GGMLType.Q8_0: [0],
        GGMLType.Q4_0: [0],
        GGMLType.Q4_1: [0, 2],
        GGMLType.Q5_0: [0],
        GGMLType.Q5_1: [0, 2],
        GGMLType.Q2_K: [80, 82],
        GGMLType.Q3_K: [108],
        GGMLType.Q4_K: [0, 2],
        GGMLType.Q5_K: [0, 2],
        GGMLType.Q6_K: [208],
    }[ggml_type]
    for offset in scale_offsets:
        scales = rng.normal(0, 0.01, size=n_blocks).astype(np.float16)
        raw[:, offset : offset + 2] = scales.view(np.uint8).reshape(n_blocks, 2)
    return raw


@pytest.mark.parametrize("ggml_type", RANDOM_BLOCK_TYPES, ids=lambda t: t.name)
def test_dequantize_equals_gguf_package_on_random_blocks(ggml_type: GGMLType) -> None:
    values_per_block, _ = BLOCK_SIZES[ggml_type]
    raw = _random_blocks(ggml_type, n_blocks=300, seed=int(ggml_type))
    expected = gguf.quants.dequantize(raw.reshape(1, -1), Q(int(ggml_type))).reshape(-1)
    got = dequantize(raw.reshape(-1), ggml_type, (300 * values_per_block,))
    assert got.dtype == torch.float32
    np.testing.assert_array_equal(got.numpy(), expected.astype(np.float32))


def test_dequantize_f32_is_a_copy() -> None:
    values = np.random.default_rng(0).normal(size=(3, 64)).astype(np.float32)
    got = dequantize(values.view(np.uint8).reshape(-1), GGMLType.F32, (3, 64))
    np.testing.assert_array_equal(got.numpy(), values)


@pytest.mark.parametrize("ggml_type", [Q.Q8_0, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1, Q.F16, Q.BF16])
def test_quantize_then_dequantize_round_trip(ggml_type: Any) -> None:
    """Blocks quantized by the gguf package decode to what its own dequantize gives."""
    values = np.random.default_rng(1).normal(size=(8, 256)).astype(np.float32)
    raw = gguf.quants.quantize(values, ggml_type)
    expected = gguf.quants.dequantize(raw, ggml_type)
    got = dequantize(raw.view(np.uint8).reshape(-1), int(ggml_type), (8, 256))
    np.testing.assert_array_equal(got.numpy(), expected)


def test_dequantize_rejects_wrong_byte_count() -> None:
    raw = np.zeros(34 * 2 + 1, dtype=np.uint8)
    with pytest.raises(ValueError, match="bytes"):
        dequantize(raw, GGMLType.Q8_0, (64,))


def test_unsupported_quant_type_is_a_clean_error() -> None:
    _, bytes_per_block = BLOCK_SIZES[GGMLType.IQ2_XXS]
    with pytest.raises(GGUFError, match="IQ2_XXS is not supported"):
        dequantize(np.zeros(bytes_per_block, dtype=np.uint8), GGMLType.IQ2_XXS, (256,))


# ---- the reader ---------------------------------------------------------------------------


def _write_sample_gguf(path: Path) -> dict[str, np.ndarray]:
    """A small GGUF with every metadata value type and tensors of several quant types."""
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_uint8("test.u8", 7)
    writer.add_int8("test.i8", -7)
    writer.add_uint16("test.u16", 65000)
    writer.add_int16("test.i16", -32000)
    writer.add_uint32("test.u32", 4_000_000_000)
    writer.add_int32("test.i32", -2_000_000_000)
    writer.add_float32("test.f32", 0.1)
    writer.add_uint64("test.u64", 2**63)
    writer.add_int64("test.i64", -(2**62))
    writer.add_float64("test.f64", 1e-300)
    writer.add_bool("test.bool", True)
    writer.add_string("test.str", "héllo ▁ wörld 🙂")
    writer.add_array("test.strs", ["a", "", "▁▁", "<0x0A>", "日本"])
    writer.add_array("test.ints", [1, -2, 3])
    writer.add_array("test.floats", [0.5, -1.25])
    writer.add_array("test.nested", [[1, 2], [3]])
    rng = np.random.default_rng(0)
    tensors = {
        "a.f32": rng.normal(size=(3, 5)).astype(np.float32),
        "b.f16": rng.normal(size=(4, 64)).astype(np.float16),
        "c.vec": rng.normal(size=(7,)).astype(np.float32),
    }
    for name, value in tensors.items():
        writer.add_tensor(name, value)
    q8 = rng.normal(size=(2, 64)).astype(np.float32)
    writer.add_tensor("d.q8_0", gguf.quants.quantize(q8, Q.Q8_0), raw_dtype=Q.Q8_0)
    tensors["d.q8_0"] = gguf.quants.dequantize(gguf.quants.quantize(q8, Q.Q8_0), Q.Q8_0)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return tensors


def _reference_value(field: Any) -> Any:
    value = field.contents()
    return value


def _assert_same_as_gguf_reader(path: Path) -> None:
    ours = read_gguf(path)
    ref = gguf.GGUFReader(str(path))
    ref_keys = [k for k in ref.fields if not k.startswith("GGUF.")]
    assert list(ours.metadata) == ref_keys
    for key in ref_keys:
        expected = _reference_value(ref.fields[key])
        got = ours.metadata[key]
        if isinstance(got, np.ndarray):
            np.testing.assert_array_equal(got, np.asarray(expected), err_msg=key)
        elif isinstance(got, list) and got and isinstance(got[0], np.ndarray):
            # GGUFReader.contents() flattens nested arrays; we keep the nesting
            assert [v for g in got for v in g.tolist()] == expected, key
        elif isinstance(got, float):
            assert got == pytest.approx(expected, rel=1e-7), key
        else:
            assert got == expected, key
    assert list(ours.tensors) == [t.name for t in ref.tensors]
    for t in ref.tensors:
        info = ours.tensors[t.name]
        assert info.shape == tuple(int(d) for d in reversed(t.shape)), t.name
        assert info.ggml_type == int(t.tensor_type), t.name
        assert info.offset == int(t.data_offset), t.name
        assert info.n_bytes == int(t.n_bytes), t.name
        np.testing.assert_array_equal(ours.raw(t.name), np.asarray(t.data).view(np.uint8).ravel())


def test_reader_matches_gguf_reader_on_generated_file(tmp_path: Path) -> None:
    path = tmp_path / "sample.gguf"
    tensors = _write_sample_gguf(path)
    _assert_same_as_gguf_reader(path)
    ours = read_gguf(path)
    assert ours.metadata["test.u64"] == 2**63
    assert ours.metadata["test.strs"] == ["a", "", "▁▁", "<0x0A>", "日本"]
    assert [a.tolist() for a in ours.metadata["test.nested"]] == [[1, 2], [3]]
    for name, value in tensors.items():
        np.testing.assert_array_equal(ours.tensor(name).numpy(), value.astype(np.float32))


@pytest.mark.realmodel
@pytest.mark.parametrize("name", ["smollm2-135m", "gemma-3-270m"])
def test_reader_matches_gguf_reader_on_real_files(name: str) -> None:
    path = _installed(name)
    _assert_same_as_gguf_reader(path)


@pytest.mark.realmodel
@pytest.mark.parametrize("name", ["smollm2-135m", "gemma-3-270m"])
def test_real_tensors_dequantize_like_gguf_package(name: str) -> None:
    """Every tensor of both shipped files, every quant type they use, bit for bit."""
    ours = read_gguf(_installed(name))
    seen = set()
    for info in ours.tensors.values():
        raw = ours.raw(info.name)
        values_per_block, bytes_per_block = BLOCK_SIZES[info.ggml_type]
        rows = raw.reshape(-1, info.shape[-1] // values_per_block * bytes_per_block)
        expected = gguf.quants.dequantize(rows, Q(info.ggml_type)).reshape(info.shape)
        np.testing.assert_array_equal(ours.tensor(info.name).numpy(), expected, info.name)
        seen.add(info.type_name)
    assert seen >= ({"F32", "Q8_0", "Q4_1"} if name == "smollm2-135m" else {"Q4_K", "Q6_K"})


def _installed(name: str) -> Path:
    resolved = resolve_model(name)
    if not resolved.path.is_file():
        pytest.skip(f"{name} is not installed")
    return resolved.path


# ---- malformed files: always a clean GGUFError ----------------------------------------------


def test_truncated_header_each_prefix_is_a_clean_error(tmp_path: Path) -> None:
    path = tmp_path / "sample.gguf"
    _write_sample_gguf(path)
    data = path.read_bytes()
    # every cut inside the header and tensor table, then a few inside the data
    parsed = read_gguf(path)
    header_end = parsed.data_offset
    last_end = max(info.offset + info.n_bytes for info in parsed.tensors.values())
    for cut in [*range(0, header_end, 3), header_end + 10, last_end - 1]:
        with pytest.raises(GGUFError):
            parse_gguf(data[:cut], Path("cut.gguf"))


def test_bad_version_and_unknown_types(tmp_path: Path) -> None:
    header = b"GGUF" + struct.pack("<I", 1) + struct.pack("<QQ", 0, 0)
    with pytest.raises(GGUFError, match="version 1"):
        parse_gguf(header, Path("v1.gguf"))
    key = b"k"
    bad_type = (
        b"GGUF"
        + struct.pack("<IQQ", 3, 0, 1)
        + struct.pack("<Q", len(key))
        + key
        + struct.pack("<I", 99)
    )
    with pytest.raises(GGUFError, match="unknown value type 99"):
        parse_gguf(bad_type + b"\0" * 64, Path("t.gguf"))


def test_huge_counts_fail_fast_without_allocating() -> None:
    # an array claiming 2**60 strings must not be attempted
    key = b"tokenizer.ggml.tokens"
    data = (
        b"GGUF"
        + struct.pack("<IQQ", 3, 0, 1)
        + struct.pack("<Q", len(key))
        + key
        + struct.pack("<IIQ", 9, 8, 2**60)
    )
    with pytest.raises(GGUFError, match="truncated"):
        parse_gguf(data + b"\0" * 100, Path("huge.gguf"))


@pytest.fixture(scope="module")
def sample_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("fuzz") / "sample.gguf"
    _write_sample_gguf(path)
    return path.read_bytes()


@settings(
    max_examples=300, deadline=1000, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_fuzz_garbled_files_never_crash(sample_bytes: bytes, data: st.DataObject) -> None:
    """Truncated or garbled files parse or raise GGUFError: no other exception, no hang."""
    blob = bytearray(sample_bytes)
    n_edits = data.draw(st.integers(0, 8))
    for _ in range(n_edits):
        where = data.draw(st.integers(0, len(blob) - 1))
        blob[where] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(blob)))
    try:
        parsed = parse_gguf(bytes(blob[:cut]), Path("fuzzed.gguf"))
        for name in parsed.tensors:
            parsed.tensor(name)
    except GGUFError:
        pass
