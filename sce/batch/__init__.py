"""``sce batch``: one streaming engine, source → loss → sink.

A source (the blocks of records of a CSV or TSV input, or the row blocks of a
dump of arrays) is read block by block, every block goes through the loss
with the whole input's denominators, and the results go to a sink (text
rows, or arrays) written whole or not at all, so memory stays bounded
whatever the input size and the same code reads files and pipes.
"""

from sce.batch.loop import run_batch
from sce.batch.request import BatchRequest, BatchSummary

__all__ = ["BatchRequest", "BatchSummary", "run_batch"]
