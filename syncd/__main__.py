"""`python -m syncd`: the `syncd` command, for hosts where the script is not on PATH."""

from syncd.cli import main

main()
