"""Every error the API answers has one shape: `{"error": {"code", "message", ...extra}}`.

Handlers below turn FastAPI's own failures (422 validation, 404/405 routing, unexpected
exceptions) into that shape too, so no client input can produce an unshaped answer.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, TypeVar

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from libs.infra.db.pool import replace_ended_sessions

log = logging.getLogger("hookpost.api")


# The code in the error body of each status the API answers with (seed 002's names).
_STATUS_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    429: "RATE_LIMITED",
    503: "SERVICE_UNAVAILABLE",
}


class ApiError(Exception):
    status_code = 400

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra

    @property
    def code(self) -> str:
        return _STATUS_CODES[self.status_code]

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, **self.extra}}

    def headers(self) -> dict[str, str] | None:
        return None

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status_code, headers=self.headers())


class BadRequestError(ApiError):
    status_code = 400


class UnauthorizedError(ApiError):
    status_code = 401

    def headers(self) -> dict[str, str] | None:
        return {"WWW-Authenticate": "Bearer"}


class ForbiddenError(ApiError):
    """Carries `events`: the event names the caller's plan does not allow."""

    status_code = 403

    def __init__(self, message: str, events: Sequence[str]) -> None:
        super().__init__(message, events=list(events))


class NotFoundError(ApiError):
    status_code = 404

    @classmethod
    def of(cls, what: str, key: str) -> NotFoundError:
        """How a 404 names what it did not find: `mapping job 'job_1' not found`."""
        return cls(f"{what} {key!r} not found")


class ConflictError(ApiError):
    status_code = 409


class PayloadTooLargeError(ApiError):
    """Carries `maxBytes`: the limit of the route that refused the body."""

    status_code = 413

    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"request body is larger than {max_bytes} bytes", maxBytes=max_bytes)


class RateLimitedError(ApiError):
    """Carries `retryAfterSeconds`, also sent as the `Retry-After` header."""

    status_code = 429

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message, retryAfterSeconds=retry_after_s)
        self.retry_after_s = retry_after_s

    def headers(self) -> dict[str, str] | None:
        return {"Retry-After": str(self.retry_after_s)}


class ServiceUnavailableError(ApiError):
    status_code = 503


def error_response(
    status_code: int, code: str, message: str, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message, **extra}},
        status_code=status_code,
        headers=headers,
    )


def _location(loc: Sequence[int | str]) -> str:
    # ("body", "events", 0) reads better as "events[0]"; the "body"/"query" prefix is noise.
    parts = list(loc[1:]) if loc and loc[0] in {"body", "query", "path", "header"} else list(loc)
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "body"


def _validation_details(exc: RequestValidationError) -> list[dict[str, str]]:
    details = []
    for error in exc.errors():
        details.append({"field": _location(error.get("loc", ())), "message": error.get("msg", "")})
    return details


def _validation_message(exc: RequestValidationError) -> str:
    errors = exc.errors()
    if any(error.get("type") == "json_invalid" for error in errors):
        return "request body is not valid JSON"
    first = errors[0] if errors else {}
    if tuple(first.get("loc", ())) == ("body",):
        # The body as a whole is wrong: say so plainly rather than "body: Field required".
        if first.get("type") == "missing":
            return "a JSON request body is required"
        return "the request body must be a JSON object"
    message = f"{_location(first.get('loc', ()))}: {first.get('msg', 'invalid request')}"
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problem(s), see details)"
    return message


async def _api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return exc.response()


def validation_error_body(exc: RequestValidationError) -> dict[str, Any]:
    """Malformed input's error body (also one item's, in a batch of events)."""
    return BadRequestError(_validation_message(exc), details=_validation_details(exc)).body()


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # FastAPI says 422; the product's contract (seed 002) says malformed input is a 400.
    return JSONResponse(validation_error_body(exc), status_code=400)


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _STATUS_CODES.get(exc.status_code, "ERROR")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ").lower()
    if exc.status_code == 404 and exc.detail == "Not Found":
        message = "no such route"
    return error_response(exc.status_code, code, message, headers=exc.headers)


# PostgreSQL restarting, refusing connections or gone mid-statement: a 503 the client can
# retry, not a 500 (an event is accepted only once committed, and then answered 202).
DATABASE_UNAVAILABLE: tuple[type[Exception], ...] = (
    asyncpg.PostgresConnectionError,  # incl. a connection closed mid-statement
    asyncpg.CannotConnectNowError,  # "the database system is starting up / shutting down"
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
    # A session PostgreSQL terminated (57P01, as a restart does) can fail its next statement
    # with "cannot switch to state 12; another operation is in progress" (asyncpg#1069).
    asyncpg.InternalClientError,
    ConnectionError,  # refused or reset before PostgreSQL said anything
)
DATABASE_RETRY_AFTER_S = 5


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    log.warning(
        "database unavailable, answering 503",
        extra={"path": request.url.path, "error": repr(exc)},
    )
    # The next requests get new sessions, not this one's ended siblings (libs/infra/db/pool.py).
    pool: asyncpg.Pool = request.app.state.api.pool
    await replace_ended_sessions(pool, exc)
    return error_response(
        503,
        "SERVICE_UNAVAILABLE",
        "the database is unavailable: the request may not have been carried out; retry"
        " later (with the same Idempotency-Key, which keeps a retried event from doubling)",
        headers={"Retry-After": str(DATABASE_RETRY_AFTER_S)},
    )


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", extra={"path": request.url.path}, exc_info=exc)
    return error_response(500, "INTERNAL_ERROR", "internal error")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    for database_error in DATABASE_UNAVAILABLE:
        app.add_exception_handler(database_error, _database_unavailable)
    app.add_exception_handler(Exception, _unexpected_error)


_T = TypeVar("_T")


def found(record: _T | None, not_found: NotFoundError) -> _T:
    """What the caller asked for by id; None (no such row, or another org's) is the 404."""
    if record is None:
        raise not_found
    return record
