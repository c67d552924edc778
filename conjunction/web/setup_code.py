"""The one-time setup code, and what it grants: a browser cookie and signed manifest-flow states.

The code is made at start and printed in the log as part of the setup URL; only a request that
carries it may start the setup. That request gets a cookie naming a random browser id, signed with
a key derived from the code; each manifest form carries a state signed for that browser id, so the
callback acts only in the browser that sent the form. Nothing is kept for a visitor without the
code, so no flood of requests can push a real setup's state out; the nonces of used states are
kept so that each is accepted once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

STATE_TTL = 3600  # seconds a setup form stays usable


def _token() -> str:
    return secrets.token_urlsafe(16)


def _same(given: str, expected: str) -> bool:
    # Header values may hold lone surrogates (undecodable bytes); they must compare, not raise.
    return hmac.compare_digest(
        given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass")
    )


class SetupCode:
    def __init__(self, code: str | None = None) -> None:
        self.code = code or secrets.token_urlsafe(32)
        self._key = hmac.new(self.code.encode(), b"conjunction setup", hashlib.sha256).digest()
        self._used_states: set[str] = set()

    def matches(self, candidate: str) -> bool:
        return _same(candidate, self.code)

    def _sign(self, *parts: str) -> str:
        message = "|".join(parts).encode("utf-8", "surrogatepass")
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def _signed(self, signature: str, *parts: str) -> bool:
        return _same(signature, self._sign(*parts))

    def new_cookie(self) -> str:
        """A cookie value for a browser that showed the code: `browser-id.signature`."""
        browser = _token()
        return f"{browser}.{self._sign('browser', browser)}"

    def browser(self, cookie: str | None) -> str | None:
        """The browser id of a cookie this code signed, else None."""
        browser, _, signature = (cookie or "").partition(".")
        return browser if browser and self._signed(signature, "browser", browser) else None

    def new_state(self, browser: str, now: float | None = None) -> str:
        """A manifest-flow state for this browser: `nonce.expiry.signature`."""
        nonce = _token()
        expires = str(int((time.time() if now is None else now) + STATE_TTL))
        return f"{nonce}.{expires}.{self._sign('state', browser, nonce, expires)}"

    def use_state(self, browser: str, state: str, now: float | None = None) -> bool:
        """True once for a state signed for this browser and not expired."""
        nonce, _, rest = state.partition(".")
        expires, _, signature = rest.partition(".")
        if not (expires.isascii() and expires.isdigit()) or not self._signed(
            signature, "state", browser, nonce, expires
        ):
            return False
        if int(expires) < (time.time() if now is None else now) or nonce in self._used_states:
            return False
        self._used_states.add(nonce)
        return True
