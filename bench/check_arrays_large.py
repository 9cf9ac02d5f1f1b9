"""`sce check` on a large memory-mapped float32 dump: wall time, peak memory, and the ratio
to a plain numpy float64 loss and gradient of the same arrays.

    python bench/check_arrays_large.py [--rows 2048] [--classes 128000] [--keep DIR] [--rounds 5]

--rows 8192 is a language model's batch, 8,192 × 128,000 (4 GB of logits and 4 GB of
gradient; needs about 8.5 GB of disk). The arrays are written to a temporary
folder (or DIR), block by block, with the gradient of a plain float32 numpy
computation (a correct answer). Each measurement runs in a child process whose
peak resident memory comes from os.wait4 (the arrays are written by a child too:
Linux hands a parent's peak down to the children it forks, and writing 2 GB
through a memory map makes that peak 2 GB); the files are read once
beforehand so that both children find them in the page cache. The two are run
--rounds times, alternately (the machine's other work then falls on both alike), and
the ratio is that of the medians.
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

#: The comparison: what someone would write in numpy, in blocks of rows (a whole 4 GB float32
#: array in float64 is 8 GB per intermediate), loss and gradient of the mean over counted rows.
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
    loss += (np.log(s[rows, 0]) - shifted[rows, y[c]]).sum()
    grad = e / s
    grad[rows, y[c]] -= 1
    grad[~c] = 0
    grad /= total
print(loss / total)
"""


def generate(folder: Path, rows: int, classes: int) -> None:
    rng = np.random.default_rng(0)
    paths = folder / "logits.npy", folder / "labels.npy", folder / "grad.npy"
    labels = rng.integers(0, classes, rows)
    labels[::8] = IGNORE  # padding
    np.save(paths[1], labels)
    total = np.float32((labels != IGNORE).sum())
    logits = np.lib.format.open_memmap(paths[0], mode="w+", dtype=np.float32, shape=(rows, classes))
    grad = np.lib.format.open_memmap(paths[2], mode="w+", dtype=np.float32, shape=(rows, classes))
    for start in range(0, rows, BLOCK_ROWS):
        z = (3 * rng.standard_normal((min(BLOCK_ROWS, rows - start), classes))).astype(np.float32)
        y = labels[start : start + len(z)]
        e = np.exp(z - z.max(axis=1, keepdims=True))
        g = e / e.sum(axis=1, keepdims=True)
        c = y != IGNORE
        g[np.flatnonzero(c), y[c]] -= 1
        g[~c] = 0
        logits[start : start + len(z)] = z
        grad[start : start + len(z)] = g / total
    logits.flush()
    grad.flush()


def measure(command: list[str]) -> tuple[float, float, float, int, str]:
    """Wall seconds, CPU seconds (user + system, every thread), peak resident MB, exit status
    and stdout of a child."""
    began = time.perf_counter()
    # Both children may use compiled bytecode, as an installed tool does (PYTHONDONTWRITEBYTECODE
    # would have sce compile its modules at every start, and numpy's are compiled at install).
    env = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert child.stdout is not None and child.stderr is not None
    out, err = child.stdout.read(), child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - began
    if err.strip():
        print(err, file=sys.stderr)
    cpu = usage.ru_utime + usage.ru_stime
    return wall, cpu, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status), out


def warm(paths: tuple[Path, ...]) -> None:
    for path in paths:
        with open(path, "rb") as handle:
            while handle.read(1 << 24):
                pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2048)
    parser.add_argument("--classes", type=int, default=128_000)
    parser.add_argument("--keep", help="write (or reuse) the arrays in this folder instead of a temporary one")
    parser.add_argument("--rounds", type=int, default=5, help="runs of each, alternately (the medians are compared)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(args.keep or temporary)
        folder.mkdir(parents=True, exist_ok=True)
        existing = [folder / name for name in ("logits.npy", "labels.npy", "grad.npy")]
        shape_ok = existing[0].exists() and np.load(existing[0], mmap_mode="r").shape == (args.rows, args.classes)
        began = time.perf_counter()
        if not shape_ok:
            here = str(Path(__file__).resolve().parent)
            code = f"import sys; sys.path.insert(0, {here!r}); import check_arrays_large as b; "
            code += f"b.generate(b.Path({str(folder)!r}), {args.rows}, {args.classes})"
            subprocess.run([sys.executable, "-c", code], check=True)
        paths = tuple(existing)
        size = sum(p.stat().st_size for p in paths) / 1e9
        print(f"{args.rows:,} × {args.classes:,} float32: {size:.1f} GB of .npy ({time.perf_counter() - began:.0f} s)")
        warm(paths)
        logits, labels, grad = map(str, paths)
        sce = [sys.executable, "-m", "sce", "check", "--logits", logits, "--labels", labels, "--grad", grad]
        entries = args.rows * args.classes
        runs: dict[str, list[tuple[float, float, float]]] = {"sce check": [], "plain numpy f64": []}
        for _ in range(args.rounds):
            wall, cpu, rss, code, out = measure([*sce, "--reduction", "mean"])
            verdict = next((line for line in out.splitlines() if line.startswith("verdict")), out.strip()[-200:])
            print(f"sce check:        {wall:7.2f} s  CPU {cpu:6.2f} s  peak RSS {rss:6.0f} MB  exit {code} ({verdict})")
            runs["sce check"].append((wall, cpu, rss))
            wall, cpu, rss, _, _ = measure([sys.executable, "-c", PLAIN_NUMPY, logits, labels])
            print(f"plain numpy f64:  {wall:7.2f} s  CPU {cpu:6.2f} s  peak RSS {rss:6.0f} MB")
            runs["plain numpy f64"].append((wall, cpu, rss))
        medians = {name: [statistics.median(run[i] for run in found) for i in range(3)] for name, found in runs.items()}
        for name, (wall, cpu, rss) in medians.items():
            print(
                f"median {name + ':':17} {wall:6.2f} s  {wall / entries * 1e9:5.1f} ns/entry  CPU {cpu:6.2f} s  "
                f"peak RSS {rss:6.0f} MB"
            )
        (wall, cpu, _), (plain_wall, plain_cpu, _) = medians.values()
        print(
            f"ratio of the medians: {wall / plain_wall:.2f}× wall, {cpu / plain_cpu:.2f}× CPU (goal: within 2×); "
            f"peak memory goal: under 1,024 MB; load average {os.getloadavg()[0]:.1f}"
        )


if __name__ == "__main__":
    main()
