"""The fused linear cross-entropy check against its floor: time and memory, side by side.

    python bench/linear_cross_entropy.py [--sizes 4096x2048x32000 2048x1024x16000] [--rounds 1]
                                         [--modes full quick] [--fraction 1]

For each size N×D×V (float32 hidden states E, classifier C, a bias, labels with 1 row in 16
ignored), a child process builds the inputs and a correct float32 kernel's outputs (loss, dE,
dC, db; not timed), then times one of:

- floor: the three float64 matrix products any exact check must do, as numpy does them on
  float64 copies made beforehand: the logits E·Cᵀ, G·C and Gᵀ·E (G an N×V float64 array);
- full: ``check_linear_cross_entropy(..., mode="full")`` on every output;
- quick: the same with ``mode="quick"``.

Each child reports its wall time, its CPU time (user + system: about twice the wall time when
both cores work) and its peak memory beyond the inputs and outputs: the peak of numpy's and
Python's allocations while it runs (tracemalloc), and the growth of the resident set (RSS)
over what the inputs already held (its peak reset when the timing starts). ``--fraction F``
runs the first N/F rows only (for sizes too large to run whole: the check's time is linear in N), keeping
1/F of what the whole check would keep of its logits between its passes (the same share of them).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

CHILD = r"""
import json, os, sys, time, tracemalloc
import numpy as np

n, d, v, what, fraction = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
rng = np.random.default_rng(0)
hidden = rng.standard_normal((n, d), dtype=np.float32)
classifier = (rng.standard_normal((v, d), dtype=np.float32) / np.float32(np.sqrt(d)))
bias = (rng.standard_normal(v, dtype=np.float32) * np.float32(0.1))
labels = rng.integers(0, v, n)
labels[::16] = -100


def kernel():
    counted = labels != -100
    scale = np.float32(1.0 / counted.sum())
    grad_hidden = np.empty((n, d), np.float32)
    grad_classifier = np.zeros((v, d), np.float32)
    grad_bias = np.zeros(v, np.float32)
    total = 0.0
    step = max(1, (1 << 22) // v)
    for start in range(0, n, step):
        rows = slice(start, min(start + step, n))
        z = hidden[rows] @ classifier.T
        z += bias
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        s = p.sum(axis=1, keepdims=True)
        y = np.where(counted[rows], labels[rows], 0)
        at = np.arange(len(z))
        total += float((np.log(s[:, 0]) - z[at, y])[counted[rows]].sum(dtype=np.float64))
        p /= s
        p[at, y] -= 1
        p[~counted[rows]] = 0
        p *= scale
        grad_hidden[rows] = p @ classifier
        grad_classifier += p.T @ hidden[rows]
        grad_bias += p.sum(axis=0)
    return np.float32(total * float(scale)), grad_hidden, grad_classifier, grad_bias


def rss(field="VmRSS"):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field + ":"))


if what == "floor":
    e64, c64 = hidden.astype(np.float64), classifier.astype(np.float64)
    g = np.empty((n, v))
    outputs = None
else:
    from sce.testing import check_linear_cross_entropy
    import sce.loss.kept_logits as kept_logits
    from sce.loss.linear_cross_entropy import by_classes
    # A fraction of the rows keeps the share of their logits all of them would.
    whole = kept_logits.capacity(n * fraction, d, v, not by_classes(n * fraction, d, 6)) * 6
    kept_logits.KEPT_BYTES = whole // fraction
    outputs = kernel()
before = rss()
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # the peak resident set starts again from here: the kernel's own peak is not counted
tracemalloc.start()
cpu0, wall0 = time.process_time(), time.perf_counter()
if what == "floor":
    np.matmul(e64, c64.T, out=g)
    grad_hidden = g @ c64
    grad_classifier = g.T @ e64
    passed = None
else:
    loss, grad_hidden, grad_classifier, grad_bias = outputs
    report = check_linear_cross_entropy(
        hidden, classifier, labels, bias=bias, loss=loss, grad_hidden=grad_hidden,
        grad_classifier=grad_classifier, grad_bias=grad_bias, mode=what,
    )
    passed = report.passed
wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
_, traced = tracemalloc.get_traced_memory()
peak_rss = rss("VmHWM")
print(json.dumps({"wall": wall, "cpu": cpu, "traced": traced, "rss": max(0, peak_rss - before), "passed": passed}))
"""


def measure(n: int, d: int, v: int, what: str, fraction: int = 1) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(n), str(d), str(v), what, str(fraction)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode:
        raise SystemExit(f"{what} at {n}x{d}x{v} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["4096x2048x32000", "2048x1024x16000"], help="N×D×V")
    parser.add_argument("--modes", nargs="+", default=["full", "quick"], choices=["full", "quick"])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--fraction", type=int, default=1, help="run N/F rows (times scale linearly in N)")
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f}; rounds {args.rounds}; fraction 1/{args.fraction}")
    print("| N×D×V | run | wall (median) | × floor | CPU / wall | peak traced beyond inputs | RSS growth | passed |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for size in args.sizes:
        n, d, v = (int(x) for x in size.lower().split("x"))
        n //= args.fraction
        runs: dict[str, list[dict]] = {what: [] for what in ["floor", *args.modes]}
        for _ in range(args.rounds):
            for what in runs:
                runs[what].append(measure(n, d, v, what, args.fraction))
        floor = statistics.median(r["wall"] for r in runs["floor"])
        for what, found in runs.items():
            wall = statistics.median(r["wall"] for r in found)
            cpu = statistics.median(r["cpu"] / r["wall"] for r in found)
            traced = max(r["traced"] for r in found) / 2**20
            grown = max(r["rss"] for r in found) / 2**20
            passed = found[0]["passed"]
            print(
                f"| {n}×{d}×{v} | {what} | {wall:.2f} s | {wall / floor:.2f}× | {cpu:.2f} | {traced:.0f} MiB "
                f"| {grown:.0f} MiB | {'' if passed is None else passed} |",
                flush=True,
            )
    print(f"finished at load average {os.getloadavg()[0]:.1f}; {time.strftime('%H:%M')}")


if __name__ == "__main__":
    main()
