"""`sce batch` on generated files, side by side with the pipelines it replaces.

    python bench/batch_throughput.py [--rows 1000000] [--classes 10] [--rounds 3] [--rss-gb 1]

Generates bench/out/logits-<rows>x<classes>.csv (logits with 6 decimals, as a
model's outputs are usually dumped: about 97 MB for 1M × 10) and times, in
turn, round after round:

- sce batch INPUT -o OUTPUT --quiet (a separate process);
- pandas: read_csv → numpy → sce's core → DataFrame → to_csv, the same work
  (needs pandas, which sce does not depend on: pip install pandas);
- polars, bare: read_csv of the input and write_csv of a frame of the output's
  shape, with no computing at all: the floor for any CSV-to-CSV tool.

With --rss-gb G it also writes a file of about G GB and reports the peak
resident memory of sce batch on it.
"""

from __future__ import annotations

import argparse
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
from sce_cli import softmax_cross_entropy
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
    return [found] if found else [sys.executable, "-m", "sce_cli"]


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True)
    return time.perf_counter() - start


def peak_rss_mb(argv: list[str]) -> float:
    probe = (
        "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, capture_output=True); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    out = subprocess.run([sys.executable, "-c", probe, *argv], check=True, capture_output=True, text=True)
    return int(out.stdout) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rss-gb", type=float, default=0)
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    source = generate(args.rows, args.classes, OUT / f"logits-{args.rows}x{args.classes}.csv")
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
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(args.rounds):
        for name, argv in candidates.items():
            target.unlink(missing_ok=True)
            times[name].append(timed(argv))
    size_mb = source.stat().st_size / 1e6
    sce = statistics.median(times["sce batch"])
    print(f"{args.rows:,} rows × {args.classes} classes ({size_mb:.0f} MB of CSV), median of {args.rounds} rounds\n")
    print("| pipeline | median wall time | relative to sce batch |")
    print("| --- | ---: | ---: |")
    for name, samples in times.items():
        median = statistics.median(samples)
        print(f"| {name} | {median:.2f} s | {median / sce:.2f}× |")
    if args.rss_gb:
        copies = max(1, round(args.rss_gb * 1e9 / source.stat().st_size))
        big = generate(args.rows, args.classes, OUT / f"logits-{args.rows}x{args.classes}x{copies}.csv", copies)
        rss = peak_rss_mb([*sce_command(), "batch", str(big), "-o", "/dev/null", "--quiet"])
        print(f"\nPeak RSS of sce batch on {big.stat().st_size / 1e9:.2f} GB: {rss:.0f} MB")


if __name__ == "__main__":
    main()
