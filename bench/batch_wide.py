"""`sce batch` on rows of many columns: wall time and peak memory.

    python bench/batch_wide.py [--rounds 1] [--source DIR]

Generates bench/out/wide-<rows>x<classes>.csv (logits with 6 decimals and a
label) for 3 × 100,000, 20 × 100,000 and 1,000 × 10,000 and runs
`python -m sce batch FILE -o OUT --quiet` on each, as a child process of
its own: its wall time and its peak resident memory (os.wait4's ru_maxrss).
A tiny file gives the floor (the interpreter, numpy and polars). --source DIR
runs the sce of another checkout (e.g. a git worktree of an older
commit), to compare before and after.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

OUT = Path(__file__).parent / "out"
SHAPES = [(3, 100_000), (20, 100_000), (1_000, 10_000)]


def generate(rows: int, classes: int) -> Path:
    path = OUT / f"wide-{rows}x{classes}.csv"
    if path.exists():
        return path
    rng = np.random.default_rng(20261124)
    with open(path, "w") as handle:
        handle.write(",".join([*(f"z{k}" for k in range(classes)), "label"]) + "\n")
        for _ in range(rows):
            logits = np.round(rng.normal(0, 2, classes), 6)
            handle.write(",".join(map(repr, logits.tolist())) + f",{rng.integers(0, classes)}\n")
    return path


def run(source: Path, env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and peak RSS in MB of one `sce batch` child."""
    argv = [sys.executable, "-m", "sce", "batch", str(source), "-o", str(OUT / "wide-out.csv"), "--quiet"]
    start = time.perf_counter()
    # Run from bench/out: `python -m` puts the working folder first on the path.
    child = subprocess.Popen(argv, env=env, cwd=OUT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"sce batch failed on {source}: {child.stderr.read().decode() if child.stderr else ''}")
    return seconds, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--source", help="a checkout whose sce to run instead of the installed one")
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    env = dict(os.environ)
    if args.source:
        env["PYTHONPATH"] = str(Path(args.source).resolve())
    tiny = OUT / "wide-tiny.csv"
    tiny.write_text("z0,z1,label\n1,2,1\n")
    print("| input | size | median wall time | peak RSS |")
    print("| --- | ---: | ---: | ---: |")
    for label, source in [("tiny (the floor)", tiny), *((f"{r:,} × {k:,}", generate(r, k)) for r, k in SHAPES)]:
        results = [run(source, env) for _ in range(args.rounds)]
        seconds = statistics.median(s for s, _ in results)
        rss = max(m for _, m in results)
        size = source.stat().st_size / 1e6
        print(f"| {label} | {size:.1f} MB | {seconds:.2f} s | {rss:.0f} MB |", flush=True)


if __name__ == "__main__":
    main()
