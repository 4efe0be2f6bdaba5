"""One base for every error a user can fix: it names what went wrong, where, and the fix.

The `r1f` face prints a `UserError` as one message and exits 2, never with a traceback; anything else
is a bug and keeps its traceback. Every stage's own error types derive from it, so the face needs to
know none of them.
"""
from __future__ import annotations


class UserError(Exception):
    """`UserError(message, where=FILE_OR_FIELD, fix=WHAT_TO_DO)`; `str()` gives `where: message; fix`.

    Most callers already build the whole sentence and pass only `message`.
    """

    def __init__(self, message: str = "", *, where: str | None = None, fix: str | None = None) -> None:
        self.message, self.where, self.fix = message, where, fix
        super().__init__(message)

    def __str__(self) -> str:
        text = self.message if self.message else (str(self.args[0]) if self.args else "")
        if self.where:
            text = f"{self.where}: {text}"
        if self.fix:
            text = f"{text}; {self.fix}"
        return text


class CatalogError(UserError):
    """The catalog cannot do what was asked: missing, newer schema, locked, unknown id or release."""


class RecipeError(UserError, ValueError):
    """A recipe that cannot run. The message names the file, the field and the fix."""
