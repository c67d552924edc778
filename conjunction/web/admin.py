"""The admin: a request carrying `Authorization: Bearer <CONJUNCTION_ADMIN_TOKEN>`, or a browser
that logged in with that token on `/login`.

Logging in sets a signed, HttpOnly, SameSite=Strict cookie (Secure when the public URL is
https) that holds no secret: it is signed with a key derived from the server's secret key and
the admin token, so changing either logs every browser out.
"""

from __future__ import annotations

import hmac
from urllib.parse import parse_qsl, urlsplit

from aiohttp import web
from itsdangerous import BadSignature, URLSafeTimedSerializer

from conjunction.web.bodies import read_body
from conjunction.web.context import RUNTIME
from conjunction.web.errors import RequestError
from conjunction.web.templating import render

COOKIE = "conjunction_admin"
SESSION_SECONDS = 12 * 3600
LOGIN_BODY_LIMIT = 8 * 1024  # the form's token and the path to go back to
FORM = "application/x-www-form-urlencoded"
routes = web.RouteTableDef()


def usable_token(token: str | None) -> str | None:
    """`token` if it is printable ASCII, else None: every token Conjunction hands out is, and a
    header's undecodable bytes (lone surrogates) or non-ASCII text could not be compared or
    hashed. Such a token is no token: a 401 for the API, anonymous for pages."""
    if token and token.isascii() and token.isprintable():
        return token
    return None


def bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return usable_token(token.strip()) if scheme.lower() == "bearer" else None


def _serializer(request: web.Request) -> URLSafeTimedSerializer | None:
    runtime = request.app[RUNTIME]
    admin = runtime.settings.admin_token
    if not admin:
        return None
    key = runtime.engine.signer.key_for(f"admin-session:{admin}")
    return URLSafeTimedSerializer(key, salt="admin-session")


def is_admin(request: web.Request) -> bool:
    admin = request.app[RUNTIME].settings.admin_token
    if not admin:
        return False
    token = bearer(request)
    if token is not None:
        return hmac.compare_digest(token.encode(), admin.encode())
    cookie = request.cookies.get(COOKIE)
    serializer = _serializer(request)
    if cookie is None or serializer is None:
        return False
    try:
        return bool(serializer.loads(cookie, max_age=SESSION_SECONDS) == "admin")
    except BadSignature:
        return False


def _local(target: str | None) -> str:
    """Only a path on this server is a place to go back to after logging in."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    parts = urlsplit(target)
    return "/" if parts.scheme or parts.netloc else target


@routes.get("/login")
async def login_form(request: web.Request) -> web.Response:
    return _form(request, next_path=_local(request.query.get("next")))


def _form(
    request: web.Request, *, next_path: str, error: str = "", status: int = 200
) -> web.Response:
    enabled = bool(request.app[RUNTIME].settings.admin_token)
    return render(
        request,
        "login.html",
        status=status,
        title="Admin login",
        enabled=enabled,
        error=error,
        next_path=next_path,
    )


async def _login_form(request: web.Request) -> dict[str, str]:
    """The login form's fields, reading at most LOGIN_BODY_LIMIT bytes (413 past that): the
    body is read before anyone is known, so it never costs more than a form holds."""
    if request.content_type not in (FORM, "application/octet-stream"):
        raise RequestError(415, f"send the login form as {FORM}")
    body = await read_body(request, limit=LOGIN_BODY_LIMIT)
    fields = parse_qsl(body.decode("utf-8", errors="replace"), max_num_fields=20)
    return dict(fields)


@routes.post("/login")
async def login(request: web.Request) -> web.StreamResponse:
    try:
        form = await _login_form(request)
    except ValueError:  # more fields than a login form has
        raise RequestError(400, "this is not the login form") from None
    next_path = _local(str(form.get("next") or "/"))
    token = str(form.get("token") or "")
    admin = request.app[RUNTIME].settings.admin_token
    serializer = _serializer(request)
    if not admin or serializer is None:
        return _form(request, next_path=next_path, status=404)
    if not hmac.compare_digest(token.encode(errors="surrogatepass"), admin.encode()):
        return _form(request, next_path=next_path, error="That is not the admin token.", status=401)
    response = web.Response(status=303, headers={"Location": next_path})
    response.set_cookie(
        COOKIE,
        serializer.dumps("admin"),
        max_age=SESSION_SECONDS,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=request.app[RUNTIME].settings.public_url.startswith("https://"),
    )
    return response


@routes.post("/logout")
async def logout(request: web.Request) -> web.StreamResponse:
    response = web.Response(status=303, headers={"Location": "/"})
    response.del_cookie(COOKIE, path="/")
    return response
