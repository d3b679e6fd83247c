"""Browser sign-in for a guarded mount (the monitoring dashboard) when API keys are on.

A browser cannot attach ``Authorization`` to page loads, so a mount built as
:class:`~modelport.server.routes.SignInMount` also serves, relative to itself:

* ``GET login`` (public): a small form asking for an API key (no external assets);
* ``POST login`` (public, form-encoded ``key=...``, at most :data:`MAX_FORM_BYTES`): the key is checked
  by the app's :class:`~modelport.server.auth.Gate` as a header key would be for the mount's policy
  (registry keys, scopes, the failure limiter and counter all apply). Success answers 303 to the mount
  with the cookie ``modelport_key`` (``HttpOnly; SameSite=Strict; Path=<mount>; Max-Age=43200``, plus
  ``Secure`` over https); failure answers the form again with an error (the key is never echoed);
* ``POST logout``: clears the cookie and answers 303 to the login page.

The cookie is accepted for GET and HEAD requests under that mount only (read-only, so a forged
cross-site request can change nothing); every other route, and every other method, ignores it. A
browser (``Accept: text/html``) asking for a page without a valid key is sent to the login page; API
clients keep the JSON 401.
"""

from __future__ import annotations

import base64
import hashlib
import html
from collections.abc import Sequence
from typing import Literal
from urllib.parse import parse_qs, quote, unquote

from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.types import Receive, Scope, Send

from modelport.core.errors import PermissionDenied, Unauthenticated
from modelport.server.auth import Gate, Policy
from modelport.server.errors import TooManyFailures
from modelport.server.metrics import ServerMetrics

COOKIE = "modelport_key"
MAX_AGE_S = 43_200
"""The cookie lives 12 hours; the key itself is checked again on every request."""
MAX_FORM_BYTES = 4096
READ_ONLY = frozenset({"GET", "HEAD"})

Page = Literal["login", "logout"]

_STYLE = (
    "body{margin:0;background:#f4f6fb;color:#1d2433;"
    'font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif}'
    "header{background:#151b2c;color:#fff;padding:14px 24px;font-weight:600}"
    "main{max-width:360px;margin:64px auto;background:#fff;border:1px solid #e3e7ef;border-radius:8px;padding:24px}"
    "h1{font-size:18px;margin:0 0 16px}label{display:block;color:#6b7489;margin-bottom:6px}"
    "input{width:100%;box-sizing:border-box;padding:8px;border:1px solid #e3e7ef;border-radius:6px;font:inherit}"
    "button{margin-top:16px;width:100%;padding:8px;border:0;border-radius:6px;background:#5b7cfa;color:#fff;"
    "font:inherit;cursor:pointer}.error{color:#d93f45;margin:0 0 12px}"
)
_STYLE_HASH = base64.b64encode(hashlib.sha256(_STYLE.encode()).digest()).decode()
_CSP = (
    f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>modelport · sign in</title>
<style>{style}</style>
</head>
<body>
<header>modelport · monitoring</header>
<main>
<h1>Sign in</h1>
{error}<form method="post" action="{action}">
<label for="key">API key</label>
<input id="key" name="key" type="password" autocomplete="current-password" required autofocus>
<button type="submit">Sign in</button>
</form>
</main>
</body>
</html>
"""


def cookie_token(headers: Sequence[tuple[bytes, bytes]]) -> str | None:
    """The key held in the ``modelport_key`` cookie, if any."""
    for name, value in headers:
        if name != b"cookie":
            continue
        for part in value.decode("latin-1").split(";"):
            key, sep, text = part.strip().partition("=")
            if sep and key == COOKIE and text.strip():
                return unquote(text.strip())
    return None


def wants_html(headers: Sequence[tuple[bytes, bytes]]) -> bool:
    """Whether the client is a browser asking for a page (``Accept`` names ``text/html``)."""
    return any(name == b"accept" and b"text/html" in value for name, value in headers)


def mount_root(scope: Scope) -> str:
    """The mount's own path (e.g. ``/dashboard``), as the browser sees it."""
    return str(scope.get("root_path", "")).rstrip("/")


def page_of(scope: Scope) -> Page | None:
    """``login`` or ``logout`` when the request is for one of the sign-in pages of the mount."""
    path, root = str(scope["path"]), mount_root(scope)
    relative = path[len(root) :] if path.startswith(root) else path
    if relative in ("/login", "/login/"):
        return "login"
    if relative in ("/logout", "/logout/"):
        return "logout"
    return None


def login_redirect(scope: Scope) -> Response:
    """303 to the mount's login page."""
    return RedirectResponse(f"{mount_root(scope)}/login", status_code=303, headers={"Cache-Control": "no-store"})


class SignIn:
    """Serves the login and logout pages of one mount.

    Args:
        gate: The app's authentication gate.
        metrics: Counts authentication failures.
        policy: The mount's policy, which a key must satisfy to sign in.
    """

    def __init__(self, gate: Gate, metrics: ServerMetrics, policy: Policy) -> None:
        self.gate = gate
        self.metrics = metrics
        self.policy = policy

    async def __call__(self, page: Page, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope.get("method", "GET")
        if page == "logout" and method == "POST":
            response: Response = login_redirect(scope)
            self._set_cookie(response, scope, "", max_age=0)
        elif page == "login" and method in READ_ONLY:
            response = self._form(scope)
        elif page == "login" and method == "POST":
            response = await self._login(scope, receive)
        else:
            response = Response(status_code=405, headers={"Allow": "POST" if page == "logout" else "GET, HEAD, POST"})
        await response(scope, receive, send)

    async def _login(self, scope: Scope, receive: Receive) -> Response:
        form = await _read_form(scope, receive)
        if isinstance(form, Response):
            return form
        key = (form.get("key") or [""])[0].strip()
        client = scope.get("client")
        try:
            await self.gate.authorize(self.policy, (), client[0] if client else "unknown", token=key or None)
        except TooManyFailures as exc:
            return self._form(scope, exc.message, 429, {"Retry-After": str(exc.retry_after_s)})
        except Unauthenticated:
            self.metrics.auth_failures.inc()
            return self._form(scope, "That API key is not valid.", 401)
        except PermissionDenied:
            return self._form(scope, "That API key may not view the dashboard.", 403)
        response = RedirectResponse(f"{mount_root(scope)}/", status_code=303, headers={"Cache-Control": "no-store"})
        if self.gate.enabled:
            self._set_cookie(response, scope, quote(key, safe="-._~+/="), max_age=MAX_AGE_S)
        return response

    @staticmethod
    def _set_cookie(response: Response, scope: Scope, value: str, *, max_age: int) -> None:
        parts = [f"{COOKIE}={value}", "HttpOnly", "SameSite=Strict", f"Path={mount_root(scope) or '/'}"]
        parts.append(f"Max-Age={max_age}")
        if scope.get("scheme") == "https":
            parts.append("Secure")
        response.raw_headers.append((b"set-cookie", "; ".join(parts).encode("latin-1")))

    @staticmethod
    def _form(
        scope: Scope, error: str | None = None, status: int = 200, headers: dict[str, str] | None = None
    ) -> Response:
        text = _PAGE.format(
            style=_STYLE,
            action=html.escape(f"{mount_root(scope)}/login", quote=True),
            error=f'<p class="error" role="alert">{html.escape(error)}</p>\n' if error else "",
        )
        extra = {"Content-Security-Policy": _CSP, "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}
        return HTMLResponse(text, status_code=status, headers={**extra, **(headers or {})})


async def _read_form(scope: Scope, receive: Receive) -> dict[str, list[str]] | Response:
    """The form-encoded body, or a 413/415 response; never reads more than :data:`MAX_FORM_BYTES`."""
    headers = dict(scope["headers"])
    if not headers.get(b"content-type", b"").startswith(b"application/x-www-form-urlencoded"):
        return Response("Send the form (application/x-www-form-urlencoded).", status_code=415)
    body = bytearray()
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        body += message.get("body", b"")
        more = message.get("more_body", False)
        if len(body) > MAX_FORM_BYTES:
            return Response("The form is too large.", status_code=413)
    try:
        return parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=8)
    except ValueError:
        return Response("The form has too many fields.", status_code=400)
