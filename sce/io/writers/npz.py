"""A ``.npz`` written block by block, in bounded memory.

A ``.npz`` is a zip archive of ``.npy`` members. A zip member is one run of
bytes, so members cannot be appended to side by side as a stream; but with
every member's shape known before the first row (N and K of an array input),
every member's size and so its place in the file are known too. Each block's
rows are written straight to their places (``os.pwrite``), each member's
CRC-32 is carried along (its rows come in order), and the local headers
(which hold the CRCs) and the zip's directory are written at the end.
Members are stored, not compressed (as ``numpy.savez``), with zip64 sizes, so
a member may exceed 4 GB.
"""

from __future__ import annotations

import io
import math
import os
import struct
import time
import zlib
from dataclasses import dataclass

import numpy as np

_ZIP64 = 0xFFFFFFFF
_VERSION = 45  # zip64
_UTF8_NAMES = 0x800
_LOCAL = struct.Struct("<IHHHHHIIIHH")
_LOCAL_EXTRA = struct.Struct("<HHQQ")
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")
_CENTRAL_EXTRA = struct.Struct("<HHQQQ")
_END64 = struct.Struct("<IQHHIIQQQQ")
_LOCATOR64 = struct.Struct("<IIQI")
_END = struct.Struct("<IHHHHIIH")


@dataclass
class _Member:
    name: bytes
    dtype: np.dtype
    shape: tuple[int, ...]
    header_offset: int
    data_offset: int
    size: int
    written: int = 0
    crc: int = 0


def npy_header(dtype: np.dtype, shape: tuple[int, ...]) -> bytes:
    """The header ``numpy.save`` writes for an array of this type and shape."""
    fmt = np.lib.format
    header = {"descr": fmt.dtype_to_descr(dtype), "fortran_order": False, "shape": shape}
    buffer = io.BytesIO()
    try:
        fmt.write_array_header_1_0(buffer, header)
    except ValueError:  # a header beyond 64 KiB (a shape of very many dimensions)
        buffer = io.BytesIO()
        fmt.write_array_header_2_0(buffer, header)
    return buffer.getvalue()


class NpzWriter:
    """The arrays ``members`` (name, type, shape), written row block by row block into ``fd``."""

    def __init__(self, fd: int, members: list[tuple[str, np.dtype, tuple[int, ...]]]) -> None:
        self.fd = fd
        self.members: dict[str, _Member] = {}
        offset = 0
        for name, dtype, shape in members:
            encoded = f"{name}.npy".encode()
            header = npy_header(dtype, shape)
            local = _LOCAL.size + len(encoded) + _LOCAL_EXTRA.size
            size = len(header) + dtype.itemsize * math.prod(shape)
            member = _Member(encoded, dtype, shape, offset, offset + local, size)
            self.members[name] = member
            self._append(member, header)
            offset += local + size
        self.end = offset

    def write(self, columns: dict[str, np.ndarray]) -> None:
        """The next rows of each member (every member's rows must come in order)."""
        for name, values in columns.items():
            member = self.members[name]
            data = np.ascontiguousarray(values, dtype=member.dtype)
            self._append(member, data.reshape(-1).view(np.uint8).data)

    def _append(self, member: _Member, data: bytes | memoryview) -> None:
        if member.written + len(data) > member.size:
            raise RuntimeError(f"{member.name!r}: more rows than its shape {member.shape}")
        member.crc = zlib.crc32(data, member.crc)
        position, view = member.data_offset + member.written, memoryview(data)
        while len(view):
            done = os.pwrite(self.fd, view, position)
            position, view = position + done, view[done:]
        member.written += len(data)

    def finish(self) -> None:
        """The local headers and the directory; every member must be complete."""
        when = _dos_time()
        directory = bytearray()
        for member in self.members.values():
            if member.written != member.size:
                raise RuntimeError(f"{member.name!r}: {member.written} of {member.size} bytes written")
            local = _LOCAL.pack(
                0x04034B50, _VERSION, _UTF8_NAMES, 0, *when, member.crc, _ZIP64, _ZIP64, len(member.name),
                _LOCAL_EXTRA.size,
            )  # fmt: skip
            extra = _LOCAL_EXTRA.pack(1, 16, member.size, member.size)
            self._write_at(local + member.name + extra, member.header_offset)
            central = _CENTRAL.pack(
                0x02014B50, _VERSION | (3 << 8), _VERSION, _UTF8_NAMES, 0, *when, member.crc, _ZIP64, _ZIP64,
                len(member.name), _CENTRAL_EXTRA.size, 0, 0, 0, 0o100644 << 16, _ZIP64,
            )  # fmt: skip
            extra = _CENTRAL_EXTRA.pack(1, 24, member.size, member.size, member.header_offset)
            directory += central + member.name + extra
        count = len(self.members)
        end64 = self.end + len(directory)
        directory += _END64.pack(0x06064B50, 44, _VERSION, _VERSION, 0, 0, count, count, end64 - self.end, self.end)
        directory += _LOCATOR64.pack(0x07064B50, 0, end64, 1)
        short = min(count, 0xFFFF)
        directory += _END.pack(0x06054B50, 0, 0, short, short, _ZIP64, _ZIP64, 0)
        self._write_at(bytes(directory), self.end)

    def _write_at(self, data: bytes, position: int) -> None:
        view = memoryview(data)
        while len(view):
            done = os.pwrite(self.fd, view, position)
            position, view = position + done, view[done:]


def _dos_time() -> tuple[int, int]:
    now = time.localtime()
    return (
        (now.tm_hour << 11) | (now.tm_min << 5) | (now.tm_sec // 2),
        ((max(now.tm_year, 1980) - 1980) << 9) | (now.tm_mon << 5) | now.tm_mday,
    )
