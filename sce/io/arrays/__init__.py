"""Reading tensors from the files people dump them in: path → named numpy arrays.

Readers only: nothing here computes the loss. Every problem is one
:class:`~sce.errors.SceError` whose message names the file and, where it
is about one array, that array. A file that cannot be opened at all (missing,
a directory, no permission) is told apart from a file that opens but holds
something unusable (bad data); the command line gives each its exit status.
"""

from sce.io.arrays.dump import ArrayDump, DumpRequest, read_dump
from sce.io.arrays.formats import ARRAY_SUFFIXES, ArrayFile, is_array_path, open_arrays

__all__ = ["ARRAY_SUFFIXES", "ArrayDump", "ArrayFile", "DumpRequest", "is_array_path", "open_arrays", "read_dump"]
