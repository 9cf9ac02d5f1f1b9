from sce.cli import main

main()
