"""Each slip of a stage of the derivation is named in the same words by both graders that see
stages: a learner's function returning its stages (``sce test --returns stages``) and the same
function's stages of the textbook row typed in (``sce check 2 3 4 -l 1 --stage NAME=VALUES``).

The slipped stages are the learner files' own, written here as a learner writes them in numpy.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from sce.grading import catalogue

HEAD = """import numpy as np


def softmax_stages(logits, labels):
    n, k = logits.shape
    rows = np.arange(n)
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs = probs / probs.sum(axis=1, keepdims=True)
    one_hot = np.zeros_like(probs)
    one_hot[rows, labels] = 1.0
"""
#: Each slip: the stage as the learner returns it, and its name.
SLIPS = {
    "shift reversed": ('    return {"shifted": logits.max(axis=1, keepdims=True) - logits}\n', catalogue.SHIFT_REVERSED),
    "exp not shifted": ('    return {"exp": np.exp(logits)}\n', catalogue.EXP_NOT_SHIFTED),
    "sum of unshifted exp": ('    return {"sum_exp": np.exp(logits).sum(axis=1)}\n', catalogue.EXP_NOT_SHIFTED),
    "dL/ds sign dropped": (
        '    return {"dL_ds": np.where(one_hot > 0, 1.0 / probs, 0.0)}\n',
        catalogue.DL_DS_SIGN_DROPPED,
    ),
    "dL/dz for dL/ds": ('    return {"dL_ds": probs - one_hot}\n', catalogue.DL_DZ_FOR_DL_DS),
    "Jacobian's diagonal": (
        '    return {"ds_dz": np.stack([np.diag(p * (1 - p)) for p in probs])}\n',
        catalogue.JACOBIAN_DIAGONAL,
    ),
}


def learner_file(folder: Path, slip: str) -> Path:
    path = folder / f"stages_{sorted(SLIPS).index(slip)}.py"
    path.write_text(HEAD + SLIPS[slip][0], encoding="utf-8")
    return path


def stages_of(path: Path, logits: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.softmax_stages(logits, labels)


@pytest.mark.parametrize("slip", sorted(SLIPS))
def test_a_slipped_stage_is_named_alike_by_sce_test_and_by_a_typed_stage_check(slip, sce, tmp_path):
    expected = SLIPS[slip][1]
    path = learner_file(tmp_path, slip)
    tested = sce("test", f"{path}:softmax_stages", "--returns", "stages", "-f", "json")
    assert tested.exit_code == 1, tested.output
    assert json.loads(tested.stdout)["mistakes"][:1] == [expected.name]

    ((stage, values),) = stages_of(path, np.array([[2.0, 3.0, 4.0]]), np.array([1])).items()
    typed = ",".join(repr(float(v)) for v in np.ravel(values))
    checked = sce("check", "2", "3", "4", "-l", "1", "--stage", f"{stage}={typed}")
    assert checked.exit_code == 1, checked.output
    assert f"  mistake: {expected.name}" in checked.stdout.splitlines()
