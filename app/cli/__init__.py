"""The `medcite` command line (`python -m app.cli`)."""

from app.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
