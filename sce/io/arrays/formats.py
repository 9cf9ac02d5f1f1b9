"""One reader per file format, each giving an :class:`ArrayFile`: names → arrays, read lazily.

.npy is memory-mapped (a 4 GB dump costs no memory until its rows are read);
the others are read whole when an array is first asked for.
"""

from __future__ import annotations

import contextlib
import importlib
import math
import os
import stat
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sce.errors import DataProblem, UnreadableFile
from sce.io.arrays.tables import table_arrays

#: The suffixes read as arrays; anything else given to --logits-file is text.
ARRAY_SUFFIXES = (".npy", ".npz", ".safetensors", ".parquet", ".arrow", ".arrows", ".ipc", ".feather", ".pt", ".pth")

#: The first bytes of each format, for a file whose name does not say.
MAGIC_BYTES = (
    (b"\x93NUMPY", ".npy"),
    (b"PK\x03\x04", ".npz"),
    (b"PAR1", ".parquet"),
    (b"ARROW1", ".arrow"),
    (b"\xff\xff\xff\xff", ".arrows"),  # an Arrow IPC stream: a continuation marker, then its schema
)


@dataclass
class ArrayFile:
    """The arrays of one file, by name; ``load`` reads one (memory-mapped where it can)."""

    path: str
    names: list[str]
    loader: Callable[[str], np.ndarray]
    cache: dict[str, np.ndarray] = field(default_factory=dict)
    header_shape: Callable[[str], tuple[int, ...] | None] = lambda _: None
    """An array's shape from its header, without reading its data (None where unknown):
    a compressed .npz member's data can be a thousand times its size on disk."""
    verify: Callable[[], None] = lambda: None
    """Check what was read without its format's own check (a .npz member memory-mapped rather
    than read through zipfile, which checks the CRC-32); raise a DataProblem if it is damaged."""

    def load(self, name: str) -> np.ndarray:
        if name not in self.cache:
            self.cache[name] = self.loader(name)
        return self.cache[name]


def is_array_path(path: str) -> bool:
    return Path(path).suffix.lower() in ARRAY_SUFFIXES


def is_regular_file(path: str) -> bool:
    """Whether ``path`` can be read twice, or seeked in (False for pipes, FIFOs, <(…) and devices);
    True for a path that cannot be looked at: opening it then says why."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return True


def unreadable(path: str, error: OSError) -> UnreadableFile:
    """A file that cannot be opened at all."""
    reason = "is a directory" if isinstance(error, IsADirectoryError) else (error.strerror or str(error)).lower()
    if isinstance(error, FileNotFoundError):
        reason = "no such file"
    return UnreadableFile(f"{path}: cannot read: {reason}")


def open_arrays(path: str) -> ArrayFile:
    """The arrays in ``path``, by format (from its suffix, else from its first bytes)."""
    if path == "-":
        raise UnreadableFile("-: arrays are read from a file by its name, out of order: save them to a file first")
    try:
        if os.path.isdir(path):
            raise IsADirectoryError(21, "Is a directory", path)
        if not is_regular_file(path):
            # Arrays are read by seeking (a .npy is memory-mapped, a zip read from its end).
            raise UnreadableFile(f"{path}: is a pipe or a device; arrays are read from a file: save them first")
        with open(path, "rb") as handle:
            head = handle.read(8)
    except OSError as error:
        raise unreadable(path, error) from None
    if not head:
        raise DataProblem(f"{path}: the file is empty (0 bytes)")
    suffix = Path(path).suffix.lower()
    if suffix not in ARRAY_SUFFIXES:
        suffix = next((kind for magic, kind in MAGIC_BYTES if head.startswith(magic)), "")
    reader = _READERS.get(suffix)
    if reader is None:
        raise DataProblem(
            f"{path}: not a format sce reads as arrays; use .npy, .npz, .safetensors, .parquet, .arrow or .pt"
        )
    return reader(path)


def declared_bytes(shape: tuple[int, ...], dtype: np.dtype, where: str) -> int:
    """The bytes a .npy header's shape and type promise, in Python's integers (numpy's int64
    product overflows, and warns, for shapes a damaged header can declare)."""
    if any(not isinstance(n, int) or n < 0 for n in shape):
        raise DataProblem(f"{where}: not a .npy array (its header declares the shape {shape})")
    return math.prod(shape) * dtype.itemsize


def _npy(path: str) -> ArrayFile:
    name = Path(path).stem
    array = _map_npy(path)
    return ArrayFile(path, [name], lambda _: array)


def _map_npy(path: str) -> np.ndarray:
    """The array of a .npy file, memory-mapped; its header checked against its size first,
    so that a truncated file is named as such rather than failing half-way through."""
    fmt = np.lib.format
    try:
        with open(path, "rb") as handle:
            version = fmt.read_magic(handle)
            header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            shape, fortran, dtype = header(handle)
            offset = handle.tell()
    except OSError as error:
        raise unreadable(path, error) from None
    except (ValueError, EOFError):
        raise DataProblem(f"{path}: not a .npy file (its header is missing or damaged)") from None
    if dtype.hasobject:
        raise DataProblem(f"{path}: holds Python objects, not numbers; save a numeric array")
    needed = declared_bytes(shape, dtype, path)
    size = os.path.getsize(path) - offset
    if size < needed:
        raise DataProblem(f"{path}: truncated: {size:,} bytes of data where its header promises {needed:,}")
    if needed == 0:
        return np.zeros(shape, dtype)
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")


def _npz(path: str) -> ArrayFile:
    try:
        archive = np.load(path, allow_pickle=False)
    except OSError as error:
        raise unreadable(path, error) from None
    except (ValueError, EOFError, zipfile.BadZipFile):
        raise DataProblem(f"{path}: not a .npz file (not a complete zip archive)") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataProblem(f"{path}: holds one array (a .npy file), not named arrays; rename it .npy")
    names = archive.zip.namelist() if archive.zip is not None else []
    if any(name == "data.pkl" or name.endswith("/data.pkl") for name in names):
        archive.close()  # torch.save writes a zip too (a .bin, stdin's bytes): its members are not arrays
        return _torch(path)
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:  # zip allows it; numpy would read one of them without a word
        raise DataProblem(f"{path}: holds two members named '{twice[0]}'; write the dump again with one")
    members = _NpzMembers(path, archive)
    return ArrayFile(path, list(archive.files), members.load, header_shape=members.header_shape, verify=members.verify)


class _NpzMembers:
    """A .npz's arrays: stored members memory-mapped (their CRC-32s checked by ``verify``,
    as zipfile would have checked them reading), compressed ones read through numpy."""

    def __init__(self, path: str, archive: np.lib.npyio.NpzFile) -> None:
        self.path = path
        self.archive = archive
        self.mapped: list[tuple[str, zipfile.ZipInfo, int]] = []

    def load(self, name: str) -> np.ndarray:
        path, archive = self.path, self.archive
        try:
            stored = archive.zip.getinfo(f"{name}.npy") if archive.zip is not None else None
            found = None if stored is None else _map_stored_member(path, stored)
            if found is None:
                if stored is not None:
                    self._check_size(name, stored)
                return np.asarray(archive[name])
            assert stored is not None
            self.mapped.append((name, stored, found[1]))
            return found[0]
        except ValueError as error:
            if "allow_pickle" in str(error):
                raise DataProblem(f"{path}: array '{name}' holds Python objects, not numbers") from None
            raise DataProblem(f"{path}: array '{name}' is damaged ({error})") from None
        except (OSError, EOFError, zipfile.BadZipFile, KeyError, zlib.error) as error:
            raise DataProblem(f"{path}: array '{name}' cannot be read: truncated or damaged ({error})") from None

    def _check_size(self, name: str, member: zipfile.ZipInfo) -> None:
        """A member read whole (compressed, or not mappable) is first held to what its header
        promises: the archive's own count of its bytes, and half this machine's memory (a 3 MB
        compressed member can declare 3 GB, a damaged one 2 TB)."""
        declared = self._declared(name)
        if declared is None:
            return  # numpy's reader says what is wrong with the header
        needed, header_bytes = declared
        where = f"{self.path}: array '{name}'"
        if member.file_size < header_bytes + needed:
            raise DataProblem(
                f"{where}: truncated or damaged: its header promises {needed:,} bytes of data, the archive holds "
                f"{max(0, member.file_size - header_bytes):,}"
            )
        memory = _physical_memory()
        if memory is not None and needed > memory // 2:
            raise DataProblem(
                f"{where}: compressed, it inflates to {needed / 1e9:.1f} GB, more than half this machine's memory; "
                "save it uncompressed (np.savez, not np.savez_compressed), which is read block by block"
            )

    def _declared(self, name: str) -> tuple[int, int] | None:
        """(the data's bytes, the header's bytes) a member's .npy header declares, or None."""
        header = self._header(name)
        if header is None:
            return None
        shape, dtype, header_bytes = header
        return declared_bytes(shape, dtype, f"{self.path}: array '{name}'"), header_bytes

    def header_shape(self, name: str) -> tuple[int, ...] | None:
        header = self._header(name)
        return None if header is None else header[0]  # None: load() says what is wrong

    def _header(self, name: str) -> tuple[tuple[int, ...], np.dtype, int] | None:
        """A member's .npy header: its shape, type and length in bytes, or None if unreadable."""
        fmt = np.lib.format
        try:
            assert self.archive.zip is not None
            with self.archive.zip.open(f"{name}.npy") as member:
                version = fmt.read_magic(member)
                read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
                shape, _, dtype = read(member)
                return tuple(shape), dtype, member.tell()
        except (AssertionError, KeyError, ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error):
            return None

    def verify(self) -> None:
        for name, member, start in self.mapped:
            if _crc32_of(self.path, start, member.file_size) != member.CRC:
                raise DataProblem(
                    f"{self.path}: array '{name}' is damaged: its bytes do not match the archive's CRC-32 "
                    "(the file changed or was corrupted after it was written); write it again"
                )


def _physical_memory() -> int | None:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not on every system
        return None


def _crc32_of(path: str, start: int, size: int) -> int:
    """The CRC-32 of ``size`` bytes of ``path`` from ``start``, read in pieces."""
    crc = 0
    with open(path, "rb") as handle:
        handle.seek(start)
        while size > 0:
            piece = handle.read(min(size, 1 << 24))
            if not piece:
                break
            crc = zlib.crc32(piece, crc)
            size -= len(piece)
    return crc


def _map_stored_member(path: str, member: zipfile.ZipInfo) -> tuple[np.ndarray, int] | None:
    """An uncompressed member of a .npz (np.savez's default), memory-mapped where it lies in
    the archive, as a .npy file is: a large dump then costs no memory until its rows are read;
    with where the member's bytes start (its CRC-32 covers them). None for a compressed member
    (np.savez_compressed), which is read whole."""
    if member.compress_type != zipfile.ZIP_STORED:
        return None
    fmt = np.lib.format
    with open(path, "rb") as handle:
        handle.seek(member.header_offset)
        local = handle.read(30)  # the zip format's local file header: its name and extra field follow
        if len(local) < 30 or local[:4] != b"PK\x03\x04":
            return None
        name_length, extra_length = struct.unpack("<HH", local[26:30])
        start = member.header_offset + 30 + name_length + extra_length
        handle.seek(start)
        version = fmt.read_magic(handle)
        header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape, fortran, dtype = header(handle)
        offset = handle.tell()
    needed = declared_bytes(shape, dtype, f"{path}: array '{member.filename.removesuffix('.npy')}'")
    if dtype.hasobject or needed == 0 or member.file_size < offset - start + needed:
        return None  # numpy's own reader says what is wrong (objects, truncation), or there is nothing to map
    mapped = np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")
    return mapped, start


def _safetensors(path: str) -> ArrayFile:
    try:
        from safetensors import SafetensorError
        from safetensors.numpy import load_file
    except ImportError:
        raise DataProblem(
            f"{path}: reading .safetensors needs the safetensors package: pip install 'sce[safetensors]'"
        ) from None
    with contextlib.suppress(ImportError):
        import ml_dtypes  # noqa: F401  (registers the name 'bfloat16' with numpy, which safetensors asks for)
    try:
        arrays = load_file(path)
    except (SafetensorError, OSError, ValueError, TypeError) as error:
        problem = " ".join(str(error).split())
        if "bf16" in problem.lower() or "bfloat16" in problem.lower():
            problem += "; bfloat16 needs ml_dtypes: pip install 'sce[bfloat16]'"
        raise DataProblem(f"{path}: not a readable .safetensors file ({problem})") from None
    return ArrayFile(path, list(arrays), lambda name: arrays[name])


def _torch(path: str) -> ArrayFile:
    try:
        torch: Any = importlib.import_module("torch")  # optional: never a dependency
    except ImportError:
        raise DataProblem(
            f"{path}: reading .pt files needs PyTorch; save the tensors with numpy.save instead"
        ) from None
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many kinds; every one means the same here
        text = " ".join(str(error).split())
        if "weights_only" in text or "Unsupported global" in text:
            # PyTorch's own text goes on to advise weights_only=False, which runs the file's code.
            raise DataProblem(
                f"{path}: holds Python objects besides tensors, which sce never unpickles (weights_only=True); "
                "save a dict of tensors"
            ) from None
        raise DataProblem(f"{path}: not a readable .pt file ({text[:200]})") from None
    tensors = loaded if isinstance(loaded, dict) else {Path(path).stem: loaded}
    arrays = {
        str(name): tensor_to_numpy(tensor, f"{path}: tensor '{name}'")
        for name, tensor in tensors.items()
        if torch.is_tensor(tensor)
    }
    return ArrayFile(path, list(arrays), lambda name: arrays[name])


def tensor_to_numpy(tensor: Any, where: str = "a tensor") -> np.ndarray:
    """A tensor as numpy; bfloat16 through ml_dtypes when installed, else as its 2-byte raw values."""
    torch: Any = importlib.import_module("torch")
    tensor = tensor.detach().cpu()
    if tensor.layout != torch.strided:
        raise DataProblem(f"{where} is {str(tensor.layout).removeprefix('torch.')}; save it dense (.to_dense())")
    readable = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
    if tensor.dtype.is_floating_point and tensor.dtype not in readable:
        raise DataProblem(
            f"{where} has type {str(tensor.dtype).removeprefix('torch.')}; "
            "save it as float16, bfloat16, float32 or float64"
        )
    if tensor.dtype == torch.bfloat16:
        # Its bits, which .numpy() refuses: ml_dtypes' bfloat16 where installed, else 2-byte raw values
        # (as numpy saves bfloat16), which the dump's reader widens or refuses by role, never as float32.
        bits = np.asarray(tensor.view(torch.int16).numpy())
        try:
            import ml_dtypes

            return bits.view(ml_dtypes.bfloat16)
        except ImportError:
            return bits.view(np.dtype("V2"))
    return np.asarray(tensor.numpy())


def _table(path: str) -> ArrayFile:
    try:
        arrays = table_arrays(path)
    except OSError as error:
        raise unreadable(path, error) from None
    return ArrayFile(path, list(arrays), lambda name: arrays[name])


_READERS: dict[str, Callable[[str], ArrayFile]] = {
    ".npy": _npy,
    ".npz": _npz,
    ".safetensors": _safetensors,
    ".parquet": _table,
    ".arrow": _table,
    ".arrows": _table,
    ".ipc": _table,
    ".feather": _table,
    ".pt": _torch,
    ".pth": _torch,
}
