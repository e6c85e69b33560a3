"""Errors of the management API, in the 1NCE OS error format.

Every error answer is ``{"statusCode": N, "statusText": "...", "errors": [{"message": ..., "field"?: ...}]}``
(the ``badRequestResponse``/``notFoundResponse``/... schemas of ``1nce-os.json``). Handlers raise
:class:`ApiError`; the middleware turns it, aiohttp's own HTTP errors under the API prefix and
unexpected exceptions into such an answer.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from http import HTTPStatus
from typing import Any

from aiohttp import web

log = logging.getLogger("nce.api")

STATUS_TEXT = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Server Error",
    501: "Not Implemented",
}


class ApiError(Exception):
    """An answer other than success; ``field`` names the parameter or body field at fault."""

    def __init__(self, status: int, message: str, *, field: str | None = None,
                 headers: Mapping[str, str] | None = None, body: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.headers = dict(headers or {})
        self.body = body  # a complete body in another format (the token endpoint's)

    def response(self) -> web.Response:
        body = self.body if self.body is not None else error_body(self.status, self.message, self.field)
        return web.json_response(body, status=self.status, headers=self.headers)


def error_body(status: int, message: str, field: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"message": message}
    if field is not None:
        error["field"] = field
    text = STATUS_TEXT.get(status) or HTTPStatus(status).phrase
    return {"statusCode": status, "statusText": text, "errors": [error]}


def bad_request(message: str, field: str | None = None) -> ApiError:
    return ApiError(400, message, field=field)


def not_found(message: str) -> ApiError:
    return ApiError(404, message)


def conflict(message: str) -> ApiError:
    return ApiError(409, message)


def forbidden(message: str) -> ApiError:
    return ApiError(403, message)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return exc.response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if exc.status == 404:
            message = f"no route {request.path}"
        elif exc.status == 405:
            message = f"{request.method} is not allowed on {request.path}"
        elif exc.status == 413:
            message = "request body too large"
        else:
            message = exc.reason
        headers = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
        return web.json_response(error_body(exc.status, message), status=exc.status, headers=headers)
    except Exception:
        log.exception("API %s %s failed", request.method, request.path,
                      extra={"event": "api_error", "method": request.method, "path": request.path})
        return web.json_response({"statusText": "Server Error", "errors": [{"message": "internal error; see the log"}]},
                                 status=500)
