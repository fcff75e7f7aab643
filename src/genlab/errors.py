"""Errors a user can fix, reported as one message instead of a traceback.

A wrong override, a missing folder, a corrupt image or a checkpoint that is not there is the user's
to fix, and the message says how; a 30-line traceback in front of it only hides the message. Code
raises a :class:`UserError` (or a subclass) for those, and the command lines run inside
:func:`reported`, which prints ``error: <message>`` and exits with status 2. Every other exception
is a bug and keeps its traceback; ``HYDRA_FULL_ERROR=1`` shows the traceback of user errors too.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager


class UserError(Exception):
    """Bad input: the message names the key or file and what to do."""


class ConfigError(UserError, ValueError):
    """A config that cannot be built; the message names the config key and the root cause."""


class MissingFile(UserError, FileNotFoundError):
    """A file or folder the user named is not there."""


@contextmanager
def reported():
    """Run a command line's work: a :class:`UserError` becomes one line on stderr and exit status 2."""
    try:
        yield
    except UserError as err:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
