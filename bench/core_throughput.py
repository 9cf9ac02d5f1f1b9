"""The core beside a naive numpy softmax cross-entropy: time and peak memory.

    python bench/core_throughput.py [--rounds 7] [--shapes 1000000x10 1000x100000 4096x32000] [--sce-from DIR]

For each shape a separate child process makes the logits (normal, σ = 3) and
labels once, then times, round after round and alternating which goes first:

- naive numpy: max-shifted softmax, log of the sum, p − one-hot (as an
  in-place subtraction at the labels, not a dense one-hot), / N; returning
  the loss, the probabilities and the gradient, as sce's result holds them;
- sce: ``softmax_cross_entropy(logits, labels, reduction="mean")``.

It prints the median wall time of each and their ratio, and the peak memory
each call allocates beyond its inputs (tracemalloc, which numpy reports its
arrays to; measured in calls of their own, outside the timed rounds).
With ``--sce-from DIR`` the sce measured is the one in DIR (a checkout or
``git archive`` of another commit), to compare before and after.

Goal: sce within 1.3× of naive at 1M × 10 and 1.5× at
1,000 × 100,000, with at most 1.5× its memory.

``--language-model`` measures the language-model options instead: softcap 30 and
z-loss 1e-4 on both sides, on a language model's vocabulary (128,000). At
4,096 × 128,000 one float64 array is 4 GB and the naive side holds six: on a
24 GB machine measure fewer rows (the ratio is per row).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import gc, json, statistics, sys, time, tracemalloc
import numpy as np
import sce
from sce import softmax_cross_entropy

print("sce from", sce.__file__, file=sys.stderr)
n, k, rounds = (int(a) for a in sys.argv[1:4])
language_model = sys.argv[4] == "llm"
CAP, LAMBDA = 30.0, 1e-4  # Gemma 2's cap; PaLM's z-loss weight
rng = np.random.default_rng(0)
z = rng.normal(0.0, 3.0, (n, k))
labels = rng.integers(0, k, n)

def naive(z, labels):
    rows = np.arange(z.shape[0])
    m = z.max(axis=1, keepdims=True)
    e = np.exp(z - m)
    s = e.sum(axis=1, keepdims=True)
    p = e / s
    loss = float(np.mean(np.log(s[:, 0]) - (z[rows, labels] - m[:, 0])))
    g = p.copy()
    g[rows, labels] -= 1
    g /= z.shape[0]
    return loss, p, g

def sce(z, labels):
    return softmax_cross_entropy(z, labels, reduction="mean")

def naive_language_model(z, labels):
    # The same loss with soft-capping and a z-loss, as a fused kernel's reference
    # implementation writes it: a = c·tanh(z/c), lse² weighted by λ, mean over N.
    rows = np.arange(z.shape[0])
    t = np.tanh(z / CAP)
    a = CAP * t
    m = a.max(axis=1, keepdims=True)
    e = np.exp(a - m)
    s = e.sum(axis=1, keepdims=True)
    p = e / s
    lse = m[:, 0] + np.log(s[:, 0])
    loss = float(np.mean(lse - a[rows, labels]) + LAMBDA * np.mean(lse * lse))
    g = p * (1 + 2 * LAMBDA * lse[:, None])
    g[rows, labels] -= 1
    g *= 1 - t * t
    g /= z.shape[0]
    return loss, p, g

def sce_language_model(z, labels):
    return softmax_cross_entropy(z, labels, reduction="mean", softcap=CAP, z_loss=LAMBDA)

if language_model:
    contenders = {"naive numpy": naive_language_model, "sce": sce_language_model}
else:
    contenders = {"naive numpy": naive, "sce": sce}
for f in contenders.values():  # warm up (imports, first-touch of the allocator)
    f(z, labels)
    gc.collect()
times = {name: [] for name in contenders}
for r in range(rounds):
    order = list(contenders) if r % 2 == 0 else list(contenders)[::-1]
    for name in order:
        gc.collect()
        start = time.perf_counter()
        out = contenders[name](z, labels)
        times[name].append(time.perf_counter() - start)
        del out
peaks = {}
for name, f in contenders.items():
    gc.collect()
    tracemalloc.start()
    out = f(z, labels)
    peaks[name] = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    del out
print(json.dumps({"times": times, "peaks": peaks}))
"""


def measure(shape: str, rounds: int, sce_from: str | None, language_model: bool = False) -> dict:
    n, k = (int(x) for x in shape.split("x"))
    # The child runs in the checkout to measure, whose sce then comes first on sys.path.
    checkout = Path(sce_from or Path(__file__).resolve().parent.parent)
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(n), str(k), str(rounds), "llm" if language_model else "plain"],
        capture_output=True,
        text=True,
        check=True,
        cwd=checkout,
    )
    print(done.stderr.strip(), file=sys.stderr)
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--shapes", nargs="+", default=["1000000x10", "1000x100000", "4096x32000"])
    parser.add_argument("--sce-from", help="measure the sce package in this directory instead")
    parser.add_argument(
        "--language-model",
        action="store_true",
        help="both sides with softcap 30 and z-loss 1e-4, e.g. --shapes 512x128000",
    )
    args = parser.parse_args()
    import statistics

    print(f"median of {args.rounds} interleaved rounds; peak memory allocated by the call (tracemalloc)")
    print(f"sce from {args.sce_from or 'this checkout'}\n")
    print("| N × K | naive numpy | sce | time ratio | naive peak | sce peak | memory ratio |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for shape in args.shapes:
        data = measure(shape, args.rounds, args.sce_from, args.language_model)
        naive_t = statistics.median(data["times"]["naive numpy"])
        sce_t = statistics.median(data["times"]["sce"])
        naive_m, sce_m = data["peaks"]["naive numpy"], data["peaks"]["sce"]
        n, k = shape.split("x")
        print(
            f"| {int(n):,} × {int(k):,} | {naive_t * 1000:.0f} ms | {sce_t * 1000:.0f} ms | {sce_t / naive_t:.2f}× "
            f"| {naive_m / 2**20:.0f} MiB | {sce_m / 2**20:.0f} MiB | {sce_m / naive_m:.2f}× |",
            flush=True,
        )


if __name__ == "__main__":
    main()
