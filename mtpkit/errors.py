"""Error types shared across mtpkit."""

from __future__ import annotations

import os


class UserError(ValueError):
    """Bad input from the user: a message that names the file, line or field.

    The CLI prints it as one line without a traceback.
    """


class InputFileError(UserError):
    """A malformed input file; the message says which file, line and field."""

    def __init__(self, path: str | os.PathLike | None, message: str, line: int | None = None,
                 field: str | None = None) -> None:
        self.path = None if path is None else os.fspath(path)
        self.line = line
        self.field = field
        where = self.path or "<input>"
        if line is not None:
            where += f", line {line}"
        if field:
            where += f", field '{field}'"
        super().__init__(f"{where}: {message}")
