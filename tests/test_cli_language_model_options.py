"""The language-model options on the command line: --softcap, --z-loss, --smoothing-style; one line per bad value."""

from __future__ import annotations

import json

import pytest

from . import reference


@pytest.mark.parametrize(
    "args,line",
    [
        (["--softcap", "0"], "sce: error: --softcap: softcap 0.0 is not a positive finite number"),
        (["--softcap", "-1"], "sce: error: --softcap: softcap -1.0 is not a positive finite number"),
        (["--z-loss", "-1"], "sce: error: --z-loss: z-loss -1.0 is not a non-negative finite number"),
        (["--z-loss", "nan"], "sce: error: --z-loss: z-loss nan is not a non-negative finite number"),
    ],
)
def test_bad_values_are_one_line(args, line, sce):
    result = sce("grad", "1", "2", "3", "--label", "0", *args)
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and result.output.startswith(line), result.output


def test_grad_json_reports_the_options_and_the_z_loss_apart(sce):
    result = sce("grad", "1", "2", "40", "--label", "2", "--softcap", "30", "--z-loss", "1e-4", "--smoothing", "0.1", "--smoothing-style", "off-target", "-f", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["options"]["softcap"] == 30.0 and doc["options"]["z_loss"] == 1e-4
    assert doc["options"]["smoothing_style"] == "off-target"
    exact = reference.analytic(
        [[1.0, 2.0, 40.0]],
        [2],
        softcap=30.0,
        z_loss=1e-4,
        label_smoothing=0.1,
        smoothing_style="off-target",
        reduction="none",
    )
    assert abs(doc["loss"] - float(exact.losses[0])) <= 1e-14 * float(exact.losses[0])
    assert abs(doc["z_loss"] - float(exact.z_losses[0])) <= 1e-14 * float(exact.z_losses[0])
    for computed, value in zip(doc["gradient"], exact.gradient[0]):
        assert abs(computed - float(value)) <= 1e-14 * abs(float(value))
    assert doc["target"][0] == pytest.approx(0.05) and doc["target"][2] == pytest.approx(0.9)


def test_grad_table_says_the_options_in_words(sce):
    result = sce("grad", "1", "2", "3", "--label", "0", "--softcap", "5", "--z-loss", "0.01")
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "soft-capped at 5" in text and "z-loss 0.01·lse²" in text


def test_batch_takes_the_options(tmp_path, sce):
    source = tmp_path / "in.csv"
    source.write_text("z0,z1,z2,label\n1,2,3,0\n0,40,-1,1\n")
    out = tmp_path / "out.jsonl"
    result = sce("batch", str(source), "-o", str(out), "--softcap", "3", "--z-loss", "0.1", "--reduction", "sum", "-q")
    assert result.exit_code == 0, result.output
    assert out.read_text().strip()


@pytest.mark.parametrize("block_bytes", [40, 1 << 20])
def test_batch_z_loss_with_mean_matches_the_core_on_the_whole_file(tmp_path, monkeypatch, block_bytes, sce):
    # The z-loss's mean divides by the counted rows of the whole file (4 here, one row ignored), the
    # cross-entropy's by their weight sum: the first pass counts both, whatever the blocks.
    import numpy as np

    from sce import softmax_cross_entropy
    from sce.batch import BatchRequest, run_batch
    from sce.io.csv import records
    from sce.options import LossOptions

    monkeypatch.setattr(records, "BLOCK_BYTES", block_bytes)
    rows = [[1, 2, 3, 0], [0, 4, -1, 1], [2, 2, 2, -100], [5, -1, 0, 2], [0.5, 0.25, -3, 1]]
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    source.write_text("z0,z1,z2,label\n" + "".join(",".join(map(str, row)) + "\n" for row in rows))
    options = LossOptions(weight=(1.0, 2.0, 0.5), softcap=3.0, z_loss=0.1, reduction="mean")
    summary = run_batch(BatchRequest(str(source), str(out), options=options))
    logits = np.array([row[:3] for row in rows], dtype=np.float64)
    labels = np.array([row[3] for row in rows])
    core = softmax_cross_entropy(logits, labels, options=options)
    assert core.z_loss_denominator == 4 and core.denominator == 1 + 2 + 0.5 + 2
    written = np.loadtxt(out, delimiter=",", skiprows=1)
    assert np.array_equal(written[:, -3:], core.gradient)
    assert summary.reduced_loss == pytest.approx(core.loss, rel=1e-15)
    result = sce("batch", str(source), "-o", str(tmp_path / "again.csv"), "--z-loss", "0.1", "--reduction", "mean")
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("output_format", ["table", "markdown", "json"])
def test_steps_derive_the_cap_the_z_loss_and_off_target_smoothing(output_format, sce):
    result = sce("grad", "1", "2", "3", "--label", "0", "--softcap", "5", "--z-loss", "0.01", "--smoothing", "0.1", "--smoothing-style", "off-target", "--steps", "-f", output_format)  # fmt: skip
    assert result.exit_code == 0, result.output
    for stage in ("Soft-capping", "The z-loss", "Combining the cases"):
        assert stage in result.stdout
    assert "off-target" in result.stdout
