"""The `costbot` command line: the composition root that wires config, store, providers,
cleaners and output together. One module per group of commands."""

from costbot.cli import decisions, demo, digest, doctor, scanning, service, slack
from costbot.cli.base import cli


def main() -> None:
    """Entry point of the `costbot` console script."""
    cli(prog_name="costbot")


__all__ = ["cli", "decisions", "demo", "digest", "doctor", "main", "scanning", "service", "slack"]
