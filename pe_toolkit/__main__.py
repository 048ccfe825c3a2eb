"""``python -m pe_toolkit`` runs the CLI."""

from .cli import main

main()
