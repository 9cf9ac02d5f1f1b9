"""Bytes and line numbers: the input cut into blocks of whole records, checked
as UTF-8, and the csv-module scan that says which line each record is on."""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from sce.errors import DataProblem, OptionDataProblem, OptionProblem, option

#: Bytes read at a time; a block is this much text cut back to a record boundary.
#: 1 MiB rather than 4: the same speed, and about half the peak memory (a
#: block lives on as its text frame, its arrays and its output frame, and up
#: to three output frames wait for or are in the writer).
BLOCK_BYTES = 1 << 20
#: A record longer than this is taken for an unclosed quote, not read on into memory.
MAX_RECORD_BYTES = 64 << 20
_UTF8 = ("utf-8", "utf8", "utf_8", "utf-8-sig", "utf_8_sig")


@dataclass
class Block:
    """Whole records as UTF-8 bytes, and the line number of the first."""

    first_line: int
    data: bytes


class BlockReader:
    """Cuts a byte stream into blocks of whole records, decoded to UTF-8.

    UTF-8 input (with or without a byte-order mark) is passed on as it is,
    after a check that it decodes; other encodings are decoded and re-encoded.
    Bytes that do not decode are reported with their line.
    """

    def __init__(
        self, stream: BinaryIO, encoding: str = "utf-8", block_bytes: int | None = None, name: str = "the input"
    ) -> None:
        self.stream = stream
        self.name = name
        self.block_bytes = block_bytes or BLOCK_BYTES
        try:
            codec = codecs.lookup(encoding)
        except LookupError:
            raise OptionProblem("encoding", f"unknown encoding {encoding!r}; try utf-8, latin-1 or cp1252") from None
        if not getattr(codec, "_is_text_encoding", True):
            raise OptionProblem("encoding", f"{encoding!r} is not a text encoding; try utf-8, latin-1 or cp1252")
        self.encoding = codec.name
        self.passthrough = codec.name in ("utf-8", "utf-8-sig") or encoding.lower() in _UTF8
        self.decoder = None if self.passthrough else codec.incrementaldecoder("strict")
        self.pending = b""
        self.next_line = 1
        self.bytes_read = 0
        self.started = False
        self.finished = False

    def _read(self) -> bytes:
        try:
            raw = self.stream.read(self.block_bytes)
        except OSError as error:  # a failing disk or mount under the input: not the output's
            reason = (error.strerror or str(error)).lower()
            raise OptionDataProblem("input_path", f"reading {self.name} failed: {reason}") from None
        self.bytes_read += len(raw)
        if not raw:
            self.finished = True
        if not self.bytes_read - len(raw):
            _refuse_arrays(raw, self.name)
        if self.passthrough:
            if not self.started and raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
                # What Windows PowerShell 5's Out-File writes; latin-1 would read it as garbage.
                raise DataProblem(
                    f"line 1: the file starts with a UTF-16 byte-order mark; give {option('encoding', 'utf-16')}"
                )
            if not self.started and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8) :]
            if not self.started:
                _refuse_utf16_without_mark(raw)
            self.started = True
            return raw
        assert self.decoder is not None
        try:
            text = self.decoder.decode(raw, final=not raw)
        except UnicodeDecodeError as error:
            line = self.next_line + self.pending.count(b"\n") + raw[: error.start].count(b"\n")
            raise DataProblem(
                f"line {line}: bytes that are not {self.encoding} ({error.reason}); "
                f"give the file's encoding with {option('encoding')}"
            ) from None
        except UnicodeError as error:  # utf-16 without a byte-order mark, and the like
            raise DataProblem(
                f"line {self.next_line}: the input cannot be read as {self.encoding} ({error}); "
                f"give the file's encoding with {option('encoding')}, for example {option('encoding', 'utf-8')}"
            ) from None
        self.started = True
        return text.encode("utf-8")

    def blocks(self) -> Iterator[Block]:
        while not self.finished:
            self.pending += self._read()
            if self.finished:
                cut = len(self.pending)
            else:
                cut = _record_boundary(self.pending)
                if cut == 0:
                    if len(self.pending) > MAX_RECORD_BYTES:
                        raise DataProblem(self._overlong())
                    continue  # one record longer than a block: read on
            data, self.pending = self.pending[:cut], self.pending[cut:]
            if data:
                _check_utf8(data, self.next_line)
                # Advance before yielding: a consumer may stop after this block
                # (first_record does) and a new generator must go on from here.
                first_line, self.next_line = self.next_line, self.next_line + data.count(b"\n")
                yield Block(first_line, data)

    def _overlong(self) -> str:
        """Why no record ends within MAX_RECORD_BYTES: an open quote where one is open, else a
        line that long (or bytes that are not text: /dev/zero, a binary file)."""
        within = f"within {MAX_RECORD_BYTES:,} bytes"
        if b"\n" in self.pending:
            return (
                f"line {self.next_line}: a quoted field is never closed (no record ends {within}); "
                "check the quote characters"
            )
        return (
            f"line {self.next_line}: no line ends {within}: a line longer than sce reads, or not a text file; "
            "check the input"
        )

    def first_record(self, delimiter: str) -> tuple[list[str], Block | None]:
        """The first record's fields, and a block that starts with it
        (leading blank lines are skipped, as pandas and polars do)."""
        for block in self.blocks():
            stripped = block.data.lstrip(b"\r\n")
            first_line = block.first_line + block.data[: len(block.data) - len(stripped)].count(b"\n")
            if not stripped:
                continue
            if stripped.startswith(b"{"):
                raise DataProblem(
                    f"line {first_line}: this is JSON Lines, not CSV; sce reads files of comma- or tab-separated "
                    f"values (write sce batch's output with {option('output_path', 'OUT.csv')} to read it again)"
                )
            end = _record_boundary(stripped, first=True)
            text = stripped[:end].decode("utf-8")
            try:
                fields = next(csv.reader(io.StringIO(text), delimiter=delimiter), [])
            except csv.Error as error:
                raise _unreadable(first_line, error) from None
            return fields, Block(first_line, stripped)
        return [], None


def _refuse_utf16_without_mark(head: bytes) -> None:
    """UTF-16 without a byte-order mark (some Windows tools): read as UTF-8 its header would be
    one odd column name full of NUL bytes. A NUL beside every character of the first line says it."""
    line = head[: max(2, head.find(b"\n") + 1 if b"\n" in head else 64)][:64]
    if len(line) < 4:
        return
    for order, zeros, letters in (("utf-16le", line[1::2], line[0::2]), ("utf-16be", line[0::2], line[1::2])):
        if not zeros.strip(b"\x00") and letters.strip(b"\x00"):
            raise DataProblem(
                "line 1: the file looks like UTF-16 (a NUL byte beside every character); "
                f"give {option('encoding', order)}"
            )


def _refuse_arrays(head: bytes, name: str) -> None:
    """Array bytes read as text (a FIFO or <(…) of a .npz) would fail on their first odd byte,
    with advice about encodings: say what they are."""
    from sce.io.arrays.vector import array_suffix

    suffix = array_suffix(head[:8])
    if suffix is not None:
        raise DataProblem(f"{name} holds arrays ({suffix}), which sce reads from a file: save them and give its name")


def _record_boundary(data: bytes, first: bool = False) -> int:
    """The offset just after the last (or, with ``first``, the first) complete
    record: after a newline with an even number of quote characters before it.
    0 when there is none (a quoted field still open)."""
    if first:
        cut = data.find(b"\n") + 1
        quotes = data.count(b'"', 0, cut)
        while cut and quotes % 2:
            following = data.find(b"\n", cut) + 1
            quotes += data.count(b'"', cut, following or len(data))
            cut = following
        return cut or len(data)
    cut = data.rfind(b"\n") + 1
    if b'"' in data:
        # Counted once, then line by line backwards: recounting from the start
        # for every line would be quadratic in a block with an open quote.
        quotes = data.count(b'"', 0, cut)
        while cut and quotes % 2:
            previous = data.rfind(b"\n", 0, cut - 1) + 1
            quotes -= data.count(b'"', previous, cut)
            cut = previous
    return cut


def _check_utf8(data: bytes, first_line: int) -> None:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as error:
        start = data.rfind(b"\n", 0, error.start) + 1
        line = first_line + data.count(b"\n", 0, error.start)
        raise DataProblem(
            f"line {line}, byte {error.start - start + 1}: byte 0x{data[error.start]:02x} is not valid UTF-8; "
            f"give the file's encoding with {option('encoding')}, for example {option('encoding', 'latin-1')}"
        ) from None


def skip_leading_blank_lines(block: Block) -> Block:
    """The block from its first non-blank line: polars takes a block's first
    line for the number of columns."""
    stripped = block.data.lstrip(b"\r\n")
    if len(stripped) == len(block.data):
        return block
    return Block(block.first_line + block.data[: len(block.data) - len(stripped)].count(b"\n"), stripped)


def split_header(block: Block) -> Block:
    """The block without its first record (the header)."""
    end = _record_boundary(block.data, first=True)
    return Block(block.first_line + block.data[:end].count(b"\n"), block.data[end:])


def records_with_lines(block: Block, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of every record in the block, blank lines included."""
    reader = csv.reader(io.StringIO(block.data.decode("utf-8")), delimiter=delimiter)
    line = block.first_line
    try:
        for fields in reader:
            yield line, fields
            line = block.first_line + reader.line_num
    except csv.Error as error:
        raise _unreadable(block.first_line + reader.line_num - 1, error) from None


def _unreadable(line: int, error: csv.Error) -> DataProblem:
    if "new-line character seen in unquoted field" in str(error):
        # The csv module's words for a carriage return not followed by a newline.
        return DataProblem(
            f"line {line}: a carriage return (\\r) alone ends a line; sce reads lines that end with \\n or \\r\\n: "
            "convert the line ends, for example with tr '\\r' '\\n' < IN > OUT"
        )
    if "field larger than field limit" in str(error):
        return DataProblem(
            f"line {line}: a field of more than {csv.field_size_limit():,} characters; "
            "a cell holds a number, a label or a short text"
        )
    return DataProblem(f"line {line}: cannot be read as CSV ({error})")


def record_lines(block: Block, delimiter: str) -> list[int]:
    """The line number of each record (each row) of the block, blank lines left out."""
    return [line for line, fields in records_with_lines(block, delimiter) if fields]


def record_at(block: Block, delimiter: str, row: int) -> tuple[int, list[str]]:
    """Row ``row`` of the block (blank lines left out) as (line number, fields)."""
    records = [(line, fields) for line, fields in records_with_lines(block, delimiter) if fields]
    return records[row]
