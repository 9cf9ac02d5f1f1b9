"""Damaged array files, each one line and exit 1, never an internal error (70) or a raw
numpy warning: regressions for hostile files (a corrupt deflate stream,
headers that declare impossible or enormous shapes)."""

from __future__ import annotations

import io
import struct
import zipfile

import numpy as np
import pytest


def run(sce, *args: str):
    result = sce(*args)
    return result.exit_code, result.stderr


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _header(shape: str, version: int = 1) -> bytes:
    text = f"{{'descr': '<f8', 'fortran_order': False, 'shape': {shape}, }}".encode()
    if version == 1:
        text += b" " * (118 - len(text)) + b"\n"
        return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text
    text += b" " * ((64 - (len(text) + 13) % 64) % 64) + b"\n"
    return b"\x93NUMPY\x02\x00" + struct.pack("<I", len(text)) + text


def test_regression_a_corrupt_deflate_stream_is_a_damaged_array(tmp_path, sce):
    path = tmp_path / "dc.npz"
    np.savez_compressed(path, logits=np.array([[2, 3, 4], [0, 40, -1.0]]), labels=np.array([1, 1]))
    data = bytearray(path.read_bytes())
    data[60] ^= 0xFF
    (tmp_path / "bad.npz").write_bytes(bytes(data))
    said = (
        f"sce: error: {tmp_path / 'bad.npz'}: array 'logits' cannot be read: truncated or damaged "
        "(Error -3 while decompressing data: invalid code lengths set)\n"
    )
    assert run(sce, "batch", str(tmp_path / "bad.npz"), "-q") == (1, said)
    assert run(sce, "grad", "--logits-file", str(tmp_path / "bad.npz"), "-l", "0") == (1, said)


@pytest.mark.parametrize("shape", ["(100000000000, 3)", "(100000000000,)"])
def test_regression_an_npz_member_declaring_terabytes_is_refused_before_it_is_read(tmp_path, shape, sce):
    """numpy reserved 2.18 TiB for it and failed (MemoryError, exit 70)."""
    path = tmp_path / "huge.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("logits.npy", _header(shape) + b"\0" * 48)
        archive.writestr("labels.npy", _npy_bytes(np.array([1, 1])))
    count = 8 * 100_000_000_000 * (3 if "3" in shape else 1)
    said = (
        f"sce: error: {path}: array 'logits': truncated or damaged: its header promises {count:,} bytes of "
        "data, the archive holds 48\n"
    )
    command = ("batch", str(path), "-q") if "3" in shape else ("grad", "--logits-file", str(path), "-l", "0")
    assert run(sce, *command) == (1, said)


@pytest.mark.parametrize(
    ("shape", "said"),
    [
        ("(-2, 3)", "not a .npy array (its header declares the shape (-2, 3))"),
        (
            "(9223372036854775807, 9223372036854775807)",
            "truncated: 48 bytes of data where its header promises "
            f"{8 * 9223372036854775807 * 9223372036854775807:,}",
        ),
    ],
)
def test_regression_a_npy_header_with_an_impossible_shape_is_one_line(tmp_path, shape, said, sce):
    """A negative dimension was numpy's ValueError (exit 70); a product beyond int64 overflowed
    with a raw RuntimeWarning. The byte count is now taken in Python's integers."""
    path = tmp_path / "z.npy"
    path.write_bytes(_header(shape, version=2) + b"\0" * 48)
    np.save(tmp_path / "y.npy", np.array([1, 1]))
    code, err = run(sce, "batch", str(path), "--labels", str(tmp_path / "y.npy"), "-q")
    assert (code, err) == (1, f"sce: error: {path}: {said}\n")


def test_regression_pt_tensors_sce_cannot_read_are_one_line(tmp_path, sce):
    """A sparse or float8 tensor was an internal error (70); a pickle with code was refused
    with PyTorch's text cut where it advises weights_only=False, which would run the code."""
    torch = pytest.importorskip("torch")
    import os

    torch.save({"logits": torch.randn(2, 3).to_sparse(), "labels": torch.tensor([1, 0])}, tmp_path / "sp.pt")
    torch.save({"logits": torch.randn(2, 3).to(torch.float8_e4m3fn), "labels": torch.tensor([1, 0])}, tmp_path / "f8.pt")

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'ran'}",))

    torch.save({"logits": Evil()}, tmp_path / "evil.pt")
    expected = {
        "sp.pt": "tensor 'logits' is sparse_coo; save it dense (.to_dense())",
        "f8.pt": "tensor 'logits' has type float8_e4m3fn; save it as float16, bfloat16, float32 or float64",
        "evil.pt": "holds Python objects besides tensors, which sce never unpickles (weights_only=True); "
        "save a dict of tensors",
    }
    for name, said in expected.items():
        assert run(sce, "batch", str(tmp_path / name), "-q") == (1, f"sce: error: {tmp_path / name}: {said}\n")
    assert not (tmp_path / "ran").exists()


def test_regression_dash_for_an_array_file_says_arrays_come_from_files(tmp_path, sce):
    """`--arrays -` said "-: cannot read: no such file"."""
    np.save(tmp_path / "y.npy", np.array([1]))
    said = "sce: error: -: arrays are read from a file by its name, out of order: save them to a file first\n"
    assert run(sce, "check", "--arrays", "-", "--reduction", "mean") == (2, said)
    assert run(sce, "check", "--logits", "-", "--labels", str(tmp_path / "y.npy"), "--grad", "-") == (2, said)


def test_regression_a_pytorch_zip_under_another_name_is_read_as_pt(tmp_path, sce):
    """torch.save writes a zip: named .bin or piped on stdin, it was read as an .npz whose
    arrays were torch's internals ('v/data.pkl', 'v/byteorder', …)."""
    with zipfile.ZipFile(tmp_path / "d.bin", "w") as archive:  # the layout torch.save writes
        archive.writestr("d/data.pkl", b"\x80\x02}q\x00.")
        archive.writestr("d/version", b"3\n")
    code, err = run(sce, "batch", str(tmp_path / "d.bin"), "-q")
    if code == 1 and "needs PyTorch" in err:
        assert err == f"sce: error: {tmp_path / 'd.bin'}: reading .pt files needs PyTorch; save the tensors with numpy.save instead\n"
    else:  # with PyTorch installed, this fake is read by torch and refused as a .pt file
        assert code == 1 and err.startswith(f"sce: error: {tmp_path / 'd.bin'}: ") and "data.pkl" not in err


def test_regression_ambiguous_dumps_are_refused(tmp_path, sce):
    """A .npz with two members named logits.npy was read with one of them; a Parquet file with
    both a list column 'logits' and columns logits_0… with the list column, without a word."""
    import polars as pl

    with zipfile.ZipFile(tmp_path / "dup.npz", "w") as archive, pytest.warns(UserWarning, match="Duplicate name"):
        archive.writestr("logits.npy", _npy_bytes(np.array([[2.0, 3.0, 4.0]])))
        archive.writestr("logits.npy", _npy_bytes(np.array([[1.0, 1.0, 1.0]])))
        archive.writestr("labels.npy", _npy_bytes(np.array([1])))
    assert run(sce, "batch", str(tmp_path / "dup.npz"), "-q") == (
        1,
        f"sce: error: {tmp_path / 'dup.npz'}: holds two members named 'logits.npy'; write the dump again with one\n",
    )
    pl.DataFrame({"logits": [[2.0, 3.0, 4.0]], "labels": [1], "logits_0": [9.0]}).write_parquet(tmp_path / "b.parquet")
    assert run(sce, "batch", str(tmp_path / "b.parquet"), "-q") == (
        1,
        f"sce: error: {tmp_path / 'b.parquet'}: array 'logits' is both a column of lists and columns logits_0…; "
        "keep one of them\n",
    )


def _hidden_state_dump(path, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    arrays = {
        "hidden": rng.standard_normal((12, 8)).astype(np.float32),
        "classifier": (rng.standard_normal((10, 8)) / 4).astype(np.float32),
        "labels": rng.integers(0, 10, 12),
        "grad_hidden": rng.standard_normal((12, 8)).astype(np.float32),
    }
    np.savez(path, **arrays)
    return arrays


def _flip_a_byte_of(path, array: np.ndarray, entry: int) -> None:
    """One bit of the stored bytes of ``array`` flipped in place in the archive, its CRC-32 kept."""
    data = bytearray(path.read_bytes())
    at = bytes(data).find(array.tobytes()) + array.itemsize * entry + array.itemsize - 1
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


DAMAGED = (
    "sce: error: {}: array '{}' is damaged: its bytes do not match the archive's CRC-32 "
    "(the file changed or was corrupted after it was written); write it again\n"
)


@pytest.mark.parametrize("name", ["hidden", "classifier", "labels", "grad_hidden"])
@pytest.mark.parametrize("mode", [[], ["--quick"]])
def test_a_damaged_hidden_state_dump_is_a_data_error_not_a_verdict(tmp_path, sce, name, mode):
    # Memory-mapped .npz members skip zipfile's CRC-32 check: a flipped byte of grad_hidden was graded as read,
    # "not correct" (the kernel blamed for the disk's fault), and "correct" in quick mode for another such file.
    dump = tmp_path / "hidden.npz"
    arrays = _hidden_state_dump(dump)
    _flip_a_byte_of(dump, arrays[name], 5)
    with pytest.raises(zipfile.BadZipFile, match="CRC"):
        np.load(dump)[name]  # numpy's own reader, which checks the CRC, agrees that it is damaged
    result = sce("check", "--arrays", dump, *mode)
    assert (result.exit_code, result.stdout, result.stderr) == (1, "", DAMAGED.format(dump, name))


def test_a_damaged_rank_dump_is_a_data_error_not_a_verdict(tmp_path, sce):
    first, second = tmp_path / "rank0.npz", tmp_path / "rank1.npz"
    arrays = _hidden_state_dump(first)
    np.savez(second, **{**arrays, "classifier": arrays["classifier"] + 1})
    _flip_a_byte_of(second, arrays["grad_hidden"], 40)
    result = sce("check", "--arrays", first, second)
    assert (result.exit_code, result.stdout, result.stderr) == (1, "", DAMAGED.format(second, "grad_hidden"))
