"""The former name of :mod:`sce.testing`, kept for one release: ``from sce.testing import …``."""

from __future__ import annotations

import sce_cli  # noqa: F401  (warns that the package is now called sce)
from sce.testing import *  # noqa: F403
from sce.testing import __all__ as __all__
