import sce_cli  # noqa: F401  (warns that the package is now called sce)
from sce.cli import main

main()
