"""The former name of the :mod:`sce` library, kept for one release.

``import sce_cli`` still works and gives :mod:`sce`'s public names, with a
:class:`DeprecationWarning`; import :mod:`sce` instead.
"""

from __future__ import annotations

import warnings
from typing import Any

import sce

warnings.warn(
    "the sce_cli package is now called sce: write 'import sce' (sce_cli goes away in the next release)",
    DeprecationWarning,
    stacklevel=2,
)

__version__ = sce.__version__
__all__ = list(sce.__all__)


def __getattr__(name: str) -> Any:
    return getattr(sce, name)
