"""Wall time of `sce grad 2 3 4 --label 1` as a whole process, beside its baselines.

Runs each command in turn, round after round (so that a busy moment of the
machine hits all of them alike), and prints the median of each as a Markdown
table with its ratio to `python -c "import numpy"`.

    python bench/grad_startup.py [--rounds 21]

The PyTorch row needs torch installed in the same environment (it is not a
dependency of sce: `pip install torch`); without it the row is left out.
"""

from __future__ import annotations

import argparse
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


def commands() -> dict[str, list[str]]:
    python = sys.executable
    sce = shutil.which("sce", path=str(Path(python).parent)) or shutil.which("sce")
    table = {
        "sce grad 2 3 4 --label 1": [sce, "grad", "2", "3", "4", "--label", "1"]
        if sce
        else [python, "-m", "sce_cli", "grad", "2", "3", "4", "--label", "1"],
        'python -c "import numpy"': [python, "-c", "import numpy"],
        "python -c pass (the interpreter alone)": [python, "-c", "pass"],
    }
    if subprocess.run([python, "-c", "import torch"], capture_output=True).returncode == 0:
        table["PyTorch one-liner (F.cross_entropy + backward)"] = [python, "-c", TORCH_ONE_LINER]
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=21)
    args = parser.parse_args()
    table = commands()
    times: dict[str, list[float]] = {name: [] for name in table}
    for argv in table.values():  # warm the file cache once
        subprocess.run(argv, capture_output=True, check=True)
    for _ in range(args.rounds):
        for name, argv in table.items():
            start = time.perf_counter()
            subprocess.run(argv, capture_output=True, check=True)
            times[name].append(time.perf_counter() - start)
    baseline = statistics.median(times['python -c "import numpy"'])
    print(f"median of {args.rounds} rounds, Python {sys.version.split()[0]}\n")
    print("| command | median wall time | ratio to `import numpy` |")
    print("| --- | ---: | ---: |")
    for name, samples in times.items():
        median = statistics.median(samples)
        print(f"| {name} | {median * 1000:.0f} ms | {median / baseline:.2f}× |")


if __name__ == "__main__":
    main()
