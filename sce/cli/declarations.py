"""The command line's vocabulary: choices and option declarations shared by the commands.

Declarations only (httpie keeps its option declarations apart from their
processing too); what the values mean is decided in :mod:`.inputs`.
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Optional

import typer


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


class Convention(str, Enum):
    """How sce test calls a function: a batch of rows, or one row at a time."""

    batch = "batch"
    row = "row"


class Returns(str, Enum):
    loss_grad = "loss,grad"
    grad = "grad"
    loss = "loss"


class Framework(str, Enum):
    auto = "auto"
    numpy = "numpy"
    torch = "torch"
    jax = "jax"


# Options of the commands that compute one vector of logits (and of sce batch).
LogitsArgument = Annotated[
    Optional[list[str]],
    typer.Argument(
        metavar="LOGITS...",
        help="The logits z, as separate numbers (2 3 4) or one list (2,3,4). Negative numbers work as typed.",
        show_default=False,
    ),
]
LogitsFileOption = Annotated[
    Optional[str],
    typer.Option(
        "--logits-file",
        help="Read the logits from a file, or - for stdin: text (numbers separated by spaces, commas or new lines) "
        "or one array (.npy, .npz, .safetensors, .parquet, .arrow, .pt: K, or 1 × K).",
        show_default=False,
    ),
]
LabelOption = Annotated[
    Optional[str],
    typer.Option("--label", "-l", help="The correct class, 0-based (as in PyTorch).", show_default=False),
]
TargetOption = Annotated[
    Optional[str],
    typer.Option("--target", "-t", help="Probability targets P1,P2,... in place of --label.", show_default=False),
]
SmoothingOption = Annotated[float, typer.Option("--smoothing", help="Label smoothing ε in [0, 1].")]
WeightOption = Annotated[
    Optional[str],
    typer.Option(
        "--weight",
        "-w",
        help="Class weights W1,W2,... (one per class, >= 0), or @FILE to read them.",
        show_default=False,
    ),
]
TemperatureOption = Annotated[
    float, typer.Option("--temperature", "-T", help="Softmax temperature T > 0: p = softmax(z / T).")
]
SoftcapOption = Annotated[
    Optional[float],
    typer.Option(
        "--softcap",
        help="Logit soft-capping c > 0 (Gemma 2): a = c·tanh(z/c), before the temperature.",
        show_default=False,
    ),
]
ZLossOption = Annotated[
    float,
    typer.Option(
        "--z-loss", help="z-loss λ >= 0 (PaLM): each counted row adds λ·lse², unweighted; mean over counted rows."
    ),
]
SmoothingStyleOption = Annotated[
    SmoothingStyleChoice,
    typer.Option(
        "--smoothing-style",
        help="uniform: ε/K on every class (PyTorch); off-target: 1 − ε on the label, ε/(K − 1) elsewhere (Megatron).",
    ),
]
ReductionOption = Annotated[
    ReductionChoice,
    typer.Option("--reduction", help="As PyTorch: none, mean (divides by the label's weight) or sum."),
]
IgnoreIndexOption = Annotated[int, typer.Option("--ignore-index", help="A label that makes the row count for nothing.")]
DTypeOption = Annotated[DType, typer.Option("--dtype", help="Floating-point type to compute in.")]
DigitsOption = Annotated[int, typer.Option("--digits", "-d", help="Decimals shown in tables (display only, 1 to 17).")]

# Options of the commands that read files (sce batch, sce check --csv).
LabelColOption = Annotated[
    Optional[str], typer.Option("--label-col", help="The label column (default: 'label'; the last without a header).")
]
LogitColsOption = Annotated[
    Optional[str],
    typer.Option("--logit-cols", help="Logit columns: a comma list or a glob such as 'z*' (default: all others)."),
]
TargetColsOption = Annotated[
    Optional[str], typer.Option("--target-cols", help="Soft-target columns, in place of a label column.")
]
NoHeaderOption = Annotated[bool, typer.Option("--no-header", help="The input has no header line; columns are 0..n-1.")]
DelimiterOption = Annotated[
    Optional[str], typer.Option("--delimiter", help="Field separator (default: tab for .tsv files, else comma).")
]
EncodingOption = Annotated[str, typer.Option("--encoding", help="The input's text encoding.")]
