"""The command line's vocabulary: every option declared once, as data.

Each option is one :class:`Declared` record: its flags, help, help panel, and
the field it sets, by which the library's messages name it. From the records
come the commands' parameters (the loss options as one bundle,
:func:`bundled`, as sqlite-utils' ``output_options`` decorator does; the others
as ``Annotated`` types), the table from field to flag (:data:`FLAG_OF_FIELD`)
that words the messages, and the panels ``--help`` groups them in. What the
values mean is decided in :mod:`.typed_inputs` and :mod:`.file_request`
(httpie keeps its declarations apart from their processing too).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Annotated, Any, Optional, TypeVar

import typer

from sce.cli.choices import (
    ClaimedDType,
    Convention,
    DType,
    Framework,
    KernelProfile,
    ReductionChoice,
    SmoothingStyleChoice,
    SumOrder,
)
from sce.cli.declarations_engine import ENGINE_OPTIONS
from sce.cli.declarations_exercise import EXERCISE_OPTIONS
from sce.cli.declared import (
    ARGUMENTS_PANEL,
    ARRAYS_PANEL,
    FILES_PANEL,
    FUNCTION_PANEL,
    LOSS_PANEL,
    TYPED_PANEL,
    VECTOR_PANEL,
    Declared,
)
from sce.options import LossOptions


def _loss_default(name: str) -> str:
    value = getattr(LossOptions(), name)
    return str(getattr(value, "value", value))


# The loss: every option of LossOptions, one record each. A command gets them all
# (or some) with @bundled(LOSS_OPTIONS, …), as one LossOptions; their defaults are
# LossOptions' own (None on the command line means "not given").
SMOOTHING = Declared(
    "label_smoothing", ("--smoothing",), "Label smoothing ε in [0, 1].", LOSS_PANEL,
    show_default=_loss_default("label_smoothing"), parameter="smoothing", kind=float,
)
WEIGHT = Declared(
    "weight", ("--weight", "-w"), "Class weights W1,W2,... (one per class, >= 0), or @FILE to read them.",
    LOSS_PANEL, show_default=False, kind=str,
)
TEMPERATURE = Declared(
    "temperature", ("--temperature", "-T"), "Softmax temperature T > 0: p = softmax(z / T).", LOSS_PANEL,
    show_default=_loss_default("temperature"), kind=float,
)
SOFTCAP = Declared(
    "softcap", ("--softcap",), "Logit soft-capping c > 0 (Gemma 2): a = c·tanh(z/c), before the temperature.",
    LOSS_PANEL, show_default=False, kind=float,
)
Z_LOSS = Declared(
    "z_loss", ("--z-loss",), "z-loss λ >= 0 (PaLM): each counted row adds λ·lse², unweighted; mean over counted rows.",
    LOSS_PANEL, show_default=_loss_default("z_loss"), kind=float,
)
SMOOTHING_STYLE = Declared(
    "smoothing_style", ("--smoothing-style",),
    "uniform: ε/K on every class (PyTorch); off-target: 1 − ε on the label, ε/(K − 1) elsewhere (Megatron).",
    LOSS_PANEL, show_default=_loss_default("smoothing_style"), kind=SmoothingStyleChoice,
)
REDUCTION = Declared(
    "reduction", ("--reduction",), "As PyTorch: none, mean (divides by the label's weight) or sum.", LOSS_PANEL,
    show_default=_loss_default("reduction"), kind=ReductionChoice,
)
#: The reduction of a command that writes one row per input row (grad, batch, check): each row's own loss.
PER_ROW_REDUCTION = {"reduction": {"show_default": "none"}}
IGNORE_INDEX = Declared(
    "ignore_index", ("--ignore-index",), "A label that makes the row count for nothing.", LOSS_PANEL,
    show_default=_loss_default("ignore_index"), kind=int,
)
DTYPE = Declared(
    "dtype", ("--dtype",), "Floating-point type to compute in.", LOSS_PANEL,
    show_default=_loss_default("dtype"), kind=DType,
)
LOSS_OPTIONS = (SMOOTHING, WEIGHT, TEMPERATURE, SOFTCAP, Z_LOSS, SMOOTHING_STYLE, REDUCTION, IGNORE_INDEX, DTYPE)

# One vector of logits and its target, typed (sce grad, sce check).
LOGITS = Declared(
    "logits", (), "The logits z, as separate numbers (2 3 4) or one list (2,3,4). Negative numbers work as typed.",
    ARGUMENTS_PANEL, spoken="LOGITS...",
)
LOGITS_FILE = Declared(
    "logits_file", ("--logits-file",),
    "Read the logits from a file, or - for stdin: text (numbers separated by spaces, commas or new lines) "
    "or one array (.npy, .npz, .safetensors, .parquet, .arrow, .pt: K, or 1 × K).",
    VECTOR_PANEL, show_default=False,
)
LABEL = Declared(
    "labels", ("--label", "-l"), "The correct class, 0-based (as in PyTorch).", VECTOR_PANEL,
    show_default=False, parameter="label",
)
TARGET = Declared(
    "targets", ("--target", "-t"), "Probability targets P1,P2,... in place of --label.", VECTOR_PANEL,
    show_default=False, parameter="target",
)
GRAD = Declared(
    "grad_path", ("--grad", "-g"), "Your gradient G1,G2,... to grade; with arrays, the gradient array's file.",
    TYPED_PANEL, show_default=False, parameter="grad",
)
LOSS = Declared(
    "loss_path", ("--loss",), "Your loss to grade; with arrays, the loss array's file.", TYPED_PANEL,
    show_default=False, parameter="loss",
)

# The files the commands read and write (sce batch, sce check --csv).
INPUT = Declared(
    "input_path", (),
    "A CSV or TSV file, or - for stdin; or arrays (.npz, .npy, .safetensors, .parquet, .arrow, .pt). "
    "Several files, a folder or a quoted glob: the parts of one input, in name order.",
    ARGUMENTS_PANEL, spoken="INPUT",
)
OUTPUT = Declared(
    "output_path", ("--output", "-o"), "Output file (default: stdout). Written whole or not at all.", FILES_PANEL,
    spoken="-o", parameter="output",
)
SUMMARY_JSON = Declared(
    "summary_json", ("--summary-json",),
    "Also write the summary as JSON to FILE (counts, loss sum and mean to the last bit), put in place with the "
    "output, whole or not at all.",
    FILES_PANEL, show_default=False,
)
PLOT = Declared(
    "plot_path", ("--plot",),
    "Also draw the picture into FILE, .svg or .png (needs matplotlib: the plot extra); written whole or "
    "not at all, the same bytes for the same command.",
    FILES_PANEL, show_default=False, parameter="plot",
)
LABEL_COL = Declared(
    "label_col", ("--label-col",), "The label column (default: 'label'; the last without a header).", FILES_PANEL
)
LOGIT_COLS = Declared(
    "logit_cols",
    ("--logit-cols",),
    "Logit columns: a comma list or a glob such as 'z*' "
    "(default: all others; in sce check --csv, those with a grad_ column).",
    FILES_PANEL,
)
TARGET_COLS = Declared(
    "target_cols", ("--target-cols",), "Soft-target columns, in place of a label column.", FILES_PANEL
)
NO_HEADER = Declared(
    "has_header", ("--no-header",), "The input has no header line; columns are 0..n-1.", FILES_PANEL,
    spellings={"False": "--no-header"}, parameter="no_header",
)
DELIMITER = Declared(
    "delimiter", ("--delimiter",), "Field separator (default: tab for .tsv files, else comma).", FILES_PANEL,
    spellings={
        "','": "--delimiter comma",
        "'\\t'": "--delimiter tab",
        "';'": "--delimiter ';'",
        "'|'": "--delimiter '|'",
    },
)
ENCODING = Declared("encoding", ("--encoding",), "The input's text encoding.", FILES_PANEL)
CSV_INPUT = Declared(
    "input_path", ("--csv",), "Grade a file row by row instead (INPUT, or - for stdin).", FILES_PANEL,
    show_default=False, parameter="csv_input",
)
GRAD_COLS = Declared(
    "grad_cols",
    ("--grad-cols",),
    "With --csv: the gradient columns to grade (a list or a glob such as 'grad_*'); grad_X is logit X's.",
    FILES_PANEL,
)
LOSS_COL = Declared("loss_col", ("--loss-col",), "With --csv: the loss column.", FILES_PANEL)
ID_COL = Declared(
    "id_col", ("--id-col",), "With --csv: each row's learner; grades each learner apart (a gradebook).", FILES_PANEL
)

# Dumps of arrays (sce batch, sce check).
ARRAYS = Declared(
    "arrays", ("--arrays",),
    "A dump of arrays (.npz, .safetensors, .parquet, .arrow, .pt) named logits, labels or targets "
    "(and for sce check grad, loss; or a fused kernel's hidden, classifier, labels, bias, loss, grad_hidden, "
    "grad_classifier, grad_bias; sce check --arrays RANK0 RANK1 …: a vocabulary-parallel kernel's, one per rank).",
    ARRAYS_PANEL, show_default=False,
)
LOGITS_PATH = Declared(
    "logits_path", ("--logits",), "The logits array's file, one file per array.", ARRAYS_PANEL, show_default=False
)
LABELS_PATH = Declared("labels_path", ("--labels",), "The labels array's file.", ARRAYS_PANEL, show_default=False)
TARGETS_PATH = Declared(
    "targets_path", ("--targets",), "The probability targets array's file.", ARRAYS_PANEL, show_default=False
)
KEY_LOGITS = Declared("key_logits", ("--key-logits",), "The logits array's name in the file.", ARRAYS_PANEL)
KEY_LABELS = Declared("key_labels", ("--key-labels",), "The labels array's name in the file.", ARRAYS_PANEL)
KEY_TARGETS = Declared("key_targets", ("--key-targets",), "The targets array's name in the file.", ARRAYS_PANEL)
KEY_GRAD = Declared("key_grad", ("--key-grad",), "The gradient array's name in the file.", ARRAYS_PANEL)
KEY_LOSS = Declared("key_loss", ("--key-loss",), "The loss array's name in the file.", ARRAYS_PANEL)
CLAIMED_DTYPE = Declared(
    "claimed_dtype", ("--claimed-dtype",),
    "The float type the answer was computed in (default: the gradient's stored type).", ARRAYS_PANEL,
    show_default=False,
)
SUM_ORDER = Declared(
    "sum_order", ("--sum-order",), "How the answer summed each row's exponentials: parallel (in lanes or pairs, as "
    "frameworks do) or sequential (one running sum over the classes, as a textbook loop does).", ARRAYS_PANEL,
)
PROFILE = Declared(
    "profile", ("--profile",), "With a dump of hidden states: whose conventions the fused kernel follows, and so "
    "which differences are allowed: pytorch (the default), liger, cce, torchtune, megatron, or loop (one running "
    "sum per result, as a textbook loop sums).", ARRAYS_PANEL,
    show_default=False,
)
QUICK = Declared(
    "quick", ("--quick",), "With a dump of hidden states: the quick check, for sizes where the full one is slow: "
    "the loss, the bias's gradient and a seeded sample of rows compared whole, every row through random "
    "projections; the report says what it may miss.", ARRAYS_PANEL, show_default=False,
)

# sce test's configuration of the function it grades.
CONVENTION = Declared(
    "convention", ("--convention",),
    "batch: f(logits N×K, labels N); row: f(logits K, label), once per row.", FUNCTION_PANEL,
)
RETURNS = Declared(
    "returns", ("--returns",),
    "What the function returns: loss,grad (a pair), grad, loss, or stages (a dict of the derivation's intermediates).",
    FUNCTION_PANEL,
)
FRAMEWORK = Declared(
    "framework", ("--framework",), "Arrays as numpy, torch or jax (auto: from the file's imports).", FUNCTION_PANEL
)
SEED = Declared("seed", ("--seed",), "Varies the random cases.", FUNCTION_PANEL)
#: sce test's seed as sce check's quick mode takes it: the same field and flag, in the arrays' panel.
QUICK_SEED = SEED._replace(
    help="With --quick: the seed of the sampled rows and the projections (default 0, so that a run repeats itself; "
    "the report names it).", panel=ARRAYS_PANEL, show_default=False, parameter="quick_seed",
)
TIMEOUT = Declared("timeout", ("--timeout",), "Seconds each case may take.", FUNCTION_PANEL)
SHOW_OUTPUT = Declared(
    "show_output", ("--show-output",),
    "Show what the function printed in every case (a failing case's output is always shown).",
    FUNCTION_PANEL, show_default=False,
)
STRICT = Declared(
    "strict", ("--strict",),
    "Exit 1 for a function that is correct but not robust (it fails only on logits of extreme range).",
    FUNCTION_PANEL, show_default=False,
)

#: Every record, in one place: the table of flags is made from it, and a test checks
#: that each appears in its commands' --help, in its panel.
DECLARED: tuple[Declared, ...] = (
    *LOSS_OPTIONS, LOGITS, LOGITS_FILE, LABEL, TARGET, GRAD, LOSS,
    INPUT, OUTPUT, SUMMARY_JSON, PLOT, LABEL_COL, LOGIT_COLS, TARGET_COLS, NO_HEADER, DELIMITER, ENCODING, CSV_INPUT,
    GRAD_COLS, LOSS_COL, ID_COL,
    ARRAYS, LOGITS_PATH, LABELS_PATH, TARGETS_PATH, KEY_LOGITS, KEY_LABELS, KEY_TARGETS, KEY_GRAD, KEY_LOSS,
    CLAIMED_DTYPE, SUM_ORDER, PROFILE, QUICK, QUICK_SEED, CONVENTION, RETURNS, FRAMEWORK, SEED, TIMEOUT, STRICT,
    SHOW_OUTPUT,
    *EXERCISE_OPTIONS, *ENGINE_OPTIONS,
)


def flag_table(declared: Sequence[Declared]) -> dict[str, str]:
    """The command line's name for each field a message can name, and for each value
    it spells its own way (keyed ``"field=repr(value)"``, as :func:`sce.errors.worded` reads it).

    Examples
    --------
    >>> table = flag_table([SMOOTHING, NO_HEADER])
    >>> table["label_smoothing"], table["has_header=False"]
    ('--smoothing', '--no-header')
    """
    table: dict[str, str] = {}
    for record in declared:
        table.setdefault(record.field, record.name.removesuffix("..."))
        for value, spelling in record.spellings.items():
            table[f"{record.field}={value}"] = spelling
    return table


#: Field → flag, for wording the library's messages (see :func:`sce.errors.worded`);
#: where two commands spell a field two ways, the first record's (see :func:`flags_of_command`).
FLAG_OF_FIELD: Mapping[str, str] = flag_table(DECLARED)


def flags_of_command(params: Iterable[Any]) -> dict[str, str]:
    """The flag table as one command spells it, given its click parameters: its own
    records first (sce check reads the file it grades from --csv, sce batch from INPUT)."""
    own = [
        record
        for param in params
        for record in DECLARED
        if param.name == record.parameter_name and set(record.flags) <= set(param.opts)
    ]
    return {**FLAG_OF_FIELD, **flag_table(own)}

# The typed parameters the commands declare, one per record.
LogitsArgument = Annotated[Optional[list[str]], LOGITS.argument()]
LogitsFileOption = Annotated[Optional[str], LOGITS_FILE.option()]
LabelOption = Annotated[Optional[str], LABEL.option()]
TargetOption = Annotated[Optional[str], TARGET.option()]
GradOption = Annotated[Optional[str], GRAD.option()]
LossOption = Annotated[Optional[str], LOSS.option()]
InputsArgument = Annotated[Optional[list[str]], INPUT.argument(metavar="[INPUT]...")]
OutputOption = Annotated[Optional[str], OUTPUT.option()]
SummaryJsonOption = Annotated[Optional[str], SUMMARY_JSON.option(metavar="FILE")]
CheckSummaryJsonOption = Annotated[
    Optional[str],
    SUMMARY_JSON.option(
        metavar="FILE",
        help="With --csv: also write the summary as JSON to FILE (counts, loss sum and mean to the last bit, the "
        "verdict's counts), whole or not at all.",
    ),
]
PlotOption = Annotated[Optional[str], PLOT.option(metavar="FILE")]
LabelColOption = Annotated[Optional[str], LABEL_COL.option()]
LogitColsOption = Annotated[Optional[str], LOGIT_COLS.option()]
TargetColsOption = Annotated[Optional[str], TARGET_COLS.option()]
NoHeaderOption = Annotated[bool, NO_HEADER.option()]
DelimiterOption = Annotated[Optional[str], DELIMITER.option()]
EncodingOption = Annotated[str, ENCODING.option()]
CsvInputOption = Annotated[Optional[str], CSV_INPUT.option()]
GradColsOption = Annotated[Optional[str], GRAD_COLS.option()]
LossColOption = Annotated[Optional[str], LOSS_COL.option()]
IdColOption = Annotated[Optional[str], ID_COL.option()]
ArraysOption = Annotated[Optional[str], ARRAYS.option()]
LogitsPathOption = Annotated[Optional[str], LOGITS_PATH.option()]
LabelsPathOption = Annotated[Optional[str], LABELS_PATH.option()]
TargetsPathOption = Annotated[Optional[str], TARGETS_PATH.option()]
KeyLogits = Annotated[Optional[str], KEY_LOGITS.option()]
KeyLabels = Annotated[Optional[str], KEY_LABELS.option()]
KeyTargets = Annotated[Optional[str], KEY_TARGETS.option()]
KeyGrad = Annotated[Optional[str], KEY_GRAD.option()]
KeyLoss = Annotated[Optional[str], KEY_LOSS.option()]
ClaimedDTypeOption = Annotated[Optional[ClaimedDType], CLAIMED_DTYPE.option()]
SumOrderOption = Annotated[SumOrder, SUM_ORDER.option()]
ProfileOption = Annotated[Optional[KernelProfile], PROFILE.option()]
QuickOption = Annotated[bool, QUICK.option()]
QuickSeedOption = Annotated[Optional[int], QUICK_SEED.option()]
ConventionOption = Annotated[Convention, CONVENTION.option()]
FrameworkOption = Annotated[Framework, FRAMEWORK.option()]
DigitsOption = Annotated[
    int,
    typer.Option("--digits", "-d", help="Significant digits shown (display only, 1 to 17)."),
]

Command = TypeVar("Command", bound=Callable[..., Any])


def bundled(
    declared: Sequence[Declared],
    build: Callable[[dict[str, Any]], Any],
    *,
    into: str,
    given_into: str | None = None,
    changes: Mapping[str, Mapping[str, Any]] | None = None,
) -> Callable[[Command], Command]:
    """A decorator that gives a command the options ``declared`` as parameters, and
    the command one value built from them: ``build({field: value})`` of the options
    given (each left out has the default ``build`` gives it) as its keyword ``into``.

    ``given_into`` names a keyword that receives the set of fields given, for a command
    whose default depends on the input (sce check --arrays' reduction); ``changes``,
    per field, another help text or default shown for one command.

    Examples
    --------
    >>> @bundled([TEMPERATURE, REDUCTION], dict, into="options")
    ... def show(*, options):
    ...     return options
    >>> list(inspect.signature(show).parameters)
    ['temperature', 'reduction']
    >>> show(temperature=2.0, reduction=None)
    {'temperature': 2.0}
    """

    def decorate(command: Command) -> Command:
        own = inspect.signature(command, eval_str=True)
        kept = [parameter for name, parameter in own.parameters.items() if name not in (into, given_into)]
        added = [
            inspect.Parameter(
                record.parameter_name,
                inspect.Parameter.KEYWORD_ONLY,
                default=None,
                annotation=Annotated[Optional[record.kind], record.option(**(changes or {}).get(record.field, {}))],
            )
            for record in declared
        ]

        @functools.wraps(command)
        def run(**values: Any) -> Any:
            given = {
                record.field: value
                for record in declared
                if (value := values.pop(record.parameter_name)) is not None
            }
            extra = {} if given_into is None else {given_into: frozenset(given)}
            return command(**values, **{into: build(given)}, **extra)

        parameters = [*kept, *added]
        run.__signature__ = own.replace(parameters=parameters)  # type: ignore[attr-defined]
        run.__annotations__ = {parameter.name: parameter.annotation for parameter in parameters}
        return run  # type: ignore[return-value]

    return decorate
