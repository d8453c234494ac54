"""The one error root of huitouke, with stable codes.

Every error the package raises on purpose derives from :class:`HuitoukeError` and carries a
stable ``code`` (``snake.case``), a message in English and Chinese, and optional ``details``
(for example the file, line and field of a bad input row). Only the API maps errors to
HTTP statuses (through ``http_status``) and only the CLI maps them to exit codes and
friendly text; the domain never imports either.

Every code in use is documented once in docs/errors.md (code, HTTP status, exit code, meaning
in en and zh); a test collects the codes from the source and keeps the two equal.

Tree::

    HuitoukeError
    ├── ConfigError            (settings.*)           500 / exit 2
    ├── InputError             (input.*)              422 / exit 2
    │   ├── ImportFileError    (import.*)             422 / exit 2
    │   └── TooLargeError      (request.too_large)    413 / exit 2
    ├── NotFoundError          (*.not_found)          404 / exit 3
    ├── ConflictError          (*.conflict, *.used)   409 / exit 4
    ├── AuthError              (auth.*)               401 / exit 5
    │   ├── ForbiddenError     (auth.forbidden)       403 / exit 5
    │   └── TooManyAttemptsError (auth.rate_limited)  429 / exit 5
    ├── ModelFitError          (model.*)              422 / exit 6
    └── StoreError             (store.*)              500 / exit 7
        └── StoreBusyError     (store.busy)           503 / exit 8
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "AuthError",
    "ConfigError",
    "ConflictError",
    "ForbiddenError",
    "HuitoukeError",
    "ImportFileError",
    "InputError",
    "ModelFitError",
    "NotFoundError",
    "StoreBusyError",
    "StoreError",
    "TooLargeError",
    "TooManyAttemptsError",
]


class HuitoukeError(Exception):
    """Root of every deliberate huitouke error.

    ``message`` is English, ``message_zh`` Chinese (falls back to English), ``code`` is the
    stable machine-readable code that API bodies and CLI JSON carry.
    """

    http_status: ClassVar[int] = 500
    exit_code: ClassVar[int] = 1
    default_code: ClassVar[str] = "error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        message_zh: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.message_zh = message_zh or message
        self.code = code or self.default_code
        self.details = dict(details or {})

    def localized(self, lang: str) -> str:
        return self.message_zh if lang.startswith("zh") else self.message

    def to_dict(self, lang: str = "en") -> dict[str, Any]:
        return {"code": self.code, "message": self.localized(lang), "details": self.details}


class ConfigError(HuitoukeError):
    http_status = 500
    exit_code = 2
    default_code = "settings.invalid"


class InputError(HuitoukeError):
    http_status = 422
    exit_code = 2
    default_code = "input.invalid"


class ImportFileError(InputError):
    default_code = "import.invalid_file"


class TooLargeError(InputError):
    """More input than a limit allows (a request body over its size limit)."""

    http_status = 413
    default_code = "request.too_large"


class NotFoundError(HuitoukeError):
    http_status = 404
    exit_code = 3
    default_code = "not_found"


class ConflictError(HuitoukeError):
    http_status = 409
    exit_code = 4
    default_code = "conflict"


class AuthError(HuitoukeError):
    http_status = 401
    exit_code = 5
    default_code = "auth.missing_key"


class ForbiddenError(AuthError):
    http_status = 403
    default_code = "auth.forbidden"


class TooManyAttemptsError(AuthError):
    """Too many failed logins: from one client within the rate window
    (``auth.rate_limited``), or for one user, who is then locked out for a while
    (``auth.locked_out``)."""

    http_status = 429
    default_code = "auth.rate_limited"


class ModelFitError(HuitoukeError):
    http_status = 422
    exit_code = 6
    default_code = "model.not_converged"


class StoreError(HuitoukeError):
    http_status = 500
    exit_code = 7
    default_code = "store.error"


class StoreBusyError(StoreError):
    """The store stayed locked or in conflict through every retry of the unit of work
    (see :mod:`huitouke.store.uow`); running the same request again later may succeed."""

    http_status = 503
    exit_code = 8
    default_code = "store.busy"
