"""Batch I/O: CSV or TSV in, block by block, through the core, and out.

The input is read in blocks of whole records (a few MiB each) and every
block is parsed by polars, so memory stays bounded whatever the input size
and the same code reads files and pipes. polars is fast but does not say
where a bad row is; on any problem the block is scanned again with Python's
csv module, which knows each record's line number, so that every error names
its line, column and value.
"""

from sce.batch.frames import ParsedBlock, compute_block, output_frame, parse_block, write_frame
from sce.batch.output import BackgroundWriter, OutputTarget, spooled_copy
from sce.batch.run import (
    BatchRequest,
    BatchSummary,
    computed_blocks,
    mean_denominator,
    open_input,
    read_blocks,
    readable_input,
    run_batch,
)
from sce.io.csv.columns import ColumnPlan, plan_columns
from sce.io.csv.records import BLOCK_BYTES, MAX_RECORD_BYTES, Block, BlockReader, split_header

__all__ = [
    "BLOCK_BYTES",
    "MAX_RECORD_BYTES",
    "BackgroundWriter",
    "BatchRequest",
    "BatchSummary",
    "Block",
    "BlockReader",
    "ColumnPlan",
    "OutputTarget",
    "ParsedBlock",
    "compute_block",
    "computed_blocks",
    "mean_denominator",
    "open_input",
    "output_frame",
    "parse_block",
    "plan_columns",
    "read_blocks",
    "readable_input",
    "run_batch",
    "spooled_copy",
    "split_header",
    "write_frame",
]
