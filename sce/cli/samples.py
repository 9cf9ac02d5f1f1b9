"""``sce samples DIR``: copy the sample files that ship with sce to where the user works."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from importlib import resources
from pathlib import Path
from typing import Annotated

import typer

from sce.cli.commandline import say_if_signalled_after_commit
from sce.cli.stdout import write_stdout
from sce.errors import DataProblem, UsageProblem
from sce.io.signals import committed, raise_if_interrupted, shielded, stopping_signals_handled
from sce.io.writers.atomic import current_umask

#: Each sample file, and what it is for, in the order they are listed.
SAMPLES = {
    "batch.csv": "logits z0..z2 and a label per row, for sce batch (one row ignored: -100)",
    "batch.tsv": "the same rows tab-separated",
    "batch_headerless.csv": "no header: sce batch --no-header (the label is the last column)",
    "batch_with_id.csv": "an id column beside the logits: sce batch --logit-cols 'z*'",
    "batch_soft_targets.csv": "probability targets t0..t2: sce batch --target-cols 't*'",
    "class_answers.csv": "six students' gradients and losses: sce check --csv --id-col student",
    "seed_logits.txt": "the logits 2 3 4, for sce grad --logits-file",
    "confident_logits.txt": "a confident row, 0 40, for sce grad --logits-file",
    "dump_float32_correct.npz": "a float32 dump with a right gradient: sce check --arrays",
    "dump_float32_padding_mean.npz": "a float32 dump whose mean counts the ignored rows: sce check --arrays",
    "dump_float32_as_float64.npz": "a float32 gradient saved as float64: sce check --arrays names the fix",
    "hidden_float32_correct.npz": "hidden states, a classifier and a fused kernel's right outputs: sce check --arrays",
    "hidden_float32_ignored_counted.npz": "the same kernel's, its mean counting the padding: sce check --arrays",
    "implementation_batch.py": "f(logits, labels) -> (loss, grad): sce test",
    "implementation_textbook.py": "the textbook solution, −log p: sce test says correct, not robust",
    "implementation_row.py": "f(z, label) -> (loss, grad), one row: sce test --convention row",
    "implementation_targets.py": "f(logits, targets): sce test --targets",
    "implementation_grad_only.py": "returns the gradient alone: sce test --returns grad",
    "implementation_stages.py": "returns every stage by name, one slip: sce test --returns stages",
    "implementation_torch.py": "the same in PyTorch: sce test (with torch installed)",
}


def samples(
    folder_name: Annotated[
        str,
        typer.Argument(metavar="DIR", help="Where to copy them: . for the current folder (created if missing)."),
    ],
    force: Annotated[bool, typer.Option("--force", help="Overwrite files of the same names.")] = False,
) -> None:
    """Copy the sample files (CSV, arrays, implementations) into DIR, to try every command on.

    Example: sce samples . && sce batch batch.csv
    Files of the same names are never overwritten without --force.
    """
    if not folder_name:
        raise UsageProblem("DIR: the folder name is empty; name a folder, or . for the current one")
    folder = Path(folder_name)
    shipped = resources.files("sce") / "samples"
    targets = [folder / name for name in SAMPLES]
    if folder.exists() and not folder.is_dir():
        raise UsageProblem(f"{folder}: not a folder; name a folder to copy the samples into")
    existing = [target for target in targets if os.path.lexists(target)]
    if existing and not force:
        which = f"{existing[0]} already exists"
        if len(existing) > 1:
            which = f"{existing[0]} and {len(existing) - 1} more exist"
        raise UsageProblem(f"{which}; use --force to overwrite, or copy the samples into another DIR")
    folders = [target for target in targets if target.is_dir() and not target.is_symlink()]
    if folders:
        raise UsageProblem(f"{folders[0]} is a folder; move it away, or copy the samples into another DIR")
    folder.mkdir(parents=True, exist_ok=True)
    with stopping_signals_handled():
        _write_all_or_none({target: (shipped / name).read_bytes() for name, target in zip(SAMPLES, targets)})
    say_if_signalled_after_commit("the set of samples")
    width = max(map(len, SAMPLES))
    lines = [f"{name:<{width}}  {about}" for name, about in SAMPLES.items()]
    write_stdout("\n".join(lines) + f"\n{len(SAMPLES)} sample files in {folder}\n")


def _write_all_or_none(contents: dict[Path, bytes]) -> None:
    """Every file written beside its name first, then each renamed into place: a full disk or a
    failed write leaves none of them, never a partial set that a second run would refuse."""
    written: dict[Path, str] = {}
    try:
        for target, data in contents.items():
            with shielded():  # a temporary file is not left behind unrecorded
                written[target] = _write_beside(target, data)
            raise_if_interrupted()
        with shielded():  # all of them in place, or (before this step) none
            for target, temporary in written.items():
                os.replace(temporary, target)
            committed()
    except BaseException as error:  # a signal too: no temporary file stays behind
        for temporary in written.values():
            with contextlib.suppress(OSError):
                os.unlink(temporary)
        if not isinstance(error, OSError):
            raise
        where = error.filename or next(iter(contents))
        fix = "free some space" if error.errno in (errno.ENOSPC, errno.EDQUOT) else "check the folder"
        raise DataProblem(
            f"{where}: cannot write it ({(error.strerror or str(error)).lower()}); {fix}, or copy the samples "
            "into another DIR"
        ) from None


def _write_beside(target: Path, data: bytes) -> str:
    """``data`` in a temporary file beside ``target``, with the mode a new file gets; its path."""
    try:
        descriptor, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as error:
        raise OSError(error.errno, error.strerror, str(target)) from None
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
        os.chmod(temporary, 0o666 & ~current_umask())
    except BaseException as error:
        os.unlink(temporary)
        if isinstance(error, OSError):
            raise OSError(error.errno, error.strerror, str(target)) from None
        raise
    return temporary
