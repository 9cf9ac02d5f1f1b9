"""``sce.explain``: the derivation of ``sce grad --steps`` as a Python value that a notebook displays.

``sce.explain`` is at once the package of explanations (``sce.explain.derivation``, ``sce.explain.proofs``) and
this module's :func:`explain`: calling the package calls the function, so that ``import sce`` then
``sce.explain([2, 3, 4], label=1)`` works whichever of them was imported first. A
:class:`~sce.SoftmaxCrossEntropyResult` displays in Jupyter as a table with bars too: the result itself knows
nothing of HTML, so its ``_repr_html_`` draws the table this module registers (:mod:`sce.displays`).

Nothing here loads numpy until it is called: ``import sce`` stays fast.
"""

from __future__ import annotations

import operator
import sys
import types
from typing import TYPE_CHECKING, Any

import sce.explain
from sce.displays import register_html
from sce.number_text import DISPLAY_DIGITS

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

    from sce.explain.derivation import Stage
    from sce.loss import SoftmaxCrossEntropyResult

#: The keywords :func:`explain` passes on to :func:`sce.softmax_cross_entropy`.
LOSS_KEYWORDS = (
    "weight",
    "label_smoothing",
    "ignore_index",
    "reduction",
    "temperature",
    "dtype",
    "softcap",
    "z_loss",
    "smoothing_style",
    "options",
)
#: What a user of the command line or of softmax_cross_entropy may type instead.
_SPELLED_ELSEWHERE = {"smoothing": "label_smoothing", "labels": "label", "targets": "target", "weights": "weight"}


class Derivation:
    """The derivation of one row's loss and gradient, stage by stage, with its own numbers.

    Made by :func:`explain`. A notebook displays it (``_repr_markdown_``, ``_repr_html_``); its
    methods give it as text.

    Attributes
    ----------
    result : SoftmaxCrossEntropyResult
        The loss's result for the row (1×K), whose numbers the stages show.
    stages : list of Stage
        The stages as data: a title, notes and equations each.
    route : str
        How ∂L/∂z is reached: 'chain', 'lse' or 'jacobian'.
    digits : int
        Significant digits shown in the Markdown and HTML (the JSON has every digit).

    See Also
    --------
    explain : makes it.

    Examples
    --------
    >>> import sce
    >>> derivation = sce.explain([2.0, 3.0, 4.0], label=1)
    >>> derivation.route, len(derivation.stages) > 3
    ('chain', True)
    >>> print(derivation.markdown().splitlines()[0])
    ## 1. Setup
    """

    def __init__(self, result: SoftmaxCrossEntropyResult, stages: list[Stage], route: str, digits: int) -> None:
        self.result = result
        self.stages = stages
        self.route = route
        self.digits = digits

    def markdown(self) -> str:
        """The derivation as Markdown with LaTeX math (``$$`` blocks): ``sce grad --steps --format markdown``."""
        from sce.render.markdown_format import derivation_markdown

        return derivation_markdown(self.result, self.stages, self.digits)

    def html(self) -> str:
        """The derivation as an HTML fragment (no script, no stylesheet): its formulas as MathML, as on
        ``sce grad --steps --format html``'s page, every text escaped."""
        from sce.render.html_format import derivation_html
        from sce.render.html_page import text
        from sce.render.words import reduction_line

        reduction = text(reduction_line(self.result.options.reduction))
        body = derivation_html(self.stages, self.digits)
        return f'<div class="sce-derivation">\n{body}<p>{reduction}</p>\n</div>'


    def json(self) -> str:
        """The derivation as JSON, every number at full precision: ``sce grad --steps --format json``."""
        from sce.render.json_format import dumps, steps_json_document

        return dumps(steps_json_document(self.result, self.stages, self.route)) + "\n"

    def _repr_markdown_(self) -> str:
        return self.markdown()

    def _repr_html_(self) -> str:
        return self.html()

    def __repr__(self) -> str:
        count = len(self.stages)
        return f"<sce derivation: {count} stages, route {self.route!r}, {self.result.num_classes} classes>"


def explain(
    logits: ArrayLike,
    label: int | None = None,
    *,
    target: ArrayLike | None = None,
    route: str = "chain",
    digits: int = DISPLAY_DIGITS,
    **options: Any,
) -> Derivation:
    """Derive one vector's loss and gradient stage by stage, with its own numbers, as ``sce grad --steps`` does.

    Parameters
    ----------
    logits : array_like
        One vector of K logits (or one row of K).
    label : int, optional
        The correct class, 0-based; or give ``target``.
    target : array_like, optional
        K probabilities summing to 1, in place of a label.
    route : {'chain', 'lse', 'jacobian'}, default 'chain'
        How ∂L/∂z is reached: the chain rule through s, case by case (it carries every option); through the
        log-sum-exp; or ∂L/∂s times the Jacobian ∂s/∂z. The last two take no weight, temperature, cap or z-loss.
    digits : int, default 5
        Significant digits shown, 1 to 17.
    **options
        The options of :func:`sce.softmax_cross_entropy`: ``weight``, ``label_smoothing``, ``ignore_index``,
        ``reduction``, ``temperature``, ``dtype``, ``softcap``, ``z_loss``, ``smoothing_style``, or all of them as
        ``options=LossOptions(...)``. The reduction is 'none' unless given (the row's own loss, as ``sce grad``);
        ``options=`` brings its own.

    Returns
    -------
    Derivation
        The stages, which a notebook displays as Markdown with formulas; ``.markdown()``, ``.html()`` and
        ``.json()`` give them as text.

    Raises
    ------
    InvalidInput
        For an input the loss is not defined for, as :func:`sce.softmax_cross_entropy` says it.
    ValueError
        For more than one row, a label that is the ignore index, ``digits`` out of range, an unknown route or one
        that does not take the options given.
    TypeError
        For a keyword that is no option.

    See Also
    --------
    sce.softmax_cross_entropy : the loss alone.

    Examples
    --------
    Logits z = (2, 3, 4) and label 1 give p = (0.0900, 0.2447, 0.6652) and ∂L/∂z = p - y:

    >>> import sce
    >>> derivation = sce.explain([2.0, 3.0, 4.0], label=1)
    >>> [stage.title for stage in derivation.stages][:3]
    ['Setup', 'Softmax, stabilised', 'Loss']
    >>> import json
    >>> document = json.loads(derivation.json())
    >>> round(document["loss"], 12), round(document["gradient"][1], 12)
    (1.407605964444, -0.755271528945)

    With the options of the loss, and a route of its own:

    >>> sce.explain([2.0, 3.0, 4.0], label=1, label_smoothing=0.1, route="lse").route
    'lse'
    >>> sce.explain([2.0, 3.0, 4.0], label=1, smoothing=0.1)
    Traceback (most recent call last):
    ...
    TypeError: explain() got an unexpected keyword argument 'smoothing' (did you mean label_smoothing?)
    """
    _check_keywords(options)
    digits = _check_digits(digits)
    if label is not None and target is not None:
        raise ValueError("give either label= (a class index) or target= (probabilities), not both")
    if label is None and target is None:
        raise ValueError("say which class is correct with label= (0-based), or give probabilities with target=")
    from sce.explain.derivation import build_derivation
    from sce.loss import softmax_cross_entropy

    if "options" not in options:
        options.setdefault("reduction", "none")
    result = softmax_cross_entropy(logits, label, targets=target, **options).as_rows
    if result.num_rows != 1:
        raise ValueError(
            f"explain derives one vector of logits; these are {result.num_rows} rows: pass one, logits[i]"
        )
    if result.labels is not None and not result.counted[0]:
        raise ValueError(
            f"label {int(result.labels[0])} is the ignore index, so the loss is 0 and there is nothing to derive; "
            "give a class index"
        )
    return Derivation(result, build_derivation(result, digits, route), route, digits)


def _check_keywords(options: dict[str, Any]) -> None:
    for keyword in options:
        if keyword not in LOSS_KEYWORDS:
            import difflib  # only on the way to an error

            known = [*LOSS_KEYWORDS, "label", "target", "route", "digits"]
            close = [_SPELLED_ELSEWHERE[keyword]] if keyword in _SPELLED_ELSEWHERE else []
            close = close or difflib.get_close_matches(keyword, known, n=1)
            hint = f" (did you mean {close[0]}?)" if close else f"; the options are {', '.join(LOSS_KEYWORDS)}"
            raise TypeError(f"explain() got an unexpected keyword argument {keyword!r}{hint}")


def _check_digits(digits: int) -> int:
    """``digits`` as an int (numpy's integers too), or a ValueError."""
    try:
        whole = None if isinstance(digits, bool) else operator.index(digits)
    except TypeError:
        whole = None
    if whole is None or not 1 <= whole <= 17:
        problem = "is not a whole number" if whole is None else "is out of range"
        raise ValueError(f"digits={digits!r} {problem}; use an integer from 1 to 17")
    return whole


class ExplainPackage(types.ModuleType):
    """The package ``sce.explain``, which is also :func:`explain` when called."""

    def __call__(self, *args: Any, **keywords: Any) -> Derivation:
        return explain(*args, **keywords)

    __call__.__doc__ = explain.__doc__

    @property
    def __signature__(self) -> Any:
        # What IPython's `sce.explain?` and inspect.signature show: explain's own.
        import inspect

        return inspect.signature(explain)


def result_table(result: SoftmaxCrossEntropyResult) -> str:
    """A result as an HTML table with bars for p and the signed gradient (see :mod:`sce.render.notebook_html`).

    Examples
    --------
    >>> import sce
    >>> result = sce.softmax_cross_entropy([2.0, 3.0, 4.0], 1)
    >>> table = result_table(result)
    >>> table.count("<tr>"), "<script" in table, result._repr_html_() == table
    (4, False, True)
    """
    from sce.render.notebook_html import result_html

    return result_html(result)


sys.modules[sce.explain.__name__].__class__ = ExplainPackage
register_html("loss result", result_table)
