"""`sce grad --plot`: the picture read back from its SVG (bars, the loss curve, the tangent's slope, p over T)
against mpmath; the same bytes from two runs; matplotlib loaded only for a picture; every refusal in one line."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import mpmath
import numpy as np
import pytest

from tests.svg_reading import axes_holding, groups, marker_point, parse_svg, path_points, scale

pytest.importorskip("matplotlib", reason="the plot extra (pip install 'sce[plot]') draws the pictures")

mpmath.mp.dps = 50
SCE = [sys.executable, "-m", "sce"]


def exact_softmax(logits, temperature=1):
    scaled = [mpmath.mpf(z) / temperature for z in logits]
    total = mpmath.fsum(mpmath.exp(b) for b in scaled)
    return [mpmath.exp(b) / total for b in scaled]


def exact_loss(logits, label, temperature=1):
    return -mpmath.log(exact_softmax(logits, temperature)[label])


def bar_value(root, gid: str) -> float:
    """The bar's signed height in data units, read through its axes' y tick labels."""
    points = path_points(groups(root)[gid])
    y_of = scale(axes_holding(root, gid), "y")
    zero, top = float(y_of(points[0][1])), float(y_of(points[2][1]))
    assert abs(zero) < 1e-6, f"{gid} does not start at 0"
    return top


def tangent_slope(root) -> float:
    axes = axes_holding(root, "tangent")
    x_of, y_of = scale(axes, "x"), scale(axes, "y")
    (x1, y1), (x2, y2) = path_points(groups(root)["tangent"])
    return float((y_of(y2) - y_of(y1)) / (x_of(x2) - x_of(x1)))


def draw(sce, tmp_path: Path, *args: str, name: str = "grad.svg"):
    path = tmp_path / name
    result = sce("grad", *args, "--plot", path)
    assert result.exit_code == 0, result.stderr
    return path, result


def test_the_bars_are_the_probabilities_and_the_signed_gradient(sce, tmp_path):
    path, _ = draw(sce, tmp_path, "2", "3", "4", "-l", "1")
    root = parse_svg(path.read_bytes())
    p = exact_softmax([2, 3, 4])
    for k in range(3):
        assert bar_value(root, f"p-bar-{k}") == pytest.approx(float(p[k]), abs=2e-5)
        gradient = float(p[k] - (1 if k == 1 else 0))
        assert bar_value(root, f"gradient-bar-{k}") == pytest.approx(gradient, abs=2e-5)
    # The label's bar is below the zero line (descent raises its logit); the others above it.
    zero_line = path_points(groups(root)["gradient-zero"])[0][1]
    assert path_points(groups(root)["gradient-bar-1"])[2][1] > zero_line
    assert path_points(groups(root)["gradient-bar-2"])[2][1] < zero_line


def test_the_tangent_touches_the_loss_curve_with_the_gradient_as_its_slope(sce, tmp_path):
    path, _ = draw(sce, tmp_path, "2", "3", "4", "-l", "1")
    root = parse_svg(path.read_bytes())
    expected = float(exact_softmax([2, 3, 4])[1] - 1)  # -0.75527153
    assert tangent_slope(root) == pytest.approx(expected, rel=1e-4)
    axes = axes_holding(root, "tangent")
    x_of, y_of = scale(axes, "x"), scale(axes, "y")
    point_x, point_y = marker_point(groups(root)["point"])
    assert float(x_of(point_x)) == pytest.approx(3.0, abs=1e-4)
    assert float(y_of(point_y)) == pytest.approx(float(exact_loss([2, 3, 4], 1)), abs=1e-4)
    # The curve is L with z_1 moved and the others held, point by point.
    curve = path_points(groups(root)["loss-curve"])
    for x, y in curve[:: len(curve) // 9]:
        z1 = mpmath.mpf(float(x_of(x)))
        assert float(y_of(y)) == pytest.approx(float(exact_loss([2, z1, 4], 1)), abs=1e-3)


def test_the_slope_curve_is_p_minus_one_along_the_labels_logit(sce, tmp_path):
    path, _ = draw(sce, tmp_path, "2", "3", "4", "-l", "1")
    root = parse_svg(path.read_bytes())
    axes = axes_holding(root, "slope-curve")
    x_of, y_of = scale(axes, "x"), scale(axes, "y")
    curve = path_points(groups(root)["slope-curve"])
    for x, y in curve[:: len(curve) // 9]:
        z1 = mpmath.mpf(float(x_of(x)))
        assert float(y_of(y)) == pytest.approx(float(exact_softmax([2, z1, 4])[1] - 1), abs=1e-4)


def test_with_a_temperature_the_tangent_slope_is_divided_by_it_and_p_is_drawn_over_temperatures(sce, tmp_path):
    path, _ = draw(sce, tmp_path, "2", "3", "4", "-l", "1", "-T", "2")
    root = parse_svg(path.read_bytes())
    expected = float((exact_softmax([2, 3, 4], 2)[1] - 1) / 2)
    assert tangent_slope(root) == pytest.approx(expected, rel=1e-4)
    sweep_axes = axes_holding(root, "temperature")
    t_of, p_of = scale(sweep_axes, "x", log=True), scale(sweep_axes, "y")
    at = path_points(groups(root)["temperature"])[0][0]
    assert float(t_of(at)) == pytest.approx(2.0, rel=1e-4)
    for k in range(3):
        line = path_points(groups(root)[f"p-of-T-{k}"])
        for x, y in line[:: len(line) // 6]:
            temperature = mpmath.mpf(float(t_of(x)))
            assert float(p_of(y)) == pytest.approx(float(exact_softmax([2, 3, 4], temperature)[k]), abs=1e-4)


def test_without_a_temperature_there_is_no_temperature_panel(sce, tmp_path):
    path, _ = draw(sce, tmp_path, "2", "3", "4", "-l", "1")
    assert "temperature" not in groups(parse_svg(path.read_bytes()))


def test_soft_targets_follow_the_logit_of_the_largest_target(sce, tmp_path):
    path, _ = draw(sce, tmp_path, "2", "3", "4", "-t", "0.1,0.2,0.7")
    expected = float(exact_softmax([2, 3, 4])[2] - mpmath.mpf("0.7"))
    assert tangent_slope(parse_svg(path.read_bytes())) == pytest.approx(expected, rel=1e-4)


def run(*args: str, cwd: Path, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "100", **(extra_env or {})}
    return subprocess.run([*SCE, *args], cwd=cwd, capture_output=True, env=env, check=False, timeout=120)


@pytest.mark.parametrize("name", ["grad.svg", "grad.png"])
def test_the_same_command_gives_the_same_bytes(tmp_path, name):
    pictures = []
    for seed in ("1", "2"):  # another hash seed: nothing may depend on the order of a set
        done = run("grad", "2", "3", "4", "-l", "1", "-T", "2", "--plot", name, cwd=tmp_path,
                   extra_env={"PYTHONHASHSEED": seed})
        assert done.returncode == 0, done.stderr
        pictures.append((tmp_path / name).read_bytes())
    assert pictures[0] == pictures[1]
    if name.endswith(".svg"):
        assert b"<dc:date>" not in pictures[0]
    else:
        assert pictures[0].startswith(b"\x89PNG") and b"tIME" not in pictures[0]


def test_a_user_style_does_not_change_the_picture(tmp_path):
    plain = run("grad", "2", "3", "4", "-l", "1", "--plot", "plain.svg", cwd=tmp_path)
    assert plain.returncode == 0, plain.stderr
    config = tmp_path / "config"
    config.mkdir()
    # Settings that would change the picture, and lines matplotlib complains about: neither reaches the user.
    (config / "matplotlibrc").write_text(
        "lines.linewidth: 7\nfont.size: 20\naxes.facecolor: black\nno.such.key: 1\nlines.markersize: big\n"
    )
    styled = run("grad", "2", "3", "4", "-l", "1", "--plot", "styled.svg", cwd=tmp_path,
                 extra_env={"MPLCONFIGDIR": str(config)})
    assert (styled.returncode, styled.stderr) == (0, b"")
    assert (tmp_path / "plain.svg").read_bytes() == (tmp_path / "styled.svg").read_bytes()


def test_a_backend_matplotlib_refuses_is_one_line(tmp_path):
    done = run("grad", "2", "3", "4", "-l", "1", "--plot", "grad.svg", cwd=tmp_path, extra_env={"MPLBACKEND": "bogus"})
    assert (done.returncode, done.stdout) == (2, b"")
    assert done.stderr.startswith(b"sce: error: matplotlib, which draws the pictures, does not start: ")
    assert done.stderr.endswith(b"; check MPLBACKEND and your matplotlibrc\n") and done.stderr.count(b"\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_grad_without_plot_loads_no_matplotlib(tmp_path):
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "sce", "grad", "2", "3", "4", "-l", "1"],
        capture_output=True, text=True, check=False, cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "matplotlib" not in done.stderr


BLOCK_MATPLOTLIB = """
import sys
class Missing:
    def find_spec(self, name, path=None, target=None):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError(f"No module named {name!r}")
sys.meta_path.insert(0, Missing())
from sce.cli import main
sys.argv = ["sce", *sys.argv[1:]]
main()
"""


def test_without_matplotlib_one_line_names_the_extra_and_nothing_is_written(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", BLOCK_MATPLOTLIB, "grad", "2", "3", "4", "-l", "1", "--plot", "grad.svg"],
        capture_output=True, text=True, check=False, cwd=tmp_path,
    )
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == "sce: error: drawing pictures needs matplotlib: pip install 'sce[plot]'\n"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        (["2", "3", "-l", "0", "--plot", "grad.pdf"], 2,
         "sce: error: --plot: grad.pdf is not a picture's file name: end it in .svg or .png, e.g. plot.svg\n"),
        (["2", "3", "-l", "0", "--plot", ""], 2,
         "sce: error: --plot: an empty name is not a picture's file name: end it in .svg or .png, e.g. plot.svg\n"),
        (["2", "3", "-l", "0", "--plot", "-"], 2,
         "sce: error: --plot: - is not a picture's file name: end it in .svg or .png, e.g. plot.svg\n"),
        (["2", "3", "-l", "0", "--plot", "no/such/folder/grad.svg"], 1,
         "sce: error: --plot: the folder {tmp}/no/such/folder does not exist; create it, or write the picture "
         "elsewhere\n"),
        (["5", "-l", "0", "--plot", "grad.svg"], 2,
         "sce: error: --plot needs 2 classes or more: with 1 class p = 1 and the loss is 0 whatever the logit\n"),
        (["2", "3", "-l", "-100", "--plot", "grad.svg"], 2,
         "sce: error: --plot: label -100 is the ignore index, so the loss is 0 whatever the logits and there is "
         "nothing to draw; give a class index\n"),
        (["2", "3", "nan", "-l", "0", "--plot", "grad.svg"], 2,
         "sce: error: LOGITS (class 2): logit nan is not allowed; logits must be finite numbers or -inf "
         "(a masked class)\n"),
        (["2", "inf", "-l", "0", "--plot", "grad.svg"], 2,
         "sce: error: LOGITS (class 1): logit inf is not allowed; logits must be finite numbers or -inf "
         "(a masked class)\n"),
    ],
)
def test_a_picture_that_cannot_be_drawn_is_one_line_and_no_file(sce, tmp_path, monkeypatch, args, status, message):
    monkeypatch.chdir(tmp_path)
    result = sce("grad", *args)
    assert (result.exit_code, result.stdout) == (status, "")
    assert result.stderr == message.format(tmp=os.path.realpath(tmp_path))
    assert list(tmp_path.iterdir()) == []


def test_a_masked_target_logit_is_refused_after_the_loss_warning(sce, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = sce("grad", "2", "3", "-inf", "-l", "2", "--plot", "grad.svg")
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr.splitlines()[-1] == (
        "sce: error: --plot draws the loss along z_2, the target's logit, which is -inf (a masked class); "
        "give it a value"
    )
    assert list(tmp_path.iterdir()) == []


def test_a_mean_over_a_weight_of_zero_is_refused_after_its_warning(sce, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = sce("grad", "2", "3", "4", "-l", "1", "-w", "1,0,1", "--reduction", "mean", "--plot", "grad.svg")
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr.splitlines()[-1] == (
        "sce: error: --plot: the loss is NaN (a mean over a weight of 0), so there is no curve to draw"
    )
    assert list(tmp_path.iterdir()) == []


def test_a_label_of_weight_zero_draws_a_flat_loss(sce, tmp_path):
    path, _ = draw(sce, tmp_path, "2", "3", "4", "-l", "1", "-w", "1,0,1")
    root = parse_svg(path.read_bytes())
    assert bar_value(root, "gradient-bar-1") == pytest.approx(0.0, abs=1e-6)


def test_a_masked_class_elsewhere_is_drawn_with_p_zero(sce, tmp_path):
    path, _ = draw(sce, tmp_path, "2", "3", "-inf", "-l", "1")
    root = parse_svg(path.read_bytes())
    assert bar_value(root, "p-bar-2") == pytest.approx(0.0, abs=1e-9)
    assert bar_value(root, "p-bar-1") == pytest.approx(float(exact_softmax([2, 3])[1]), abs=2e-5)


def test_a_file_where_the_pictures_folder_should_be_is_refused(sce, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes").write_text("kept")
    result = sce("grad", "2", "3", "-l", "0", "--plot", "notes/grad.svg")
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        f"sce: error: --plot: the folder {os.path.realpath(tmp_path)}/notes is a file, not a folder: write the "
        "picture elsewhere\n"
    )
    assert (tmp_path / "notes").read_text() == "kept"


def test_a_folder_named_like_a_picture_is_refused(sce, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "grad.svg").mkdir()
    result = sce("grad", "2", "3", "-l", "0", "--plot", "grad.svg")
    assert (result.exit_code, result.stderr) == (
        2, "sce: error: --plot: grad.svg is a folder; name a file in it, e.g. grad.svg/plot.svg\n"
    )


def test_the_logits_file_is_never_replaced_by_the_picture(sce, tmp_path):
    logits = tmp_path / "logits.svg"
    logits.write_text("2 3 4\n")
    result = sce("grad", "--logits-file", logits, "-l", "1", "--plot", logits)
    assert result.exit_code == 2
    assert "is the input file" in result.stderr
    assert logits.read_text() == "2 3 4\n"


def test_a_failed_write_keeps_the_existing_picture_and_leaves_no_temporary_file(sce, tmp_path, monkeypatch):
    import sce.batch.loop as batch_loop

    old = tmp_path / "grad.svg"
    old.write_bytes(b"the picture of yesterday")

    def full_disk(target, text):
        raise target.write_failure(OSError(errno.ENOSPC, "No space left on device"))

    monkeypatch.setattr(batch_loop, "write_text", full_disk)
    result = sce("grad", "2", "3", "4", "-l", "1", "--plot", old)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"sce: error: --plot: writing the picture {old} failed: ")
    assert result.stderr.endswith(f"; {old} is unchanged; free some space or write the picture elsewhere\n")
    assert result.stdout == ""
    assert old.read_bytes() == b"the picture of yesterday"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grad.svg"]


def test_a_million_classes_show_the_target_and_the_most_probable_and_say_so(sce, tmp_path):
    logits = np.zeros(1_000_000)
    logits[[7, 123_456, 999_999]] = [1.0, 5.0, 3.0]
    source = tmp_path / "logits.npy"
    np.save(source, logits)
    path = tmp_path / "grad.svg"
    result = sce("grad", "--logits-file", source, "-l", "7", "--plot", path, "-f", "csv")
    assert result.exit_code == 0, result.stderr
    found = groups(parse_svg(path.read_bytes()))
    shown = sorted(int(gid.removeprefix("p-bar-")) for gid in found if gid.startswith("p-bar-"))
    assert len(shown) == 25 and {7, 123_456, 999_999} <= set(shown)
    # Of the equal rest, the lowest classes: 0, 1, …
    assert shown[:3] == [0, 1, 2]
    assert result.stderr.startswith(
        "sce: warning: --plot: 1,000,000 classes are too many for a bar each: the bars show 25 (the target's "
        "class and the most probable; the other classes' p add up to "
    )
    assert result.stderr.count("\n") == 1


def test_the_tangent_follows_every_option_of_the_loss(sce, tmp_path):
    # Weights, the mean, a soft cap, a z-loss and a temperature: L(z) = lse(b) − b_1 + λ·lse(b)², b = c·tanh(z/c)/T
    # (the mean divides the weighted loss by the label's weight; the z-loss is unweighted), differentiated by mpmath.
    path, _ = draw(sce, tmp_path, "2", "3", "4", "-l", "1", "-w", "1,5,1", "--reduction", "mean", "--softcap", "3",
                   "--z-loss", "0.01", "-T", "1.5")
    cap, temperature, weight = mpmath.mpf(3), mpmath.mpf("1.5"), mpmath.mpf("0.01")

    def loss(z1):
        b = [cap * mpmath.tanh(mpmath.mpf(z) / cap) / temperature for z in (2, z1, 4)]
        lse = mpmath.log(mpmath.fsum(mpmath.exp(v) for v in b))
        return lse - b[1] + weight * lse**2

    assert tangent_slope(parse_svg(path.read_bytes())) == pytest.approx(float(mpmath.diff(loss, 3)), rel=1e-4)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["2", "3", "4", "-l", "1", "-T", "1e308"],
         "sce: error: --plot: the range of z_1 reaches 4.5e+307, beyond the 1e+150 a picture's axes can place; "
         "leave out --plot for the numbers\n"),
        (["2", "3", "4", "-l", "1", "-T", "1e-308"],
         "sce: error: --plot: the loss along z_1 reaches 1.0e+308, beyond the 1e+150 a picture's axes can place; "
         "leave out --plot for the numbers\n"),
        (["1e300", "1e300", "-l", "0"],
         "sce: error: --plot: the range of z_0 reaches 1.0e+300, beyond the 1e+150 a picture's axes can place; "
         "leave out --plot for the numbers\n"),
    ],
)
def test_numbers_beyond_a_pictures_axes_are_one_line_without_a_warning(tmp_path, args, message):
    done = subprocess.run([*SCE, "grad", *args, "--plot", "grad.png"], cwd=tmp_path, capture_output=True, text=True,
                          check=False, env={**os.environ, "NO_COLOR": "1"})
    assert (done.returncode, done.stdout, done.stderr) == (2, "", message)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "args",
    [["5e-324", "-0.0", "0", "-l", "2"], ["2", "3", "4", "-l", "1", "-T", "1e-140"], ["1e140", "0", "-l", "1"],
     ["1", "2", "3", "-t", "0.2,0.3,0.5", "--smoothing", "0.2", "--smoothing-style", "off-target", "--dtype", "float32"]],
)
def test_extreme_but_drawable_numbers_draw_without_a_word_on_stderr(tmp_path, args):
    done = subprocess.run([*SCE, "grad", *args, "--plot", "grad.svg"], cwd=tmp_path, capture_output=True, text=True,
                          check=False, env={**os.environ, "NO_COLOR": "1"})
    assert (done.returncode, done.stderr) == (0, "")
    assert "tangent" in groups(parse_svg((tmp_path / "grad.svg").read_bytes()))


def test_a_terminal_of_80_columns_drops_the_gradient_bar_and_keeps_the_probability_bar():
    from rich.console import Console

    from sce import softmax_cross_entropy
    from sce.render.table import print_grad

    for width, probability_bar, gradient_bar in ((80, True, False), (100, True, True)):
        console = Console(width=width, force_terminal=True, no_color=True, record=True)
        print_grad(console, softmax_cross_entropy([[2.0, 3.0, 4.0]], [1], reduction="none"))
        text = console.export_text()
        assert ("█████▍" in text) is probability_bar, width
        assert ("│███▌" in text) is gradient_bar, width


def test_the_svg_for_a_page_is_the_files_svg_element_and_parses_alone():
    from sce import softmax_cross_entropy
    from sce.render.plot_grad import grad_figure_svg

    result = softmax_cross_entropy([[2.0, 3.0, 4.0]], [1], reduction="none")
    whole, element = grad_figure_svg(result), grad_figure_svg(result, embedded=True)
    assert element.startswith("<svg") and whole.endswith(element)
    assert "<?xml" not in element and "<!DOCTYPE" not in element
    assert "tangent" in groups(parse_svg(element))


@pytest.mark.parametrize("extra", [["--steps"], ["--steps", "--format", "markdown"], ["--verify", "--jacobian", "--hessian",
                                   "--format", "json"], ["--format", "csv"]])
def test_a_picture_goes_with_every_output(sce, tmp_path, extra):
    plain = sce("grad", "2", "3", "4", "-l", "1", *extra)
    path, drawn = draw(sce, tmp_path, "2", "3", "4", "-l", "1", *extra)
    assert drawn.stdout == plain.stdout  # the picture changes nothing printed
    assert "tangent" in groups(parse_svg(path.read_bytes()))
