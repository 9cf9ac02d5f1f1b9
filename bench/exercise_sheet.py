"""Wall time, CPU time and size of a large worksheet as a printable page, beside the same sheet in Markdown.

    python bench/exercise_sheet.py [--rounds 3] [--count 1000] [--classes 10] [--compare OTHER_VENV/bin/python]

Runs, round after round and in turn (a busy moment of the machine falls on both alike), as whole processes:

- `sce exercise --count N --classes K --blanks --choices --seed 1 -o sheet.html` (the page: every formula
  as MathML);
- the same with `-o sheet.md`, the baseline: the same exercises, derivations and choices, written as Markdown.

It prints a Markdown table of the median wall and CPU time (user + system) of each, the page's size, and the
ratios of the page to the Markdown sheet. With --compare, the same two rows for the sce installed beside another
Python (a release, or main) in the same rounds.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def sce_of(python: str) -> list[str]:
    found = shutil.which("sce", path=str(Path(python).parent))
    return [found] if found else [python, "-m", "sce"]


def run(command: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of one whole process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env={**os.environ, "NO_COLOR": "1"})
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--compare", help="another environment's Python, whose sce runs in the same rounds")
    arguments = parser.parse_args()
    pythons = {"": sys.executable} | ({" (compared)": arguments.compare} if arguments.compare else {})
    options = ["--count", str(arguments.count), "--classes", str(arguments.classes), "--blanks", "--choices"]
    with tempfile.TemporaryDirectory() as folder:
        rows: dict[str, list[list[str]]] = {}
        for name, python in pythons.items():
            for kind in ("html", "md"):
                sheet = os.path.join(folder, f"sheet{len(rows)}.{kind}")
                key = os.path.join(folder, f"key{len(rows)}.csv")
                command = [*sce_of(python), "exercise", *options, "--seed", "1", "-o", sheet, "--answers", key]
                rows[f"{kind}{name}"] = [command, [sheet]]
        times: dict[str, list[tuple[float, float]]] = {label: [] for label in rows}
        for _ in range(arguments.rounds):
            for label, (command, _sheet) in rows.items():
                times[label].append(run(command))
        sizes = {label: os.path.getsize(sheet[0]) for label, (_command, sheet) in rows.items()}
    print(f"{arguments.count} exercises of {arguments.classes} classes, --blanks --choices; "
          f"median of {arguments.rounds} rounds, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}\n")
    print("| sheet | wall s | CPU s | size MB | wall / Markdown's | CPU / Markdown's | size / Markdown's |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for label in rows:
        wall = statistics.median(t[0] for t in times[label])
        cpu = statistics.median(t[1] for t in times[label])
        baseline = "md" + label.removeprefix("html").removeprefix("md")
        base_wall = statistics.median(t[0] for t in times[baseline])
        base_cpu = statistics.median(t[1] for t in times[baseline])
        print(
            f"| {label} | {wall:.2f} | {cpu:.2f} | {sizes[label] / 1e6:.1f} | {wall / base_wall:.2f} "
            f"| {cpu / base_cpu:.2f} | {sizes[label] / sizes[baseline]:.2f} |"
        )


if __name__ == "__main__":
    main()
