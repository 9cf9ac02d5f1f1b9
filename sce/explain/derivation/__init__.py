"""The derivation of ``sce grad --steps``, stage by stage, as data.

Stages are built from a core result (they compute nothing the core already
computed: probabilities, losses and gradient come from the result) and are
rendered per format by ``render.steps_*``, ``render.markdown_format`` and
``render.json_format``.
"""

from __future__ import annotations

import numpy as np

from sce.explain.derivation.by_hand import checked_by_hand
from sce.explain.derivation.general import general_stages
from sce.explain.derivation.jacobian import jacobian_stage, language_model_jacobian_stage
from sce.explain.derivation.one_hot import one_hot_stages
from sce.explain.derivation.opening import setup_stage, softmax_stage
from sce.explain.derivation.softcap_and_z_loss import softcap_stage, z_loss_stage
from sce.explain.derivation.stages import Elided, Equation, Item, Matrix, Stage
from sce.loss import SoftmaxCrossEntropyResult
from sce.number_text import DISPLAY_DIGITS

__all__ = ["Elided", "Equation", "Item", "Matrix", "Stage", "build_derivation"]


def build_derivation(result: SoftmaxCrossEntropyResult, digits: int = DISPLAY_DIGITS) -> list[Stage]:
    """The stages for row 0 of ``result``: the one-hot route of the textbook derivation
    when no option changes it, else the general forms."""
    result = result.as_rows
    options = result.options
    # A label without smoothing is a one-hot target: the textbook route, whatever else is set
    # (a weight, a temperature, a cap or a z-loss add a chain-rule factor or term).
    one_hot = result.labels is not None and options.label_smoothing == 0
    # Where the result itself overflows (a tiny T), the stages show ±inf and the
    # sums of such entries NaN: the core has said why in a warning already.
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        stages = [setup_stage(result)]
        if result.options.softcap is not None:
            stages.append(softcap_stage(result))
        stages.append(softmax_stage(result))
        if result.options.z_loss:
            stages.append(z_loss_stage(result))
        stages += one_hot_stages(result, digits) if one_hot else general_stages(result, digits)
        if result.options.has_llm_options:
            stages.append(language_model_jacobian_stage(result))
        else:
            stages.append(jacobian_stage(result, one_hot))
    return [checked_by_hand(stage, digits, str(result.dtype)) for stage in stages]
