"""`sce batch` on generated files, side by side with the pipelines it replaces.

    python bench/batch_throughput.py [--shape 400000x10 --shape 4000x1000] [--rounds 5] [--rss-gb 1]

For each shape (rows × classes; default 400,000 × 10 and 4,000 × 1,000),
generates bench/out/logits-<rows>x<classes>.csv (logits with 6 decimals, as a
model's outputs are usually dumped: about 38 MB for 400,000 × 10) and times,
in turn, round after round, each as a child process (wall time, and CPU time
from os.wait4: on a machine shared with other work the CPU time says more):

- sce batch INPUT -o OUTPUT --quiet (a separate process);
- pandas: read_csv → numpy → sce's core → DataFrame → to_csv, the same work
  (needs pandas, which sce does not depend on: pip install pandas);
- polars, bare: read_csv of the input and write_csv of a frame of the output's
  shape, with no computing at all: the floor for any CSV-to-CSV tool.

Each is timed twice a round: onto a fresh output (removed first), then over the
output the first run left, as users rerun commands; each is compared with polars
bare in the same case.

With --rss-gb G it also writes a file of about G GB (copies of the first
shape's rows) and reports the peak resident memory of sce batch on it.

sce's own modules are byte-compiled first, as installing the package does:
with PYTHONDONTWRITEBYTECODE set, an editable checkout would otherwise
compile its thirty modules from source on every run (20-50 ms).
"""

from __future__ import annotations

import argparse
import compileall
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

OUT = Path(__file__).parent / "out"

PANDAS_PIPELINE = """
import sys, numpy as np, pandas as pd
from sce import softmax_cross_entropy
frame = pd.read_csv(sys.argv[1])
logit_cols = [c for c in frame.columns if c != "label"]
result = softmax_cross_entropy(frame[logit_cols].to_numpy(), frame["label"].to_numpy())
for k, name in enumerate(logit_cols):
    frame["p_" + name] = result.probabilities[:, k]
frame["loss"] = result.losses
for k, name in enumerate(logit_cols):
    frame["grad_" + name] = result.gradient[:, k]
frame.to_csv(sys.argv[2], index=False)
"""

POLARS_BARE = """
import sys, numpy as np, polars as pl
frame = pl.read_csv(sys.argv[1])
k = frame.width - 1
filler = np.random.default_rng(0).random((frame.height, 2 * k + 1))
frame.hstack(pl.DataFrame(filler, schema=[f"c{i}" for i in range(2 * k + 1)])).write_csv(sys.argv[2])
"""


def generate(rows: int, classes: int, path: Path, copies: int = 1) -> Path:
    """Write ``copies`` × ``rows`` rows of random logits (6 decimals) and labels."""
    import polars as pl

    if path.exists():
        return path
    rng = np.random.default_rng(20261122)
    logits = np.round(rng.normal(0, 2, (rows, classes)), 6)
    frame = pl.DataFrame(logits, schema=[f"z{k}" for k in range(classes)]).with_columns(
        pl.Series("label", rng.integers(0, classes, rows))
    )
    with open(path, "wb") as handle:
        for copy in range(copies):
            frame.write_csv(handle, include_header=copy == 0)
    return path


def sce_command() -> list[str]:
    found = shutil.which("sce", path=str(Path(sys.executable).parent))
    return [found] if found else [sys.executable, "-m", "sce"]


def timed(argv: list[str]) -> tuple[float, float]:
    """Wall time and CPU time (user + system) of one run."""
    start = time.perf_counter()
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    assert child.stderr is not None
    errors = child.stderr.read()
    child.stderr.close()
    if status != 0:
        raise SystemExit(f"{argv[0]} failed: {errors.decode(errors='replace')}")
    return wall, usage.ru_utime + usage.ru_stime


def peak_rss_mb(argv: list[str]) -> float:
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    if status != 0:
        raise SystemExit(f"{argv[0]} failed")
    return usage.ru_maxrss / 1024


#: How each run finds its output: removed first, or left from the run before (users rerun
#: commands over their outputs): a file system may do more work to replace a file than to create one.
OUTPUT_STATES = ("fresh output", "over an existing output")


def compare(rows: int, classes: int, rounds: int) -> Path:
    source = generate(rows, classes, OUT / f"logits-{rows}x{classes}.csv")
    target = OUT / "scored.csv"
    candidates = {
        "sce batch": [*sce_command(), "batch", str(source), "-o", str(target), "--quiet"],
        "polars bare read + write (no computing)": [sys.executable, "-c", POLARS_BARE, str(source), str(target)],
    }
    try:
        import pandas  # noqa: F401

        candidates["pandas read_csv → numpy → to_csv"] = [
            sys.executable, "-c", PANDAS_PIPELINE, str(source), str(target)
        ]
    except ImportError:
        print("(pandas is not installed: its row is left out)", file=sys.stderr)
    runs = [(name, state) for name in candidates for state in OUTPUT_STATES]
    walls: dict[tuple[str, str], list[float]] = {run: [] for run in runs}
    cpus: dict[tuple[str, str], list[float]] = {run: [] for run in runs}
    for _ in range(rounds):
        for name, argv in candidates.items():
            target.unlink(missing_ok=True)
            for state in OUTPUT_STATES:  # the second run replaces the first one's output
                wall, cpu = timed(argv)
                walls[name, state].append(wall)
                cpus[name, state].append(cpu)
    target.unlink(missing_ok=True)
    size_mb = source.stat().st_size / 1e6
    bare = "polars bare read + write (no computing)"
    print(f"{rows:,} rows × {classes} classes ({size_mb:.0f} MB of CSV), median of {rounds} rounds\n")
    print("| pipeline | output | median wall time (range) | relative to polars bare | median CPU time | relative |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for name, state in runs:
        wall, cpu = statistics.median(walls[name, state]), statistics.median(cpus[name, state])
        spread = f"{min(walls[name, state]):.2f}–{max(walls[name, state]):.2f}"
        relative_wall = wall / statistics.median(walls[bare, state])
        relative_cpu = cpu / statistics.median(cpus[bare, state])
        print(
            f"| {name} | {state} | {wall:.2f} s ({spread}) | {relative_wall:.2f}× | {cpu:.2f} s | {relative_cpu:.2f}× |"
        )
    print()
    return source


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", action="append", help="ROWSxCLASSES (repeatable)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rss-gb", type=float, default=0)
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    compileall.compile_dir(str(Path(__file__).parent.parent / "sce"), quiet=1)
    shapes = [tuple(int(n) for n in shape.split("x")) for shape in args.shape or ["400000x10", "4000x1000"]]
    print(f"load average before: {' '.join(f'{load:.2f}' for load in os.getloadavg())}\n")
    sources = [compare(rows, classes, args.rounds) for rows, classes in shapes]
    print(f"load average after: {' '.join(f'{load:.2f}' for load in os.getloadavg())}")
    if args.rss_gb:
        (rows, classes), source = shapes[0], sources[0]
        copies = max(1, round(args.rss_gb * 1e9 / source.stat().st_size))
        big = generate(rows, classes, OUT / f"logits-{rows}x{classes}x{copies}.csv", copies)
        rss = peak_rss_mb([*sce_command(), "batch", str(big), "-o", "/dev/null", "--quiet"])
        print(f"\nPeak RSS of sce batch on {big.stat().st_size / 1e9:.2f} GB: {rss:.0f} MB")


if __name__ == "__main__":
    main()
