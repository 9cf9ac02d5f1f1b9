"""The Dask engine's overhead: `sce batch` over a folder of parts on a local cluster of worker
processes, beside the same command in one process, and the cluster's start-up apart.

    python bench/dask_overhead.py [--parts 8] [--rows 1024] [--classes 32000] [--workers 2]
                                  [--rounds 3] [--format parquet] [--check] [--keep DIR]

The parts (.npz files of float32 logits and labels, 1 row in 8 ignored) are written by a child
process to a temporary folder (or DIR). Each round runs, as whole processes (start-up, imports and
teardown count, as they do for a user), one after another so that a busy moment falls on each:

- local: ``sce batch PARTS -o OUT/ --reduction mean --summary-json S`` (the parts in turn, in one process);
- dask: the same with ``--engine dask --workers N``;
- start-up: a process that starts the same local cluster, connects and closes it (nothing computed).

The table gives each median wall time and the ratio to local, and the dask path's ratio without
its start-up. On a machine of two cores there are no cores to gain: the goal is the dask path within
1.3× of the local one. Every round checks that both write the same bytes (the parts and the summary).
With ``--check``, ``sce check --arrays`` on one dump of all the rows is measured the same way.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

START_UP = """
import sys, time
began = time.perf_counter()
from sce.batch.cluster import cluster_client
with cluster_client(None, int(sys.argv[1])) as client:
    client.submit(sum, [1, 2]).result()
"""


def generate(folder: Path, parts: int, rows: int, classes: int, check: bool) -> None:
    """``parts`` .npz files of ``rows`` rows each; with ``check``, one dump of them all with its
    float32 gradient (of the mean over the counted rows), computed in float64 and rounded."""
    rng = np.random.default_rng(0)
    (folder / "parts").mkdir(parents=True, exist_ok=True)
    everything = []
    for index in range(parts):
        logits = (3 * rng.standard_normal((rows, classes), dtype=np.float32)).astype(np.float32)
        labels = rng.integers(0, classes, rows)
        labels[::8] = -100
        np.savez(folder / "parts" / f"part{index:03d}.npz", logits=logits, labels=labels)
        if check:
            everything.append((logits, labels))
    if check:
        logits = np.concatenate([z for z, _ in everything])
        labels = np.concatenate([y for _, y in everything])
        counted = labels != -100
        step = max(1, (1 << 21) // classes)
        grad = np.empty_like(logits)
        for start in range(0, len(labels), step):
            z = logits[start : start + step].astype(np.float64)
            p = np.exp(z - z.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            y, c = labels[start : start + step], counted[start : start + step]
            p[np.flatnonzero(c), y[c]] -= 1
            p[~c] = 0
            grad[start : start + step] = p / counted.sum()
        np.savez(folder / "dump.npz", logits=logits, labels=labels, grad=grad)


def measure(command: list[str]) -> float:
    """Wall seconds of a child, which must succeed (a wrong answer's exit status 1 is not asked for)."""
    began = time.perf_counter()
    done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - began
    if done.returncode:
        sys.exit(f"{' '.join(command[:8])} … failed ({done.returncode}): {done.stderr}")
    return wall


def same_output(folder: Path) -> None:
    """Both paths' parts and summaries, byte for byte."""
    local, dask = folder / "out_local", folder / "out_dask"
    names = sorted(os.listdir(local))
    if names != sorted(os.listdir(dask)) or filecmp.cmpfiles(local, dask, names, shallow=False)[1:] != ([], []):
        sys.exit("the dask engine wrote other parts than the local one")
    if not filecmp.cmp(folder / "local.json", folder / "dask.json", shallow=False):
        sys.exit("the dask engine wrote another summary than the local one")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", type=int, default=8)
    parser.add_argument("--rows", type=int, default=1024, help="rows per part")
    parser.add_argument("--classes", type=int, default=32_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--format", default="parquet", help="the output parts' format (-f)")
    parser.add_argument("--check", action="store_true", help="also sce check --arrays on one dump of every row")
    parser.add_argument("--keep", help="write (or reuse) the inputs in this folder instead of a temporary one")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(args.keep or temporary)
        folder.mkdir(parents=True, exist_ok=True)
        marker = folder / f"made-{args.parts}x{args.rows}x{args.classes}{'-check' if args.check else ''}"
        if not marker.exists():
            here = str(Path(__file__).resolve().parent)
            code = f"import sys; sys.path.insert(0, {here!r}); import dask_overhead as b; "
            code += f"b.generate(b.Path({str(folder)!r}), {args.parts}, {args.rows}, {args.classes}, {args.check})"
            subprocess.run([sys.executable, "-c", code], check=True)
            marker.touch()
        entries = args.parts * args.rows * args.classes
        size = f"{entries * 4 / 1e9:.2f} GB"
        print(f"{args.parts} parts × {args.rows:,} rows × {args.classes:,} float32 logits ({size}), ", end="")
        print(f"{os.cpu_count()} cores, {args.workers} workers")
        sce = [sys.executable, "-m", "sce"]
        batch = [*sce, "batch", str(folder / "parts"), "-q", "--reduction", "mean", "-f", args.format]
        cluster = ["--engine", "dask", "--workers", str(args.workers)]
        commands = {
            "sce batch (local)": [
                *batch, "-o", f"{folder / 'out_local'}/", "--summary-json", str(folder / "local.json"),
            ],
            "sce batch --engine dask": [
                *batch, "-o", f"{folder / 'out_dask'}/", "--summary-json", str(folder / "dask.json"), *cluster,
            ],
            "cluster start-up alone": [sys.executable, "-c", START_UP, str(args.workers)],
        }  # fmt: skip
        if args.check:
            dump = ["check", "--arrays", str(folder / "dump.npz"), "--claimed-dtype", "float32", "-f", "json"]
            commands["sce check --arrays (local)"] = [*sce, *dump]
            commands["sce check --arrays --engine dask"] = [*sce, *dump, *cluster]
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.rounds):
            for name, command in commands.items():
                times[name].append(measure(command))
            same_output(folder)
            for output in ("out_local", "out_dask"):
                shutil.rmtree(folder / output)
        medians = {name: statistics.median(found) for name, found in times.items()}
        start_up = medians["cluster start-up alone"]
        print(f"{'command':36} {'median s':>9} {'× local':>8} {'× local, start-up apart':>24}")
        for name, wall in medians.items():
            local = medians["sce check --arrays (local)" if "check" in name else "sce batch (local)"]
            apart = f"{(wall - start_up) / local:23.2f}×" if "dask" in name else ""
            ratio = f"{wall / local:7.2f}×" if "start-up alone" not in name else ""
            print(f"{name:36} {wall:9.2f} {ratio:>8} {apart:>24}")
        print(f"load average after the run: {', '.join(f'{load:.2f}' for load in os.getloadavg())}")


if __name__ == "__main__":
    main()
