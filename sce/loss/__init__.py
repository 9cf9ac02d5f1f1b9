"""The numerical core: softmax cross-entropy, its loss and its gradient.

Pure numpy: arrays and options in, a :class:`SoftmaxCrossEntropyResult` out.
Nothing here prints, parses command lines or touches files.

The semantics are those of ``torch.nn.functional.cross_entropy``; the
arithmetic is more careful than any framework's (see :mod:`.log_softmax`).
"""

from sce.loss.cross_entropy import softmax_cross_entropy
from sce.loss.layout import Layout
from sce.loss.linear_cross_entropy import LinearCrossEntropyResult, linear_cross_entropy
from sce.loss.matrices import gradient_via_jacobian, loss_gradient_wrt_probabilities, loss_hessian, softmax_jacobian
from sce.loss.result import InvalidInput, LossWarning, Shaped, SoftmaxCrossEntropyResult
from sce.loss.validation import TARGET_SUM_TOLERANCE
from sce.options import REDUCTIONS, LossOptions, Reduction

__all__ = [
    "InvalidInput",
    "Layout",
    "LinearCrossEntropyResult",
    "LossOptions",
    "LossWarning",
    "REDUCTIONS",
    "Shaped",
    "Reduction",
    "SoftmaxCrossEntropyResult",
    "TARGET_SUM_TOLERANCE",
    "gradient_via_jacobian",
    "linear_cross_entropy",
    "loss_gradient_wrt_probabilities",
    "loss_hessian",
    "softmax_cross_entropy",
    "softmax_jacobian",
]
