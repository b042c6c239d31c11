"""OpenAI's error body, so every client library maps our failures to its own exceptions.

The official `openai` client turns the HTTP status into an exception class (400
BadRequestError, 401 AuthenticationError, 403 PermissionDeniedError, 404 NotFoundError, 413/422 APIStatusError,
429 RateLimitError, >= 500 InternalServerError) and reads `message`, `type`, `param`
and `code` from `body["error"]`.  A FastAPI default body (`{"detail": ...}`) or a
plain-text 500 breaks that mapping, so every failure goes through `APIError`.
"""
from __future__ import annotations

from fastapi.responses import JSONResponse


class APIError(Exception):
    """A request failure with its HTTP status and OpenAI error fields."""

    def __init__(self, status: int, message: str, type: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code
        self.headers = headers or {}

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def bad_request(message: str, param: str | None = None, code: str = "invalid_request") -> APIError:
    return APIError(400, message, param=param, code=code)


REALM = "loraweek-router"


def unauthorized() -> APIError:
    # the same message for a missing and a wrong key: nothing to learn from the difference;
    # a 401 must name a scheme the client can use (RFC 7235 §3.1)
    return APIError(401, "Missing or invalid API key. Send it as 'Authorization: Bearer <key>'.",
                    type="authentication_error", code="invalid_api_key",
                    headers={"WWW-Authenticate": f'Bearer realm="{REALM}"'})


def invalid_token(description: str) -> APIError:
    """A bearer JWT refused (expired, other audience, bad signature): RFC 6750 §3.1's challenge."""
    # RFC 6750 §3: error_description is printable ASCII without '"' or '\\'
    quoted = "".join(c if " " <= c <= "~" and c not in '"\\' else "'" for c in description)
    return APIError(401, f"Invalid access token: {description}.", type="authentication_error", code="invalid_token",
                    headers={"WWW-Authenticate": f'Bearer realm="{REALM}", error="invalid_token", '
                                                 f'error_description="{quoted}"'})


def insufficient_scope(scope: str) -> APIError:
    # RFC 6750 §3.1: a valid token without the scope is a 403, with the scope it needs
    return APIError(403, f"The access token lacks the scope {scope!r} this route needs.",
                    type="permission_error", code="insufficient_scope",
                    headers={"WWW-Authenticate": f'Bearer realm="{REALM}", error="insufficient_scope", scope="{scope}"'})


def model_not_found(name: str, known: list[str]) -> APIError:
    return APIError(404, f"The model `{name}` does not exist. Available: {', '.join(known)}.",
                    param="model", code="model_not_found")


def too_large(message: str, param: str | None = None) -> APIError:
    return APIError(413, message, param=param, code="context_length_exceeded")


def rate_limited(retry_after: float) -> APIError:
    seconds = max(1, int(retry_after + 0.999))
    return APIError(429, f"Rate limit reached for this API key; retry in {seconds} s.",
                    type="rate_limit_error", code="rate_limit_exceeded",
                    headers={"Retry-After": str(seconds)})


def overloaded(retry_after: int = 1) -> APIError:
    return APIError(503, "The server is busy: its request queue is full. Retry shortly.",
                    type="server_error", code="queue_full", headers={"Retry-After": str(retry_after)})
