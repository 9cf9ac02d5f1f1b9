"""The numerical core: softmax cross-entropy, its loss and its gradient.

Pure numpy: arrays and options in, a :class:`SoftmaxCrossEntropyResult` out.
Nothing here prints, parses command lines or touches files.

The semantics are those of ``torch.nn.functional.cross_entropy``; the
arithmetic is more careful than any framework's (see :mod:`.log_softmax`).
"""

from ..options import REDUCTIONS, LossOptions, Reduction
from .checks import TARGET_SUM_TOLERANCE
from .loss import softmax_cross_entropy
from .matrices import gradient_via_jacobian, loss_gradient_wrt_probabilities, loss_hessian, softmax_jacobian
from .result import InvalidInput, Layout, LossWarning, Shaped, SoftmaxCrossEntropyResult

__all__ = [
    "InvalidInput",
    "Layout",
    "LossOptions",
    "LossWarning",
    "REDUCTIONS",
    "Shaped",
    "Reduction",
    "SoftmaxCrossEntropyResult",
    "TARGET_SUM_TOLERANCE",
    "gradient_via_jacobian",
    "loss_gradient_wrt_probabilities",
    "loss_hessian",
    "softmax_cross_entropy",
    "softmax_jacobian",
]
