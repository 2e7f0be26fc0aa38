"""Error types shared across mtpkit."""

from __future__ import annotations

import os
import re


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


def validation_problem(exc: Exception) -> tuple[str | None, str]:
    """The first error of a pydantic ``ValidationError`` as ``(dotted key, message)``.

    List positions become "(item N of the list)"; an unknown key reads "unknown key"; a
    check across keys that raises ``ValueError("<key>: <message>")`` moves ``<key>`` into
    the location; the offending value is quoted as "(got ...)". Works on the exception
    alone, so this module needs no pydantic import.
    """
    err = exc.errors()[0]  # type: ignore[attr-defined]
    loc = ".".join(str(p) for p in err["loc"] if not isinstance(p, int))
    items = [p for p in err["loc"] if isinstance(p, int)]
    msg = err["msg"] + (f" (item {items[-1] + 1} of the list)" if items else "")
    if err["type"] == "extra_forbidden":
        msg = "unknown key"
    elif msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
        key, sep, rest = msg.partition(": ")
        if sep and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", key):  # a cross-key check names its key
            loc = ".".join(p for p in (loc, key) if p)
            msg = rest
    if "input" in err and err["type"] not in ("extra_forbidden", "missing") and not isinstance(err["input"], dict):
        msg += f" (got {err['input']!r})"
    return loc or None, msg


def input_error_from_validation(path: str | os.PathLike | None, exc: Exception) -> InputFileError:
    """An :class:`InputFileError` naming ``path`` and the dotted key of a pydantic
    ``ValidationError`` (see :func:`validation_problem`)."""
    field, msg = validation_problem(exc)
    return InputFileError(path, msg, field=field)
