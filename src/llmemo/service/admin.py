"""Who may call the operator's endpoints (`/admin/...`, `/dashboard`): `LLMEMO_ADMIN_TOKEN`.

The token is sent as `Authorization: Bearer <token>` (API calls, `llmemo top`) or, for the page, in
the `llmemo_admin` cookie that `/dashboard/login` sets (HttpOnly, SameSite=Strict); a change (a
POST) made with the cookie must also come from the page itself (`same_origin`). Without a
configured token every admin route answers 401 and says how to set one; a wrong token is 401 too.
The token is compared in constant time and never logged or echoed.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from pydantic import SecretStr
from starlette.requests import Request
from starlette.responses import Response

from llmemo.service.errors import AuthError, error_response

__all__ = ["COOKIE", "CSRF_HEADER", "HINT", "AdminAuth", "admin_only", "same_origin"]

COOKIE = "llmemo_admin"
CSRF_HEADER = "x-llmemo-csrf"  # sent as "1" by the dashboard's own changes (POSTs)
HINT = (
    "this is an operator endpoint: start llmemo serve with LLMEMO_ADMIN_TOKEN set (or admin_token "
    "in its --config file), and send it as 'Authorization: Bearer <token>'"
)

Handler = Callable[[Request], Awaitable[Response]]


class AdminAuth:
    """Checks a request's admin credential against the configured token (None: nobody is admin)."""

    def __init__(self, token: SecretStr | None) -> None:
        self._token = token.get_secret_value().encode() if token is not None else None

    @property
    def configured(self) -> bool:
        return self._token is not None

    def matches(self, candidate: str | None) -> bool:
        """Whether `candidate` is the token (constant time; False when no token is configured)."""
        if self._token is None or not candidate:
            return False
        return hmac.compare_digest(candidate.encode(), self._token)

    def check(self, request: Request) -> None:
        """Raise AuthError (401, with the hint) unless the request carries the token."""
        if self._token is None:
            raise AuthError(f"no admin token is configured: {HINT}")
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        bearer = scheme.lower() == "bearer"
        candidate = value.strip() if bearer else request.cookies.get(COOKIE)
        if not self.matches(candidate):
            raise AuthError(f"missing or wrong admin token: {HINT}")
        if not bearer and request.method not in SAFE_METHODS and not same_origin(request, True):
            raise AuthError(
                f"a change made with the dashboard's cookie must come from the page itself "
                f"(same origin, with the {CSRF_HEADER} header)"
            )


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def same_origin(request: Request, marked: bool) -> bool:
    """The request comes from a page of this service: no cross-site fetch metadata, an `Origin`
    (when sent) naming this host, and with `marked` the CSRF header too (a header no other
    site's page can add: the service answers no CORS preflight)."""
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc != request.headers.get("host"):
        return False
    return not marked or request.headers.get(CSRF_HEADER) == "1"


def admin_only(auth: AdminAuth, handler: Handler) -> Handler:
    """`handler` behind the admin credential; a refusal is an OpenAI-shaped 401 JSON error."""

    async def guarded(request: Request) -> Response:
        try:
            auth.check(request)
        except AuthError as exc:
            return error_response(exc, "openai")
        return await handler(request)

    return guarded
