"""Speed and quality benchmarks, run by hand: ``python -m genlab.bench <what> [options]``."""

from __future__ import annotations

import argparse


def argument_parser(what: str, doc: str | None) -> argparse.ArgumentParser:
    """The parser of ``python -m genlab.bench <what>``: ``--help`` shows that usage line, the bench
    module's docstring (its example commands, kept as written) and every option."""
    return argparse.ArgumentParser(
        prog=f"python -m genlab.bench {what}", description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
