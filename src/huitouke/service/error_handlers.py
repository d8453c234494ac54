"""Errors → HTTP: one JSON body shape with a stable code, in zh or en.

Every error response is ``{"error": {"code": …, "message": …, "details": {…}}}``:

- :class:`~huitouke.errors.HuitoukeError` subclasses answer with their ``http_status`` and
  ``code`` (``coupon.already_redeemed`` → 409, ``auth.forbidden`` → 403, …);
- request validation failures answer 422 ``input.invalid`` with
  ``details.fields = [{"field": "amount", "reason": …}, …]`` (nested fields dotted:
  ``lines.0.quantity``);
- unknown paths and methods answer ``http.not_found`` / ``http.method_not_allowed``;
- anything else answers 500 ``internal`` and is logged (masked) with its traceback.

The language follows ``Accept-Language`` (zh or en), defaulting to the merchant's.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from huitouke.errors import HuitoukeError
from huitouke.i18n import t
from huitouke.service.lang import negotiate_lang

__all__ = [
    "ERROR_RESPONSES",
    "ErrorBody",
    "ErrorResponse",
    "install_error_handlers",
    "request_lang",
]

log = logging.getLogger("huitouke.service")


class ErrorBody(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. coupon.already_redeemed.")
    message: str = Field(description="Human-readable message in the negotiated language.")
    details: dict[str, Any] = Field(default_factory=dict)


class ErrorResponse(BaseModel):
    error: ErrorBody


def _doc(text: str) -> dict[str, Any]:
    return {"model": ErrorResponse, "description": text}


#: Documented on every /v1 route so clients (and schema checks) know the error shape.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _doc("The body could not be read (not UTF-8 or not parseable): http.bad_request."),
    401: _doc("Missing, unknown or revoked API key (auth.missing_key / auth.invalid_key)."),
    403: _doc(
        "The key's scope is too low (auth.forbidden), or the customer may not act on the "
        "object (coupon.not_holder)."
    ),
    413: _doc("The body is larger than the endpoint takes (request.too_large)."),
    422: _doc("Invalid input (input.invalid, details.fields names each field)."),
    503: _doc("The store stayed busy through every retry (store.busy); retry later."),
}


def request_lang(request: Request) -> str:
    default = getattr(getattr(request.app.state, "ctx", None), "settings", None)
    return negotiate_lang(
        request.headers.get("accept-language"), default.lang if default is not None else "zh"
    )


def _body(*, code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def _field_of(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        where = parts.pop(0)
        if not parts:
            return str(where)
    return ".".join(str(p) for p in parts)


async def _huitouke_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HuitoukeError)
    lang = request_lang(request)
    headers = {"Retry-After": "1"} if exc.http_status == 503 else None
    if exc.http_status >= 500:
        log.error("%s %s failed: [%s] %s", request.method, request.url.path, exc.code, exc)
    return JSONResponse({"error": exc.to_dict(lang)}, status_code=exc.http_status, headers=headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    fields = []
    for err in exc.errors():
        fields.append(
            {
                "field": _field_of(err.get("loc", ())),
                "reason": str(err.get("msg", "invalid")),
                "type": str(err.get("type", "")),
            }
        )
    names = ", ".join(dict.fromkeys(f["field"] for f in fields))
    lang = request_lang(request)
    message = t("service.invalid_input", lang, fields=names)
    return JSONResponse(
        _body(code="input.invalid", message=message, details={"fields": fields}), status_code=422
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    lang = request_lang(request)
    if exc.status_code == 400:
        body = _body(code="http.bad_request", message=t("service.bad_request", lang))
    elif exc.status_code == 404:
        path = request.url.path
        body = _body(code="http.not_found", message=t("service.not_found", lang, path=path))
    elif exc.status_code == 405:
        message = t("service.method_not_allowed", lang, method=request.method)
        body = _body(code="http.method_not_allowed", message=message)
    else:
        message = t("service.http_error", lang, status=exc.status_code)
        body = _body(code=f"http.{exc.status_code}", message=message)
    return JSONResponse(body, status_code=exc.status_code, headers=getattr(exc, "headers", None))


async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
    log.exception("%s %s: unhandled error", request.method, request.url.path, exc_info=exc)
    lang = request_lang(request)
    return JSONResponse(
        _body(code="internal", message=t("service.internal", lang)), status_code=500
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(HuitoukeError, _huitouke_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unhandled)
