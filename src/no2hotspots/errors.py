"""The project's exception types.

A :class:`UserError` is a mistake the user can fix (a bad file, an invalid config value, a wrong product). The CLI
prints it as one line, without a traceback, and exits non-zero. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input or configuration; its message is one line naming the file or key."""

    exit_code = 2


class ConfigError(UserError):
    """An invalid configuration value. Message names the key, e.g. ``simulate.wind.speed_min: must be > 0``."""

    def __init__(self, key: str, problem: str):
        self.key = key
        self.problem = problem
        super().__init__(f"config {key}: {problem}")

    def __reduce__(self):  # picklable (Dask results, multiprocessing): rebuilt from its two fields, not the message
        return (type(self), (self.key, self.problem))


class InputFileError(UserError):
    """A bad input file. Message names the file and the problem."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")

    def __reduce__(self):
        return (type(self), (self.path, self.problem))


class ValidationFailed(UserError):
    """A data-quality suite failed; the message names each failed expectation and where the report is."""

    exit_code = 3
