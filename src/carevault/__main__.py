"""``python -m carevault`` runs the CLI."""

from carevault.cli import main

main()
