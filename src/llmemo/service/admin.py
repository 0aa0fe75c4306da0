"""Who may call the operator's endpoints (`/admin/...`, `/dashboard`): `LLMEMO_ADMIN_TOKEN`.

The token is sent as `Authorization: Bearer <token>` (API calls, `llmemo top`) or, for the page, in
the `llmemo_admin` cookie that `/dashboard/login` sets. Without a configured token every admin
route answers 401 and says how to set one; a wrong token is 401 too. The token is compared in
constant time and never logged or echoed.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from pydantic import SecretStr
from starlette.requests import Request
from starlette.responses import Response

from llmemo.service.errors import AuthError, error_response

__all__ = ["COOKIE", "HINT", "AdminAuth", "admin_only"]

COOKIE = "llmemo_admin"
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
        candidate = value.strip() if scheme.lower() == "bearer" else request.cookies.get(COOKIE)
        if not self.matches(candidate):
            raise AuthError(f"missing or wrong admin token: {HINT}")


def admin_only(auth: AdminAuth, handler: Handler) -> Handler:
    """`handler` behind the admin credential; a refusal is an OpenAI-shaped 401 JSON error."""

    async def guarded(request: Request) -> Response:
        try:
            auth.check(request)
        except AuthError as exc:
            return error_response(exc, "openai")
        return await handler(request)

    return guarded
