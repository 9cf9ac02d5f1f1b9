"""``sce batch`` over several inputs (files, a quoted glob, a folder of parts) or on a Dask
cluster: the inputs as the partitions of one, each read as one input is."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from sce.cli.file_request import file_request, output_format_for
from sce.errors import UsageProblem, option

if TYPE_CHECKING:
    from sce.batch import BatchRequest, BatchSummary
    from sce.options import LossOptions


class PartsRequest:
    """What a partitioned run is asked for: the inputs, the output, and how each input is read."""

    def __init__(
        self,
        inputs: list[str],
        output: str | None,
        options: LossOptions,
        summary_json: str | None,
        csv_choices: dict[str, Any],
    ) -> None:
        self.inputs, self.output, self.options = inputs, output, options
        self.summary_json, self.csv_choices = summary_json, csv_choices
        self.keys: dict[str, str | None] = {}
        self.output_format: str | None = None
        self.engine = "local"
        self.scheduler: str | None = None
        self.workers: int | None = None
        self.paths: list[str] = []

    def refuse_alone(self, **given: str | None) -> None:
        """Refuse the options that name one input's files or write one input's picture."""
        if not self.inputs:
            raise UsageProblem(
                "give the inputs: files, a folder of parts, or a quoted glob such as 'parts/*.csv' "
                "(stdin cannot be cut into parts)"
            )
        for name, value in given.items():
            if value is not None:
                flag = "--plot" if name == "plot" else f"--{name}"
                raise UsageProblem(
                    f"{flag} goes with one input on {option('engine', 'local')}; "
                    "give every part as INPUT (files, a folder, or a quoted glob)"
                )

    def request(self) -> BatchRequest:
        """The whole run's request: the first part's reading, the output and its format."""
        from sce.batch.csv_source import check_openable
        from sce.batch.partitioned import partition_paths, refuse_output_read_as_a_part, refuse_streams

        self.paths = partition_paths(self.inputs)
        refuse_output_read_as_a_part(self.output, self.inputs)
        for path in self.paths:
            check_openable(path)
        refuse_streams(self.paths, self.engine == "dask", self.options.reduction == "mean")
        whole = self.part_request(self.paths[0], with_format=False)
        whole.summary_path = self.summary_json
        whole.output_format = output_format_for(self.output_format, self._output_file(), whole.delimiter)
        self.chosen_format = whole.output_format
        self.request_made = whole
        return whole

    def _output_file(self) -> str | None:
        """The output's name as a file's, for its format: a folder's parts are named by theirs."""
        if self.output is None or not (self.output.endswith(os.sep) or os.path.isdir(self.output)):
            return self.output
        return os.path.join(self.output, "part")

    def part_request(self, path: str, with_format: bool = True) -> BatchRequest:
        """The request that reads one part, as one input is read (CSV, or a dump of arrays)."""
        from sce.io.arrays import DumpRequest

        dump = None
        renamed = {role: key for role, key in self.keys.items() if key is not None}
        if is_arrays_file(path):
            if path.lower().endswith(".npy"):
                dump = DumpRequest(None, {"logits": path}, renamed)
            else:
                dump = DumpRequest(path, {}, renamed)
        choices = dict(self.csv_choices)
        digits = choices.pop("digits")
        request = file_request(path, self.output, self.options, **choices, digits=digits, arrays=dump)
        if with_format:
            request.output_format = self.chosen_format
        return request

    def run(self) -> BatchSummary:
        if self.engine == "dask":
            from sce.batch.dask_engine import run_on_cluster

            return run_on_cluster(self.request_made, self.paths, self.part_request, self.scheduler, self.workers)
        from sce.batch.partitioned import InProcess, run_partitioned

        return run_partitioned(self.request_made, self.paths, InProcess(), self.part_request)


def names_parts(path: str) -> bool:
    """Whether one input names several parts: a folder, or a glob (quoted, so the shell left it)."""
    import glob

    return os.path.isdir(path) or (not os.path.exists(path) and glob.has_magic(path))


def is_arrays_file(path: str) -> bool:
    """An array file by its name (.npz, .npy …) or, for a file named otherwise, its first bytes."""
    from sce.io.arrays import is_array_path
    from sce.io.arrays.vector import array_suffix

    if is_array_path(path):
        return True
    if path == "-" or not os.path.isfile(path):
        return False
    try:
        with open(path, "rb") as handle:
            return array_suffix(handle.read(8)) is not None
    except OSError:
        return False
