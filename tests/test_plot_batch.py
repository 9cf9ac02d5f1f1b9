"""`sce batch --plot`: the losses' histogram and the gradient's heat map read back from the SVG against mpmath,
the rows kept in bounded memory, what is shown beyond a few hundred rows said in one line, refusals before the run."""

from __future__ import annotations

import base64
import io
import os
import subprocess
import sys

import mpmath
import numpy as np
import pytest

from sce import softmax_cross_entropy
from sce.batch.picture_rows import PictureRows
from tests.svg_reading import SVG, XLINK_HREF, axes_holding, groups, parse_svg, path_points, scale

matplotlib = pytest.importorskip("matplotlib", reason="the plot extra (pip install 'sce[plot]') draws the pictures")

mpmath.mp.dps = 50

# The rows of the samples' batch.csv; the last is ignored (-100).
ROWS = [([2, 3, 4], 1), ([0, 40, -1], 1), ([1.5, -0.5, 0.25], 0), ([-1, 2, 0.5], -100)]


def exact_row(logits, label):
    total = mpmath.fsum(mpmath.exp(mpmath.mpf(z)) for z in logits)
    p = [mpmath.exp(mpmath.mpf(z)) / total for z in logits]
    if label == -100:
        return mpmath.mpf(0), [mpmath.mpf(0)] * len(logits)
    return -mpmath.log(p[label]), [p[k] - (1 if k == label else 0) for k in range(len(logits))]


def heat_map_pixels(root) -> np.ndarray:
    image = next(im for im in root.iter(f"{SVG}image") if im.get("id") == "gradient-heat-map")
    data = base64.b64decode(image.get(XLINK_HREF).split(",", 1)[1])
    return matplotlib.image.imread(io.BytesIO(data), format="png")


def test_the_heat_map_holds_each_rows_gradient_in_its_colour(sce, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sce("samples", ".")
    result = sce("batch", "batch.csv", "-o", "out.csv", "--plot", "batch.svg", "-q")
    assert result.exit_code == 0, result.stderr
    pixels = heat_map_pixels(parse_svg((tmp_path / "batch.svg").read_bytes()))
    assert pixels.shape[:2] == (4, 3)
    gradients = [[float(g) for g in exact_row(z, y)[1]] for z, y in ROWS]
    reach = max(abs(g) for row in gradients for g in row)
    colours = matplotlib.colormaps["RdBu_r"]
    for r, row in enumerate(gradients):
        for k, g in enumerate(row):
            expected = colours((g + reach) / (2 * reach))[:3]
            assert pixels[r, k, :3] == pytest.approx(expected, abs=3 / 255), (r, k)
    assert pixels[0, 1, 2] > pixels[0, 1, 0]  # the label's entry of row 0 is blue: descent raises it


def test_the_histogram_counts_every_counted_row_and_marks_their_mean(sce, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sce("samples", ".")
    result = sce("batch", "batch.csv", "-o", "out.csv", "--plot", "batch.svg", "-q")
    assert result.exit_code == 0, result.stderr
    root = parse_svg((tmp_path / "batch.svg").read_bytes())
    found = groups(root)
    y_of = scale(axes_holding(root, "loss-mean"), "y")
    x_of = scale(axes_holding(root, "loss-mean"), "x")
    counts = [float(y_of(path_points(found[gid])[2][1])) for gid in found if gid.startswith("loss-bin-")]
    assert sum(counts) == pytest.approx(3.0, abs=1e-4)  # the ignored row is not drawn
    losses = [exact_row(z, y)[0] for z, y in ROWS[:3]]
    mean = float(mpmath.fsum(losses) / 3)
    assert float(x_of(path_points(found["loss-mean"])[0][0])) == pytest.approx(mean, abs=1e-4)


def test_beyond_a_few_hundred_rows_the_heat_map_shows_the_first_and_says_so(sce, tmp_path):
    rng = np.random.default_rng(5)
    logits = rng.normal(size=(1000, 4))
    labels = rng.integers(0, 4, size=1000)
    source = tmp_path / "big.csv"
    lines = ["z0,z1,z2,z3,label", *(",".join([*map(repr, row.tolist()), str(y)]) for row, y in zip(logits, labels))]
    source.write_text("\n".join(lines) + "\n")
    picture = tmp_path / "big.svg"
    result = sce("batch", source, "-o", tmp_path / "out.csv", "--plot", picture, "-q")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == "sce: warning: --plot: the heat map shows the first 300 of 1,000 rows\n"
    root = parse_svg(picture.read_bytes())
    assert heat_map_pixels(root).shape[:2] == (300, 4)
    found = groups(root)
    y_of = scale(axes_holding(root, "loss-mean"), "y")
    counts = [float(y_of(path_points(found[gid])[2][1])) for gid in found if gid.startswith("loss-bin-")]
    assert sum(counts) == pytest.approx(1000, abs=1e-3)  # the histogram: every row


def test_the_rows_kept_are_evenly_spaced_beyond_the_limit_and_bounded():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(1003, 5))
    labels = rng.integers(0, 5, size=1003)
    labels[::7] = -100
    kept = PictureRows(loss_limit=100, heat_map_rows=10, heat_map_classes=3)
    for start in range(0, 1003, 64):
        kept.add(softmax_cross_entropy(logits[start:start + 64], labels[start:start + 64], reduction="none"))
    whole = softmax_cross_entropy(logits, labels, reduction="none")
    counted = whole.losses[whole.counted]
    assert kept.stride == 16 and 50 <= kept.losses().size <= 100
    assert np.array_equal(kept.losses(), counted[:: kept.stride])
    assert np.array_equal(kept.gradient, whole.gradient[:10, :3])
    assert (kept.rows, kept.ignored, kept.classes) == (1003, 144, 5)


def test_many_classes_and_a_sample_of_losses_are_said_in_one_line():
    from sce.render.plot_batch import batch_plot_note

    kept = PictureRows(loss_limit=10)
    kept.add(softmax_cross_entropy(np.zeros((40, 500)), np.zeros(40, dtype=int), reduction="none"))
    assert batch_plot_note(kept) == (
        "--plot: classes 0 to 199 of 500; the losses' histogram every 4th counted row (10 rows)"
    )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["-o", "out.svg", "--plot", "out.svg"], "sce: error: --plot: out.svg is the output's file; draw the picture elsewhere\n"),
        (["-o", "out.csv", "--summary-json", "s.svg", "--plot", "s.svg"],
         "sce: error: --plot: s.svg is the summary's file; draw the picture elsewhere\n"),
        (["-o", "out.csv", "--plot", "batch.csv"],
         "sce: error: --plot: batch.csv is not a picture's file name: end it in .svg or .png, e.g. plot.svg\n"),
        (["-o", "out.csv", "--plot", "no/folder/b.svg"],
         "sce: error: --plot: the folder {tmp}/no/folder does not exist; create it, or write the picture elsewhere\n"),
    ],
)
def test_a_picture_file_that_cannot_be_is_refused_before_the_run(sce, tmp_path, monkeypatch, extra, message):
    monkeypatch.chdir(tmp_path)
    sce("samples", ".")
    before = sorted(p.name for p in tmp_path.iterdir())
    result = sce("batch", "batch.csv", *extra)
    assert result.stderr == message.format(tmp=os.path.realpath(tmp_path))
    assert result.exit_code in (1, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no output begun either


def test_a_failed_run_keeps_the_old_picture(sce, tmp_path):
    source = tmp_path / "bad.csv"
    source.write_text("z0,z1,label\n1,2,0\n1,x,1\n")
    old = tmp_path / "b.svg"
    old.write_bytes(b"yesterday's")
    result = sce("batch", source, "-o", tmp_path / "out.csv", "--plot", old, "-q")
    assert result.exit_code == 1
    assert old.read_bytes() == b"yesterday's"


def test_batch_draws_the_same_bytes_twice_and_loads_matplotlib_only_for_a_picture(tmp_path):
    env = {**os.environ, "NO_COLOR": "1"}
    run = [sys.executable, "-m", "sce"]
    subprocess.run([*run, "samples", "."], cwd=tmp_path, env=env, check=True, capture_output=True)
    pictures = []
    for seed in ("3", "4"):
        subprocess.run([*run, "batch", "batch.csv", "-o", "o.csv", "--plot", "b.png", "-q"], cwd=tmp_path,
                       env={**env, "PYTHONHASHSEED": seed}, check=True, capture_output=True)
        pictures.append((tmp_path / "b.png").read_bytes())
    assert pictures[0] == pictures[1]
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "sce", "batch", "batch.csv", "-o", "o.csv", "-q"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    assert "matplotlib" not in done.stderr


def test_losses_beyond_a_pictures_axes_are_counted_not_drawn(sce, tmp_path):
    source = tmp_path / "far.csv"
    source.write_text("z0,z1,label\n0,1.7e308,0\n0,1.7e308,0\n1,2,1\n0,-inf,1\n")
    picture = tmp_path / "far.svg"
    result = sce("batch", source, "-o", tmp_path / "out.csv", "--plot", picture, "-q")
    assert result.exit_code == 0
    assert result.stderr == "sce: warning: 1 row has an infinite loss (a target class with probability 0)\n"
    root = parse_svg(picture.read_bytes())
    found = groups(root)
    y_of = scale(axes_holding(root, "loss-mean"), "y")
    x_of = scale(axes_holding(root, "loss-mean"), "x")
    counts = [float(y_of(path_points(found[gid])[2][1])) for gid in found if gid.startswith("loss-bin-")]
    assert sum(counts) == pytest.approx(1.0, abs=1e-4)  # only the row 1,2 → label 1: loss log(1 + e^-1)
    assert float(x_of(path_points(found["loss-mean"])[0][0])) == pytest.approx(float(mpmath.log1p(mpmath.e**-1)), abs=1e-4)
