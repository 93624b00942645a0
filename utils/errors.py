"""The one base class for everything a user can fix: bad files, bad arguments, bad data.

Every module's own refusal (``CorpusError``, ``SubjectError``, ``CheckpointError``, ``ConfigError``,
``MediaError``, ``EmocaError``, ...) derives from :class:`InputError`, so a command line catches this one
class (``utils.cli.cli_main``) and prints a one-line message, while any other exception — a bug — keeps
its traceback. ``InputError`` is a ``ValueError`` so callers that expected one still work.
"""
from __future__ import annotations


class InputError(ValueError):
    """Input that breaks a contract: the message names the file or argument and the problem."""


class UsageError(InputError):
    """Command-line arguments that are out of range or do not fit together."""
