"""The derivation of ``sce grad --steps``, stage by stage, as data.

Stages are built from a core result (they compute nothing the core already
computed: probabilities, losses and gradient come from the result) and are
rendered per format by ``render.steps_*``, ``render.markdown_format`` and
``render.json_format``.
"""

from __future__ import annotations

import numpy as np

from sce.explain.derivation.by_hand import checked_by_hand
from sce.explain.derivation.closing import how_computed_stage, sanity_stage
from sce.explain.derivation.general import general_stages
from sce.explain.derivation.jacobian import jacobian_stage, language_model_jacobian_stage
from sce.explain.derivation.log_sum_exp import ROUTES, route_refusal
from sce.explain.derivation.one_hot import one_hot_stages
from sce.explain.derivation.opening import setup_stage, softmax_stage
from sce.explain.derivation.softcap_and_z_loss import softcap_stage, z_loss_stage
from sce.explain.derivation.stages import Elided, Equation, Item, Matrix, Stage
from sce.loss import SoftmaxCrossEntropyResult
from sce.number_text import DISPLAY_DIGITS

__all__ = ["ROUTES", "Elided", "Equation", "Item", "Matrix", "Stage", "build_derivation", "route_refusal"]


def build_derivation(
    result: SoftmaxCrossEntropyResult, digits: int = DISPLAY_DIGITS, route: str = "chain"
) -> list[Stage]:
    """The stages for row 0 of ``result``: the one-hot route of the textbook derivation
    when no option changes it, else the general forms.

    ``route`` is one of :data:`ROUTES`: ``chain`` (through s, case by case, then the Jacobian as
    the other route), ``lse`` (the log-sum-exp) or ``jacobian``; the last two take a label or a
    target without weights, temperature, cap or z-loss (:func:`route_refusal` says why not, and
    they raise ValueError with that reason)."""
    result = result.as_rows
    refusal = route_refusal(result, route) if route in ROUTES else f"unknown route {route!r}"
    if refusal:
        raise ValueError(refusal)
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
        stages += one_hot_stages(result, digits, route) if one_hot else general_stages(result, digits, route)
        if result.options.has_llm_options:
            stages.append(language_model_jacobian_stage(result))
        elif route == "chain":
            stages.append(jacobian_stage(result, one_hot))
        sanity = sanity_stage(result, digits)
        stages += [*([sanity] if sanity else []), how_computed_stage(result, digits)]
    return [checked_by_hand(stage, digits, str(result.dtype)) for stage in stages]
