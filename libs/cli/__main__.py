"""`python -m libs.cli`: the same as the `medai` command."""
from libs.cli import main

main()
