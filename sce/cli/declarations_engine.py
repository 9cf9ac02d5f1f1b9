"""The options that choose where a command's work runs (this process, or a Dask cluster), declared
once as :mod:`.declarations` declares the others and registered in its table of every record,
:data:`~.declarations.DECLARED`; sce batch and sce check --arrays both take them."""

from __future__ import annotations

from typing import Annotated, Optional

from sce.cli.choices import Engine
from sce.cli.declared import Declared

#: The panel of the options that choose where the work runs.
ENGINE_PANEL = "Where it runs"

ENGINE = Declared(
    "engine", ("--engine",),
    "local: in this process; dask: the inputs' parts on a Dask cluster (needs the dask extra), "
    "the same bits as local.",
    ENGINE_PANEL,
)
SCHEDULER = Declared(
    "scheduler", ("--scheduler",),
    "With --engine dask: the address of a running Dask scheduler, e.g. tcp://10.0.0.5:8786 "
    "(default: a local cluster of --workers processes).",
    ENGINE_PANEL, show_default=False,
)
WORKERS = Declared(
    "workers", ("--workers",),
    "With --engine dask and no --scheduler: the local cluster's worker processes, 1 to 256 (default: the cores); "
    "never more than the cores, nor than a batch run's parts.",
    ENGINE_PANEL, show_default=False,
)

#: Every record of this module, for the table of every record.
ENGINE_OPTIONS = (ENGINE, SCHEDULER, WORKERS)

EngineOption = Annotated[Engine, ENGINE.option()]
SchedulerOption = Annotated[Optional[str], SCHEDULER.option(metavar="ADDRESS")]
WorkersOption = Annotated[Optional[int], WORKERS.option(metavar="N")]
