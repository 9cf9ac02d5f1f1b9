"""`sce test` on a class's submissions at once: thirty small files graded into one gradebook,
as a whole process, beside the same command on one submission, in the same rounds.

    python bench/test_submissions.py [--submissions 30] [--rounds 3] [--keep DIR]

The submissions are written to a temporary folder (or DIR), each a learner's `softmax_loss`
in plain numpy: correct (vectorised, and row by row in loops), with the −1 at the label's
index plus one, with the sign flipped, without the 1/N, and one that prints while it
computes, in turn. Each is graded by `sce test` in its own child process (its cases, its
timeout and memory limit), so the time grows with the count; the goal is under a minute for
thirty on a 2-core machine. The ratio to one submission shows what each further one costs.
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

HEAD = "import numpy as np\n\n\ndef softmax_loss(logits, labels):\n"
VECTORISED = """    n = logits.shape[0]
    shifted = logits - logits.max(axis=1, keepdims=True)
    exps = np.exp(shifted)
    sums = exps.sum(axis=1, keepdims=True)
    loss = np.mean(np.log(sums[:, 0]) - shifted[np.arange(n), labels])
    grad = exps / sums
    grad[np.arange(n), LABEL] -= 1
    return SIGN loss, SIGN grad / N
"""
LOOPS = """    n, k = logits.shape
    loss, grad = 0.0, np.zeros_like(logits, dtype=float)
    for i in range(n):
        z = logits[i] - max(logits[i])
        s = sum(np.exp(z[j]) for j in range(k))
        for j in range(k):
            grad[i, j] = (np.exp(z[j]) / s - (j == labels[i])) / n
        loss += (np.log(s) - z[labels[i]]) / n
    return loss, grad
"""
#: Each kind of submission: its body (by the templates above).
KINDS = {
    "correct": VECTORISED.replace("LABEL", "labels").replace("SIGN ", "").replace("/ N", "/ n"),
    "correct_loops": LOOPS,
    "label_plus_one": VECTORISED.replace("LABEL", "(labels + 1) % logits.shape[1]").replace("SIGN ", "")
    .replace("/ N", "/ n"),
    "sign_flipped": VECTORISED.replace("LABEL", "labels").replace("SIGN ", "-").replace("/ N", "/ n"),
    "sum_not_mean": VECTORISED.replace("LABEL", "labels").replace("SIGN ", "").replace(" / N", ""),
    "prints": '    print("shapes", logits.shape, labels.shape)\n'
    + VECTORISED.replace("LABEL", "labels").replace("SIGN ", "").replace("/ N", "/ n"),
}  # fmt: skip


def write_submissions(folder: Path, count: int) -> list[str]:
    """``count`` files, the kinds in turn; their `FILE:softmax_loss` arguments."""
    folder.mkdir(parents=True, exist_ok=True)
    names = list(KINDS)
    found = []
    for number in range(count):
        kind = names[number % len(names)]
        path = folder / f"student_{number + 1:02d}_{kind}.py"
        path.write_text(HEAD + KINDS[kind], encoding="utf-8")
        found.append(f"{path}:softmax_loss")
    return found


def run(command: list[str]) -> tuple[float, float, int, str]:
    """Wall seconds, CPU seconds (user + system of the child and its children), exit status, stdout."""
    began = time.perf_counter()
    env = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}
    env.update(NO_COLOR="1", COLUMNS="200")
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    out, err = child.communicate()
    wall = time.perf_counter() - began
    if err.strip():
        print(err[-2000:], file=sys.stderr)
    return wall, _children_cpu(), child.returncode, out


_SPENT = [0.0]


def _children_cpu() -> float:
    """CPU time of the children reaped since the last call (they include their own children)."""
    times = os.times()
    total = times.children_user + times.children_system
    spent, _SPENT[0] = total - _SPENT[0], total
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--submissions", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3, help="runs of each, alternately (the medians are compared)")
    parser.add_argument("--keep", help="write the submissions in this folder instead of a temporary one")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        submissions = write_submissions(Path(args.keep or temporary), args.submissions)
        sce = [sys.executable, "-m", "sce", "test"]
        _children_cpu()
        timed: dict[str, list[tuple[float, float]]] = {"many": [], "one": []}
        for _ in range(args.rounds):
            for name, picked in (("many", submissions), ("one", submissions[:1])):
                wall, cpu, code, out = run([*sce, *picked])
                timed[name].append((wall, cpu))
                learners = next((line for line in out.splitlines() if line.startswith(("learners", "verdict"))), "")
                print(f"{len(picked):3} submissions: {wall:6.2f} s  CPU {cpu:6.2f} s  exit {code}  {learners}")
        (many, many_cpu), (one, one_cpu) = (
            tuple(statistics.median(t[i] for t in found) for i in range(2)) for found in timed.values()
        )
        count = len(submissions)
        print(f"median, {count} submissions: {many:6.2f} s wall, {many_cpu:6.2f} s CPU (goal: under 60 s)")
        print(f"median, 1 submission:  {one:6.2f} s wall, {one_cpu:6.2f} s CPU")
        print(
            f"ratio {many / one:.1f}× wall for {count}× the submissions; each further one "
            f"{(many - one) / max(count - 1, 1):.2f} s; load average {os.getloadavg()[0]:.1f}"
        )


if __name__ == "__main__":
    main()
