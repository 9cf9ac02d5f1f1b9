"""How `sce grad`'s outputs grow with the number of classes K.

For K = 10,000, 100,000 and 1,000,000 (logits read with --logits-file), each
output runs as a whole process; the table gives the median wall time and peak
memory (ru_maxrss of the child), and the growth from one K to the next: about
10× per 10× of K is linear, 100× would be quadratic.

    python bench/grad_large_k.py [--rounds 3] [--sizes 10000,100000,1000000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

OUTPUTS = {
    "table": [],
    "json": ["-f", "json"],
    "csv": ["-f", "csv"],
    "markdown": ["-f", "markdown"],
    "--steps": ["--steps"],
    "--jacobian --hessian --verify": ["--jacobian", "--hessian", "--verify"],
    "--jacobian --hessian --verify, json": ["--jacobian", "--hessian", "--verify", "-f", "json"],
}


def run_once(argv: list[str]) -> tuple[float, float]:
    """Wall seconds and peak resident MB of one child process (its own rusage, from wait4)."""
    started = time.perf_counter()
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {child.returncode}")
    return seconds, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    rng = np.random.default_rng(0)
    folder = tempfile.mkdtemp(prefix="sce-bench-")
    results: dict[tuple[str, int], tuple[float, float]] = {}
    for size in sizes:
        path = os.path.join(folder, f"logits-{size}.txt")
        np.savetxt(path, rng.normal(scale=3, size=size)[None, :], fmt="%.6g")
        for name, extra in OUTPUTS.items():
            argv = [sys.executable, "-m", "sce", "grad", "--logits-file", path, "-l", "5", *extra]
            runs = [run_once(argv) for _ in range(args.rounds)]
            results[name, size] = (statistics.median(r[0] for r in runs), max(r[1] for r in runs))
    header = " | ".join(f"K = {size:,}" for size in sizes)
    print(f"| output | {header} | growth per 10× K |")
    print("| --- |" + " ---: |" * (len(sizes) + 1))
    for name in OUTPUTS:
        cells = [f"{results[name, size][0]:.2f} s, {results[name, size][1]:.0f} MB" for size in sizes]
        growth = results[name, sizes[-1]][0] / results[name, sizes[-2]][0] if len(sizes) > 1 else float("nan")
        print(f"| {name} | " + " | ".join(cells) + f" | {growth:.1f}× |")


if __name__ == "__main__":
    main()
