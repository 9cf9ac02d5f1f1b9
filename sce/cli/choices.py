"""The values a command-line option chooses among, each an Enum typer lists in ``--help``."""

from __future__ import annotations

from enum import Enum


class DType(str, Enum):
    float64 = "float64"
    float32 = "float32"


class ReductionChoice(str, Enum):
    none = "none"
    mean = "mean"
    sum = "sum"


class SmoothingStyleChoice(str, Enum):
    uniform = "uniform"
    off_target = "off-target"


class GradFormat(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"
    markdown = "markdown"
    html = "html"


class BatchFormat(str, Enum):
    csv = "csv"
    tsv = "tsv"
    jsonl = "jsonl"
    npz = "npz"
    parquet = "parquet"
    arrow = "arrow"


class CheckFormat(str, Enum):
    """The formats of the grading commands, sce check and sce test."""

    table = "table"
    json = "json"
    html = "html"


class Convention(str, Enum):
    """How sce test calls a function: a batch of rows, or one row at a time."""

    batch = "batch"
    row = "row"


class Framework(str, Enum):
    auto = "auto"
    numpy = "numpy"
    torch = "torch"
    jax = "jax"


class ClaimedDType(str, Enum):
    float16 = "float16"
    bfloat16 = "bfloat16"
    float32 = "float32"
    float64 = "float64"


class SumOrder(str, Enum):
    parallel = "parallel"
    sequential = "sequential"


class KernelProfile(str, Enum):
    """Whose conventions a fused linear cross-entropy kernel follows (the names of ``sce.grading.linear.profiles``)."""

    pytorch = "pytorch"
    liger = "liger"
    cce = "cce"
    torchtune = "torchtune"
    megatron = "megatron"
    loop = "loop"


class ExerciseLevel(str, Enum):
    """What a worksheet's exercises add to the plain loss (the names of ``sce.teaching.LEVELS``)."""

    labels = "labels"
    targets = "targets"
    smoothing = "smoothing"
    weights = "weights"
    temperature = "temperature"
    language_model = "language-model"


class SheetFormat(str, Enum):
    markdown = "markdown"
    html = "html"


class Engine(str, Enum):
    """Where the rows are computed: in this process, or on a Dask cluster."""

    local = "local"
    dask = "dask"
