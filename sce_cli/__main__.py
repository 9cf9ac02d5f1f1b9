import warnings

import sce_cli  # noqa: F401
from sce.cli import main

# Raised here, in __main__, so that Python shows it by default (the package's own warning is
# raised inside an import, where the default filters hide a DeprecationWarning).
warnings.warn("python -m sce_cli is now python -m sce (or the sce command)", DeprecationWarning, stacklevel=1)
main()
