"""Wall time of `sce grad 2 3 4 --label 1` as a whole process, beside its baselines.

Runs each command in turn, round after round (so that a busy moment of the
machine hits all of them alike), and prints the median wall time and CPU
time (user + system, the process and its threads) of each as a Markdown
table, with the ratio of the wall times to `python -c "import numpy"`.

    python bench/grad_startup.py [--rounds 21] [--compare OTHER_VENV/bin/python]

With --compare, the same rows for the sce installed beside another Python
(say, a release or main) run in the same rounds.

Run it with the Python of an environment where sce is installed with `pip
install .` (not `-e`): an editable install adds an import hook that costs
a few milliseconds. The rows:

- `sce grad 2 3 4 --label 1` into a pipe (the plain renderer), and `sce
  --version` (the group alone: typer, no numpy);
- `import numpy`, the floor of any numpy program (the ratios' baseline),
  and `import numpy, typer`, the floor of a typer command line on numpy:
  what typer costs is the difference between the two; both again with one
  BLAS thread (`OPENBLAS_NUM_THREADS=1`, as sce sets it), the floors sce
  itself can reach;
- `import typer` alone, and the interpreter alone;
- the PyTorch one-liner, when torch is installed in the same environment
  (it is not a dependency of sce: `pip install torch`); else left out.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

TORCH_ONE_LINER = (
    "import torch, torch.nn.functional as F; "
    "z = torch.tensor([[2., 3., 4.]], dtype=torch.float64, requires_grad=True); "
    "loss = F.cross_entropy(z, torch.tensor([1])); loss.backward(); "
    "print(loss.item(), z.grad.tolist())"
)
BASELINE = 'python -c "import numpy"'
ONE_THREAD = "OPENBLAS_NUM_THREADS=1"
#: Left out of every command's environment: colour, and the thread counts (sce would keep a user's).
UNSET = ("FORCE_COLOR", "TTY_COMPATIBLE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def sce_of(python: str) -> list[str]:
    found = shutil.which("sce", path=str(Path(python).parent))
    return [found] if found else [python, "-m", "sce"]


def commands(compare: str | None) -> dict[str, list[str]]:
    python = sys.executable
    sce = sce_of(python)
    table = {
        "sce grad 2 3 4 --label 1": [*sce, "grad", "2", "3", "4", "--label", "1"],
        "sce --version": [*sce, "--version"],
        BASELINE: [python, "-c", "import numpy"],
        'python -c "import numpy, typer"': [python, "-c", "import numpy, typer"],
        f'{ONE_THREAD} python -c "import numpy"': [ONE_THREAD, python, "-c", "import numpy"],
        f'{ONE_THREAD} python -c "import numpy, typer"': [ONE_THREAD, python, "-c", "import numpy, typer"],
        'python -c "import typer"': [python, "-c", "import typer"],
        "python -c pass (the interpreter alone)": [python, "-c", "pass"],
    }
    if compare:
        table = {
            "sce grad 2 3 4 --label 1 (--compare)": [*sce_of(compare), "grad", "2", "3", "4", "--label", "1"],
            "sce --version (--compare)": [*sce_of(compare), "--version"],
            **table,
        }
    if subprocess.run([python, "-c", "import torch"], capture_output=True).returncode == 0:
        table["PyTorch one-liner (F.cross_entropy + backward)"] = [python, "-c", TORCH_ONE_LINER]
    return table


def run(argv: list[str]) -> tuple[float, float]:
    """Wall time and CPU time (user + system) of one run, in seconds."""
    env = {k: v for k, v in os.environ.items() if k not in UNSET}
    while "=" in argv[0]:  # NAME=value before the command, as in a shell
        name, _, value = argv[0].partition("=")
        env[name] = value
        argv = argv[1:]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    process.communicate()
    wall = time.perf_counter() - start
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited with status {process.returncode}")
    # Popen has waited for the child: its CPU time is now in RUSAGE_CHILDREN.
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--compare", metavar="PYTHON", help="also time the sce installed beside this Python")
    args = parser.parse_args()
    table = commands(args.compare)
    walls: dict[str, list[float]] = {name: [] for name in table}
    cpus: dict[str, list[float]] = {name: [] for name in table}
    for argv in table.values():  # warm the file cache once
        run(argv)
    for _ in range(args.rounds):
        for name, argv in table.items():
            wall, cpu = run(argv)
            walls[name].append(wall)
            cpus[name].append(cpu)
    baseline = statistics.median(walls[BASELINE])
    print(f"median of {args.rounds} rounds, Python {sys.version.split()[0]}, {os.cpu_count()} cores\n")
    print("| command | median wall time | ratio to `import numpy` | median CPU time |")
    print("| --- | ---: | ---: | ---: |")
    for name in table:
        wall, cpu = statistics.median(walls[name]), statistics.median(cpus[name])
        print(f"| {name} | {wall * 1000:.0f} ms | {wall / baseline:.2f}× | {cpu * 1000:.0f} ms |")


if __name__ == "__main__":
    main()
