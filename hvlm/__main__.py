"""`python -m hvlm`: the same as the `hvlm` command."""

from hvlm.cli import main

main()
