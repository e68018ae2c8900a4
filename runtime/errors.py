"""The one exception tree of Wharf.

WharfError                  a user-facing error: one clear message, exit code 1
 +- InvalidArgument          bad input from the user (flag, file, request)   -> HTTP 400
 +- NotFound                 no such container/image/network/volume          -> HTTP 404
 +- Conflict                 name in use, object busy, wrong state           -> HTTP 409
 +- RuntimeFailure           the kernel or an external tool said no          -> HTTP 500

`where` names the place (file:line, field path, object) and `hint` what to do.
Commands catch WharfError at the top, print `wharf: error: ...` and exit with
`exit_code`; nothing else is shown to the user, never a traceback.
"""

from __future__ import annotations


class WharfError(Exception):
    exit_code = 1
    http_status = 500

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None,
                 exit_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.where = where
        self.hint = hint
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class InvalidArgument(WharfError):
    http_status = 400


class NotFound(WharfError):
    http_status = 404


class Conflict(WharfError):
    http_status = 409


class RuntimeFailure(WharfError):
    http_status = 500
