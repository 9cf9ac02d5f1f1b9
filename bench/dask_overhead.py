"""The Dask engine's overhead: `sce batch` over a folder of parts on a local cluster of worker
processes, beside the same command in one process, and the cluster's start-up apart.

    python bench/dask_overhead.py [--parts 16] [--rows 1024] [--classes 32000] [--workers 2]
                                  [--rounds 3] [--format parquet] [--check] [--keep DIR]

The parts (.npz files of float32 logits and labels, 1 row in 8 ignored: 2.1 GB by default, enough
rows for one process to take more than 30 s on two cores) are written by a child process to a
temporary folder (or DIR). Each round runs, as whole processes (start-up, imports and teardown
count, as they do for a user), one after another so that a busy moment falls on each, in the
opposite order every other round:

- local: ``sce batch PARTS -o OUT/ --reduction mean --summary-json S`` (the parts in turn, in one process);
- dask: the same with ``--engine dask --workers N``;
- start-up: a process that starts the same local cluster, connects and closes it (nothing computed).

The table gives each median wall time, its CPU time (every process of the run, workers included),
the ratio to local, and the dask path's ratio without its start-up. On a machine of two cores there
are no cores to gain: the goal is the dask path within 1.3× of the local one. Every round checks
that both write the same bytes (the parts and the summary, by their SHA-256). Each output (4.5 times
the input's size in Parquet) is removed once its digest is taken, and the disk is synced before the
next command starts: no run pays for writing back the pages of the one before.
With ``--check``, ``sce check --arrays`` on one dump of all the rows is measured the same way.

With ``--threads``, where one part's time goes instead: the same part scored (as ``sce batch``
scores each part of a folder) in a process of its own and, two at
a time, on the workers of a local cluster, each thread's CPU seconds summed by what it does
(computing: reading, the loss, the exact partial sums and the frames; Parquet encoding: polars'
executors; file writes: polars' I/O threads; the queue to the writer; Dask's event loop).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
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


def measure(command: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of a child and its own children (a cluster's workers), which must
    succeed (a wrong answer's exit status 1 is not asked for)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        sys.exit(f"{' '.join(command[:8])} … failed ({done.returncode}): {done.stderr}")
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def digest_and_remove(folder: Path, name: str) -> dict[str, str]:
    """The SHA-256 of each part of ``out_NAME`` and of ``NAME.json``, the output then removed
    and the disk synced (untimed)."""
    digests: dict[str, str] = {}
    output = folder / f"out_{name}"
    for path in [*sorted(output.iterdir()), folder / f"{name}.json"] if output.exists() else []:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 22):
                digest.update(chunk)
        digests["summary" if path.suffix == ".json" else path.name] = digest.hexdigest()
    shutil.rmtree(output, ignore_errors=True)
    os.sync()
    return digests


THREADS_IN_A_WORKER = """
import sys
import cloudpickle
sys.path.insert(0, sys.argv[1])
import dask_overhead
cloudpickle.register_pickle_by_value(dask_overhead)
from sce.batch.cluster import cluster_client
parts, out = sys.argv[2].split(","), sys.argv[3]
with cluster_client(None, 2) as client:
    client.submit(sum, [1, 2]).result()  # both workers up, before the parts are timed
    futures = [client.submit(dask_overhead.thread_seconds, part, f"{out}-{i}.parquet", pure=False)
               for i, part in enumerate(parts)]
    print(repr([future.result() for future in futures]))
"""
#: polars' threads, by the names it gives them.
KIND_OF_THREAD = {"async-executor-": "Parquet encoding", "tokio-rt-worker": "file writes"}
THREAD_KINDS = ("computing", "Parquet encoding", "file writes", "queue to the writer", "Dask's event loop", "other")


def thread_seconds(part: str, output: str) -> dict[str, float]:
    """One part scored into ``output`` (removed after): each thread's CPU seconds meanwhile,
    summed by kind (:data:`THREAD_KINDS`), and the wall time."""
    import threading

    from sce.batch.loop import score_partition
    from sce.batch.partition import PartOfWhole
    from sce.batch.request import BatchRequest
    from sce.io.arrays import DumpRequest
    from sce.options import LossOptions

    options = LossOptions(reduction="mean")
    request = BatchRequest(part, output, output_format="parquet", options=options, arrays=DumpRequest(part))
    named = {threading.get_native_id(): "computing"}
    loop = getattr(threading.main_thread(), "native_id", None)
    if threading.current_thread() is not threading.main_thread() and loop is not None:
        named[loop] = "Dask's event loop"
    seen: dict[int, tuple[str, float]] = {}
    done = threading.Event()

    def sample() -> None:
        while True:
            for thread in threading.enumerate():
                if thread.name == "sce-batch-writer" and thread.native_id is not None:
                    named[thread.native_id] = "queue to the writer"
            seen.update(_thread_times())
            if done.wait(0.05):
                return

    before = _thread_times()
    sampler = threading.Thread(target=sample)
    sampler.start()
    began = time.perf_counter()
    score_partition(request, PartOfWhole())
    wall = time.perf_counter() - began
    done.set()
    sampler.join()
    seen.update(_thread_times())
    os.remove(output)
    spent = dict.fromkeys(THREAD_KINDS, 0.0) | {"wall": wall}
    for tid, (name, seconds) in seen.items():
        if tid == sampler.native_id:
            continue
        kind = named.get(tid) or KIND_OF_THREAD.get(name, "other")
        spent[kind] += seconds - before.get(tid, (name, 0.0))[1]
    return spent


def _thread_times() -> dict[int, tuple[str, float]]:
    """Each thread of this process: its name and CPU seconds so far (Linux's /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    found = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            stat = Path(f"/proc/self/task/{tid}/stat").read_text()
        except OSError:
            continue  # ended meanwhile
        fields = stat[stat.rindex(")") + 2 :].split()
        found[int(tid)] = (stat[stat.index("(") + 1 : stat.rindex(")")], (int(fields[11]) + int(fields[12])) / ticks)
    return found


def threads(folder: Path, rounds: int) -> None:
    """One part's CPU by thread: in one process, then on two workers side by side (two parts at once)."""
    import ast

    parts = sorted(str(path) for path in (folder / "parts").iterdir())[:2]
    here = str(Path(__file__).resolve().parent)
    alone = f"import sys; sys.path.insert(0, {here!r}); import dask_overhead as b; "
    alone += f"print(repr(b.thread_seconds({parts[0]!r}, {str(folder / 'threads.parquet')!r})))"
    environment = os.environ | dict.fromkeys(("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"), "1")
    runs: dict[str, list[dict[str, float]]] = {"one process": [], "a worker of two": []}
    for _ in range(rounds):
        for name, command in (
            ("one process", [sys.executable, "-c", alone]),
            ("a worker of two", [sys.executable, "-c", THREADS_IN_A_WORKER, here, ",".join(parts), str(folder / "t")]),
        ):
            done = subprocess.run(command, capture_output=True, text=True, check=True, env=environment)
            found = ast.literal_eval(done.stdout.strip().splitlines()[-1])
            runs[name].extend(found if isinstance(found, list) else [found])
    print(f"one part's CPU seconds by thread (median of {rounds} rounds; a worker's: of both workers' parts)")
    print(f"{'thread':24} {'one process':>12} {'a worker of two':>16}")
    for kind in (*THREAD_KINDS, "wall"):
        cells = [statistics.median(run[kind] for run in found) for found in runs.values()]
        print(f"{kind + (' (s)' if kind == 'wall' else ''):24} {cells[0]:12.2f} {cells[1]:16.2f}")
    totals = [statistics.median(sum(run[kind] for kind in THREAD_KINDS) for run in found) for found in runs.values()]
    print(f"{'CPU in all':24} {totals[0]:12.2f} {totals[1]:16.2f}")


def measured(commands: dict[str, list[str]], folder: Path, rounds: int) -> dict[str, list[tuple[float, float]]]:
    """Each command's (wall, CPU) seconds in each round, in the opposite order every other round;
    the two ``sce batch`` outputs of a round compared by their digests."""
    found: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
    os.sync()
    for round_ in range(rounds):
        written: dict[str, dict[str, str]] = {}
        for name, command in list(commands.items())[:: -1 if round_ % 2 else 1]:
            found[name].append(measure(command))
            if name.startswith("sce batch"):
                written[name] = digest_and_remove(folder, "dask" if "dask" in name else "local")
        if written["sce batch (local)"] != written["sce batch --engine dask"]:
            sys.exit("the dask engine wrote other parts, or another summary, than the local one")
    return found


def report(found: dict[str, list[tuple[float, float]]]) -> None:
    medians = {name: statistics.median(wall for wall, _ in runs) for name, runs in found.items()}
    start_up = medians["cluster start-up alone"]
    print(f"{'command':36} {'median s':>9} {'CPU s':>7} {'× local':>8} {'× local, start-up apart':>24}")
    for name, wall in medians.items():
        local = medians["sce check --arrays (local)" if "check" in name else "sce batch (local)"]
        apart = f"{(wall - start_up) / local:23.2f}×" if "dask" in name else ""
        ratio = f"{wall / local:7.2f}×" if "start-up alone" not in name else ""
        cpu = statistics.median(seconds for _, seconds in found[name])
        print(f"{name:36} {wall:9.2f} {cpu:7.1f} {ratio:>8} {apart:>24}")
    pairs = zip(found["sce batch (local)"], found["sce batch --engine dask"])
    print(f"sce batch, dask / local in each round: {', '.join(f'{dask[0] / local[0]:.2f}×' for local, dask in pairs)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", type=int, default=16)
    parser.add_argument("--rows", type=int, default=1024, help="rows per part")
    parser.add_argument("--classes", type=int, default=32_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--format", default="parquet", help="the output parts' format (-f)")
    parser.add_argument("--check", action="store_true", help="also sce check --arrays on one dump of every row")
    parser.add_argument("--threads", action="store_true", help="one part's CPU by thread, in one process and a worker")
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
        if args.rounds < 1:
            return  # the inputs alone (with --keep: written for later runs)
        if args.threads:
            threads(folder, args.rounds)
            return
        report(measured(commands, folder, args.rounds))
        print(f"load average after the run: {', '.join(f'{load:.2f}' for load in os.getloadavg())}")


if __name__ == "__main__":
    main()
