"""Reading tensors from the files people dump them in: path → named numpy arrays.

Readers only: nothing here knows the loss. Every problem is one
:class:`~sce.errors.SceError` whose message names the file and, where it
is about one array, that array. A file that cannot be opened at all (missing,
a directory, no permission) exits 2, as ``cmp`` and ``diff`` do; a file that
opens but holds something unusable is bad data and exits 1.
"""

from sce.io.arrays.dump import ArrayDump, DumpRequest, read_dump
from sce.io.arrays.formats import ARRAY_SUFFIXES, ArrayFile, is_array_path, open_arrays

__all__ = ["ARRAY_SUFFIXES", "ArrayDump", "ArrayFile", "DumpRequest", "is_array_path", "open_arrays", "read_dump"]
