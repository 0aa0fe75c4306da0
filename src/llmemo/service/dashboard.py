"""The operator's page, `GET /dashboard`: one static HTML page and its script and style sheet.

Everything the page shows it reads from the admin API with the `llmemo_admin` cookie
(`/admin/stats`, `/admin/semantic-hits`, `/admin/entries`), and its changes are POSTs to the admin
API (`/admin/invalidate`, `/admin/feedback`) with the CSRF header (service/admin.py). The script
builds the DOM with `textContent` and SVG elements only (no HTML from data). The files are package
data (`llmemo/service/static/`), served from memory: no CDN, nothing downloaded at run time.

`POST /dashboard/login` takes the token from the login form and sets the cookie (HttpOnly,
SameSite=Strict, Path=/; Secure over HTTPS); `POST /dashboard/logout` clears it.
"""

from __future__ import annotations

import html
from importlib import resources
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from llmemo.service.admin import COOKIE, AdminAuth, same_origin
from llmemo.service.errors import AuthError

__all__ = ["SECURITY_HEADERS", "STATIC", "dashboard_routes"]

STATIC = {
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
}
"""The page's assets (`/dashboard/static/<name>`), each from the package's static/ directory."""
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}
_MAX_FORM = 4096  # bytes of a login form
_HTML = "text/html; charset=utf-8"


def dashboard_routes(auth: AdminAuth, show_prompts: bool) -> list[Route]:
    """/dashboard, its login and logout, and its static files."""
    files = {name: _read(name) for name in ("dashboard.html", *STATIC)}
    page = files["dashboard.html"].replace(b"{{show_prompts}}", b"on" if show_prompts else b"off")

    async def dashboard(request: Request) -> Response:
        try:
            auth.check(request)
        except AuthError:
            return _login_page(request, auth, None)
        return Response(page, 200, SECURITY_HEADERS, media_type=_HTML)

    async def login(request: Request) -> Response:
        if not same_origin(request, False):
            return _login_page(
                request, auth, "the login form must be sent from this service's page"
            )
        raw = await request.body()
        fields = parse_qs(raw[:_MAX_FORM].decode("utf-8", "replace"), max_num_fields=4)
        token = (fields.get("token") or [""])[0]
        if not auth.matches(token):
            return _login_page(request, auth, "wrong token" if auth.configured else None)
        answer = RedirectResponse(_home(request), 303, SECURITY_HEADERS)
        answer.set_cookie(
            COOKIE,
            token,
            path="/",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return answer

    async def logout(request: Request) -> Response:
        answer = RedirectResponse(_home(request), 303, SECURITY_HEADERS)
        answer.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
        return answer

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        media = STATIC.get(name)
        if media is None:
            return Response(b"not found", 404, media_type="text/plain")
        headers = {**SECURITY_HEADERS, "cache-control": "no-cache"}
        return Response(files[name], 200, headers, media_type=media)

    return [
        Route("/dashboard", dashboard, methods=["GET"]),
        Route("/dashboard/login", login, methods=["POST"]),
        Route("/dashboard/logout", logout, methods=["POST"]),
        Route("/dashboard/static/{name}", static, methods=["GET"]),
    ]


def _read(name: str) -> bytes:
    return resources.files("llmemo.service").joinpath("static", name).read_bytes()


def _home(request: Request) -> str:
    root: str = request.scope.get("root_path", "")
    return root + "/dashboard"


def _login_page(request: Request, auth: AdminAuth, problem: str | None) -> Response:
    """401: a login form, or (no token configured) how to configure one."""
    root = html.escape(_home(request).removesuffix("/dashboard"), quote=True)
    if not auth.configured:
        body = (
            "<p>The dashboard is locked: no admin token is configured.</p>"
            "<p>Start <code>llmemo serve</code> with <code>LLMEMO_ADMIN_TOKEN</code> set to a long "
            "random secret (or <code>admin_token</code> in its <code>--config</code> file), e.g.</p>"
            "<pre>export LLMEMO_ADMIN_TOKEN=$(python -c 'import secrets; "
            "print(secrets.token_urlsafe(32))')\nllmemo serve</pre>"
            "<p>then open this page again and enter the token.</p>"
        )
    else:
        note = f'<p class="problem" role="alert">{html.escape(problem)}</p>' if problem else ""
        body = (
            "<p>This page is for the service's operator: enter the admin token "
            "(<code>LLMEMO_ADMIN_TOKEN</code>).</p>"
            f"{note}"
            f'<form method="post" action="{root}/dashboard/login">'
            '<label for="token">Admin token</label> '
            '<input id="token" name="token" type="password" autocomplete="current-password" '
            "required> "
            '<button type="submit">Open the dashboard</button></form>'
        )
    document = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>llmemo dashboard: sign in</title>"
        f'<link rel="stylesheet" href="{root}/dashboard/static/dashboard.css"></head>'
        f'<body><main class="login"><h1>llmemo dashboard</h1>{body}</main></body></html>'
    )
    return Response(document, 401, SECURITY_HEADERS, media_type=_HTML)
