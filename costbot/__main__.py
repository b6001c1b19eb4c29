"""`python -m costbot` runs the CLI."""

from costbot.cli import main

main()
