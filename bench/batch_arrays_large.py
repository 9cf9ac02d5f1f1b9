"""`sce batch` on a large memory-mapped float32 .npy: wall time and peak memory, beside a
plain numpy float64 pass over the same rows.

    python bench/batch_arrays_large.py [--rows 2048] [--classes 128000] [--rounds 3] [--keep DIR]

The logits (and labels, 1 row in 8 ignored) are written to a temporary folder
(or DIR) by a child process. Each measurement is a child whose peak resident
memory comes from os.wait4; the rounds interleave the commands, and the table
gives each command's median wall time and largest peak:

- plain numpy: max-shifted softmax, loss and gradient of the mean over the
  counted rows in float64, in blocks of rows read through the memory map (what
  one would write by hand), nothing written;
- sce batch to .npz on /dev/null: the same work through sce (exact core,
  streaming, the .npz encoding) without the disk;
- sce batch to a real .npz, .parquet and .csv (files of float64 logits,
  probabilities and gradient: 3 × 8 bytes per entry before compression).
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

PLAIN_NUMPY = """
import sys, numpy as np
logits = np.load(sys.argv[1], mmap_mode="r")
labels = np.load(sys.argv[2])
counted = labels != -100
total = counted.sum()
step = max(1, (1 << 21) // logits.shape[1])
loss = 0.0
for start in range(0, len(labels), step):
    z = np.asarray(logits[start:start + step], dtype=np.float64)
    y = labels[start:start + step]
    c = counted[start:start + step]
    rows = np.flatnonzero(c)
    shifted = z - z.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    s = e.sum(axis=1, keepdims=True)
    losses = np.log(s[:, 0]) - shifted[np.arange(len(y)), np.where(c, y, 0)]
    loss += losses[rows].sum()
    p = e / s
    grad = p.copy()
    grad[rows, y[c]] -= 1
    grad[~c] = 0
    grad /= total
print(loss / total)
"""


def generate(folder: Path, rows: int, classes: int) -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, classes, rows)
    labels[::8] = -100
    np.save(folder / "labels.npy", labels)
    logits = np.lib.format.open_memmap(folder / "logits.npy", mode="w+", dtype=np.float32, shape=(rows, classes))
    step = max(1, (1 << 22) // classes)
    for start in range(0, rows, step):
        block = logits[start : start + step]
        block[:] = 3 * rng.standard_normal(block.shape, dtype=np.float32)
    logits.flush()


def measure(command: list[str]) -> tuple[float, float]:
    """Wall seconds and peak resident MB of a child (which must succeed)."""
    began = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert child.stderr is not None
    err = child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - began
    if os.waitstatus_to_exitcode(status):
        sys.exit(f"{' '.join(command[:6])} … failed: {err}")
    return wall, usage.ru_maxrss / 1024


def warm(paths: list[Path]) -> None:
    for path in paths:
        with open(path, "rb") as handle:
            while handle.read(1 << 24):
                pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2048)
    parser.add_argument("--classes", type=int, default=128_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-csv", action="store_true", help="leave out the CSV output (slow on wide rows)")
    parser.add_argument("--keep", help="write (or reuse) the arrays in this folder instead of a temporary one")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(args.keep or temporary)
        folder.mkdir(parents=True, exist_ok=True)
        logits, labels = folder / "logits.npy", folder / "labels.npy"
        if not (logits.exists() and np.load(logits, mmap_mode="r").shape == (args.rows, args.classes)):
            here = str(Path(__file__).resolve().parent)
            code = f"import sys; sys.path.insert(0, {here!r}); import batch_arrays_large as b; "
            code += f"b.generate(b.Path({str(folder)!r}), {args.rows}, {args.classes})"
            subprocess.run([sys.executable, "-c", code], check=True)
        print(f"{args.rows:,} × {args.classes:,} float32 logits: {logits.stat().st_size / 1e9:.2f} GB")
        sce = [sys.executable, "-m", "sce", "batch", str(logits), "--labels", str(labels), "-q"]
        sce += ["--reduction", "mean"]
        commands = {
            "plain numpy float64 (nothing written)": [sys.executable, "-c", PLAIN_NUMPY, str(logits), str(labels)],
            "sce batch -f npz -o /dev/null": [*sce, "-f", "npz", "-o", os.devnull],
            "sce batch -o out.npz": [*sce, "-o", str(folder / "out.npz")],
            "sce batch -o out.parquet": [*sce, "-o", str(folder / "out.parquet")],
        }
        if not args.no_csv:
            commands["sce batch -o out.csv"] = [*sce, "-o", str(folder / "out.csv")]
        times: dict[str, list[float]] = {name: [] for name in commands}
        peaks: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.rounds):
            for name, command in commands.items():
                warm([logits, labels])
                wall, peak = measure(command)
                times[name].append(wall)
                peaks[name].append(peak)
        plain = statistics.median(times["plain numpy float64 (nothing written)"])
        entries = args.rows * args.classes
        print(f"{'command':40} {'median s':>9} {'ns/entry':>9} {'× numpy':>8} {'peak RSS MB':>12}  output")
        for name in commands:
            wall = statistics.median(times[name])
            output = next((p for p in folder.glob("out.*") if name.endswith(p.name)), None)
            size = f"{output.stat().st_size / 1e9:.2f} GB" if output else ""
            rate = wall / entries * 1e9
            print(f"{name:40} {wall:9.2f} {rate:9.1f} {wall / plain:7.2f}× {max(peaks[name]):12.0f}  {size}")
            if output:
                output.unlink()


if __name__ == "__main__":
    main()
