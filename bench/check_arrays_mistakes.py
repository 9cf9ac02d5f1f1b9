"""What naming the mistake adds to `sce check --arrays`: each answer graded by the installed
`sce check` as a whole process, beside the same check with the naming step left out, in the
same rounds.

    python bench/check_arrays_mistakes.py [--shape 2048x32000 --shape 64x128000] [--rounds 3]
                                          [--answers correct,label_plus_one,…] [--keep DIR]

For each shape, a float32 dump is written (logits, labels with every 8th row padding, and one
gradient per answer, computed here in plain float32 numpy, a row block at a time):

    correct          p − y, over the counted rows (the mean)
    label_plus_one   the −1 at the label's index plus one
    sum_not_mean     p − y, not divided by the counted rows
    sign_flipped     y − p
    too_few_classes  the softmax over the first K − 1 classes (no name fits: the search for one,
                     and the implementation choices tried after it, are all spent)

The baseline is the same command line in a `python -c` where the grading does not name
mistakes (`sce.grading.dump.check._graded` called with its seventh argument, name_mistakes,
False): the verdict's pass alone, then, as for any wrong answer no mistake explains, the
implementation choices it may be consistent with (a narrower type, a sequential sum), which
both runs try for too_few_classes. The verdict line must be the same. The two are run --rounds
times, alternately (the machine's other work falls on both alike), and the ratio is that of the
medians of wall and of CPU time. On a loaded machine, CPU time is the steadier figure.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

IGNORE = -100
BLOCK_ROWS = 64
ANSWERS = ("correct", "label_plus_one", "sum_not_mean", "sign_flipped", "too_few_classes")

#: The same command line as `sce`, with the grading's name_mistakes argument False (its last).
WITHOUT_NAMING = """
import sys
import sce.grading.dump.check as check
from sce.cli import main

graded = check._graded
check._graded = lambda *arguments, **keywords: graded(*arguments[:6], False, *arguments[7:], **keywords)
sys.argv = ["sce", *sys.argv[1:]]
main()
"""


def answer_gradient(answer: str, z: np.ndarray, y: np.ndarray, total: np.float32) -> np.ndarray:
    """One block's gradient as a learner's float32 numpy gives it, for one of :data:`ANSWERS`."""
    classes = z.shape[1]
    kept = classes - 1 if answer == "too_few_classes" else classes
    e = np.exp(z[:, :kept] - z[:, :kept].max(axis=1, keepdims=True))
    g = np.zeros_like(z)
    g[:, :kept] = e / e.sum(axis=1, keepdims=True)
    counted = np.flatnonzero(y != IGNORE)
    at = y[counted] if answer != "label_plus_one" else (y[counted] + 1) % classes
    g[counted, at] -= 1
    g[y == IGNORE] = 0
    if answer == "sign_flipped":
        g = -g
    return g if answer == "sum_not_mean" else g / total


def generate(folder: Path, rows: int, classes: int, answers: list[str]) -> None:
    """logits.npy, labels.npy and one ANSWER.npy per answer, written a block of rows at a time."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, classes, rows)
    labels[::8] = IGNORE  # padding
    np.save(folder / "labels.npy", labels)
    total = np.float32((labels != IGNORE).sum())
    shape = (rows, classes)
    logits = np.lib.format.open_memmap(folder / "logits.npy", mode="w+", dtype=np.float32, shape=shape)
    grads = {
        answer: np.lib.format.open_memmap(folder / f"{answer}.npy", mode="w+", dtype=np.float32, shape=shape)
        for answer in answers
    }
    for start in range(0, rows, BLOCK_ROWS):
        z = (3 * rng.standard_normal((min(BLOCK_ROWS, rows - start), classes))).astype(np.float32)
        y = labels[start : start + len(z)]
        logits[start : start + len(z)] = z
        for answer, grad in grads.items():
            grad[start : start + len(z)] = answer_gradient(answer, z, y, total)
    for array in (logits, *grads.values()):
        array.flush()


def run(command: list[str]) -> tuple[float, float, int, str]:
    """Wall seconds, CPU seconds (user + system, every thread, from os.wait4), exit status and stdout of a child."""
    began = time.perf_counter()
    env = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}
    env.update(NO_COLOR="1", COLUMNS="200")
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert child.stdout is not None and child.stderr is not None
    out, err = child.stdout.read(), child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - began
    if err.strip():
        print(err, file=sys.stderr)
    return wall, usage.ru_utime + usage.ru_stime, os.waitstatus_to_exitcode(status), out


def warm(paths: list[Path]) -> None:
    for path in paths:
        with open(path, "rb") as handle:
            while handle.read(1 << 24):
                pass


def bench_shape(folder: Path, rows: int, classes: int, answers: list[str], rounds: int) -> list[str]:
    """Every answer of one shape, both ways, --rounds times alternately; the table's lines."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / "logits.npy", folder / "labels.npy", *(folder / f"{a}.npy" for a in answers)]
    fresh = paths[0].exists() and np.load(paths[0], mmap_mode="r").shape == (rows, classes)
    if not (fresh and all(p.exists() for p in paths)):
        here = str(Path(__file__).resolve().parent)
        code = f"import sys; sys.path.insert(0, {here!r}); import check_arrays_mistakes as b; "
        code += f"b.generate(b.Path({str(folder)!r}), {rows}, {classes}, {answers!r})"
        subprocess.run([sys.executable, "-c", code], check=True)
    warm(paths)
    lines = []
    for answer in answers:
        args = ["check", "--logits", str(paths[0]), "--labels", str(paths[1])]
        args += ["--grad", str(folder / f"{answer}.npy"), "--reduction", "mean"]
        timed: dict[str, list[tuple[float, float]]] = {"named": [], "not named": []}
        said = None
        for _ in range(rounds):
            for name, command in (
                ("named", [sys.executable, "-m", "sce", *args]),
                ("not named", [sys.executable, "-c", WITHOUT_NAMING, *args]),
            ):
                wall, cpu, code, out = run(command)
                timed[name].append((wall, cpu))
                if name == "named":
                    said = next((line for line in out.splitlines() if line.startswith("mistake")), "no mistake named")
                    verdict = [line for line in out.splitlines() if line.startswith("verdict")]
                    print(f"  {answer:16} named:     {wall:6.2f} s  CPU {cpu:6.2f} s  exit {code}  {said}", flush=True)
                else:
                    same = [line for line in out.splitlines() if line.startswith("verdict")] == verdict
                    assert same, f"the verdicts differ: {out}"
                    print(f"  {answer:16} not named: {wall:6.2f} s  CPU {cpu:6.2f} s  exit {code}", flush=True)
        (wall, cpu), (base_wall, base_cpu) = (
            tuple(statistics.median(t[i] for t in found) for i in range(2)) for found in timed.values()
        )
        lines.append(
            f"| {rows:,} × {classes:,} | {answer} | {said} | {wall:.2f} s | {base_wall:.2f} s | "
            f"{wall / base_wall:.2f}× | {cpu / base_cpu:.2f}× |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", action="append", help="ROWSxCLASSES (repeatable); default 2048x32000 and 64x128000")
    parser.add_argument("--answers", default=",".join(ANSWERS), help="which answers, comma-separated")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each, alternately (the medians are compared)")
    parser.add_argument("--keep", help="write (or reuse) the arrays in this folder instead of a temporary one")
    args = parser.parse_args()
    shapes = [tuple(map(int, s.lower().split("x"))) for s in args.shape or ["2048x32000", "64x128000"]]
    answers = args.answers.split(",")
    unknown = set(answers) - set(ANSWERS)
    if unknown:
        parser.error(f"unknown answers {sorted(unknown)}: choose from {', '.join(ANSWERS)}")
    table = [
        "| N × K | answer | named | median wall, named | median wall, not named | ratio (wall) | ratio (CPU) |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: |",
    ]
    with tempfile.TemporaryDirectory() as temporary:
        for rows, classes in shapes:
            folder = Path(args.keep or temporary) / f"{rows}x{classes}"
            print(f"{rows:,} × {classes:,} float32, {args.rounds} alternating rounds", flush=True)
            table += bench_shape(folder, rows, classes, answers, args.rounds)
    print("\n".join(table))
    print(f"load average {os.getloadavg()[0]:.1f} (1 min), {os.getloadavg()[2]:.1f} (15 min)")


if __name__ == "__main__":
    main()
