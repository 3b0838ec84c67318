"""`python -m lstmcheck` runs the command-line interface."""
from .cli import main

main()
