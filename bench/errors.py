"""Errors for bad user input; the CLI reports them in one line with exit status 2."""
from __future__ import annotations

import difflib


class UnknownName(KeyError):
    """A method, dataset, track, recipe or model name that does not exist."""

    def __init__(self, kind: str, name: str, valid):
        valid = list(valid)
        close = difflib.get_close_matches(name, valid, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        super().__init__(f"unknown {kind} {name!r}.{hint} Valid {kind}s: {', '.join(valid)}")

    def __str__(self) -> str:
        return self.args[0]


class UsageError(Exception):
    """Bad input from the user: the CLI reports it in one line with exit status 2."""


class DeviceUnavailable(UsageError):
    """The requested device does not exist on this machine."""


class DataError(UsageError):
    """A dataset that cannot be used as given (non-finite values, bad labels, ...)."""
