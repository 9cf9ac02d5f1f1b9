"""Dumps of a vocabulary-parallel kernel, one per rank: each holds its shard of the classifier
(and bias, and of their gradients) beside the same hidden states, labels, ∂L/∂E and loss.

They are read one by one and checked against the first: the same hidden states, labels and
whole outputs, the same arrays; the labels against the vocabulary all the shards hold together.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sce.errors import DataProblem, UsageProblem
from sce.io.arrays.dump import as_labels
from sce.io.arrays.linear_dump import LinearDump, read_linear_dump

#: Arrays every rank holds whole (the same in each), and those each rank holds its shard of.
SHARED = ("hidden", "labels", "grad_hidden", "loss", "grad_output")
SHARDED = ("classifier", "bias", "grad_classifier", "grad_bias")


@dataclass(frozen=True)
class RankDumps:
    """The ranks' dumps in the order given (the vocabulary's)."""

    paths: list[str]
    dumps: list[LinearDump]

    @property
    def shape(self) -> tuple[int, int, int]:
        """N, D and the whole vocabulary V."""
        rows, width, _ = self.dumps[0].shape
        return rows, width, sum(dump.shape[2] for dump in self.dumps)

    def same_shards(self) -> tuple[int, int] | None:
        """The first two ranks (in order) whose dumps hold the same shards, byte for byte: every sharded
        array of one is the other's (a rank's dump copied over another's, or written under its name)."""
        seen: dict[bytes, int] = {}
        for rank, dump in enumerate(self.dumps):
            digest = hashlib.blake2b(digest_size=32)
            for name in SHARDED:
                array = _array(dump, name)
                if array is not None:
                    digest.update(f"{name} {array.dtype} {array.shape};".encode())
                    digest.update(np.ascontiguousarray(array).view(np.uint8).reshape(-1).data)
            key = digest.digest()
            if key in seen:
                return seen[key], rank
            seen[key] = rank
        return None

    def shards(self, name: str) -> list[np.ndarray] | None:
        """Each rank's shard of a sharded array, None where the dumps do not hold it."""
        found = [_array(dump, name) for dump in self.dumps]
        return None if found[0] is None else [array for array in found if array is not None]


def read_rank_dumps(paths: Sequence[str], ignore_index: int = -100) -> RankDumps:
    """Every rank's dump, each checked against the first; a DataProblem naming the file otherwise."""
    paths = list(paths)
    _refuse_twice(paths)
    # The labels index the whole vocabulary, which no one rank holds: their range is checked once all are read.
    dumps = [read_linear_dump(path, ignore_index, shard=True) for path in paths]
    first = dumps[0]
    for path, dump in zip(paths[1:], dumps[1:]):
        _same_as_first(path, dump, paths[0], first)
    found = RankDumps(paths, dumps)
    classes = found.shape[2]
    counted = first.labels[first.labels != ignore_index]
    if counted.size and int(counted.max()) >= classes:
        same = found.same_shards()
        why = "is a rank's dump missing?" if same is None else (
            f"{paths[same[1]]} holds the same shards as {paths[same[0]]}, byte for byte: a rank's dump copied over "
            "another's?"
        )  # fmt: skip
        raise DataProblem(
            f"{first.where['labels']}: label {int(counted.max())} is beyond the {classes} classes the "
            f"{len(paths)} dumps hold together (0 to {classes - 1}): {why}"
        )
    as_labels(first.labels, first.where["labels"], len(first.labels), classes, ignore_index)  # the negative ones
    return found


def _refuse_twice(paths: list[str]) -> None:
    """One file named twice, by one spelling or two (./a.npz, a link), would stand for two ranks."""
    seen: dict[object, str] = {}
    for path in paths:
        try:
            status = os.stat(path)
            key: object = (status.st_dev, status.st_ino)
        except OSError:
            key = path  # reading it says why, unless the same missing name is given twice
        if key in seen:
            first = seen[key]
            named = first if first == path else f"{first} (also as {path})"
            raise UsageProblem(f"{named} is given twice: give each rank's dump once, in the order of the vocabulary")
        seen[key] = path


def _same_as_first(path: str, dump: LinearDump, first_path: str, first: LinearDump) -> None:
    if dump.hidden.shape[1] != first.hidden.shape[1]:
        raise DataProblem(
            f"{path}: hidden size D = {dump.hidden.shape[1]}, but {first_path} has D = {first.hidden.shape[1]}: "
            "every rank's dump holds the same hidden states"
        )
    for name in SHARED + SHARDED:
        mine, theirs = _array(dump, name), _array(first, name)
        if (mine is None) != (theirs is None):
            holds, lacks = (path, first_path) if theirs is None else (first_path, path)
            raise DataProblem(f"{holds} holds an array '{name}' and {lacks} does not: give every rank the same arrays")
        if mine is None or theirs is None:
            continue
        if mine.dtype != theirs.dtype:
            raise DataProblem(
                f"{path}: array '{name}' is {mine.dtype}, but {first_path}'s is {theirs.dtype}: every rank's dump "
                "holds its arrays in the same type"
            )
        if name in SHARED and (mine.shape != theirs.shape or mine.tobytes() != theirs.tobytes()):
            raise DataProblem(
                f"{path}: array '{name}' differs from {first_path}'s: every rank's dump holds the same {name} "
                "(a vocabulary-parallel kernel splits only the classifier, the bias and their gradients)"
            )


def _array(dump: LinearDump, name: str) -> np.ndarray | None:
    if name in ("hidden", "labels", "classifier", "bias", "grad_output"):
        return getattr(dump, name)
    return dump.answers.get(name)
