"""The webhook runner: starts a downstream pipeline by calling its CI system's URL.

For a `trigger.webhook` (CONTRACT §4, §5) it sends the trigger event as JSON, or the body
template filled in (`conjunction.config.body_template`) as JSON or as a form, with the configured
method and headers, signed with `X-Conjunction-Signature-256: sha256=<HMAC-SHA256 of the bytes
sent>` keyed with the named secret. Addresses off limits are refused (`conjunction.address_guard`)
and redirects are never followed. A 5xx, 408 or 429 answer, a time-out or a lost connection is worth
retrying (the queue retries with backoff); any other answer outside 2xx is a permanent reason on the
downstream's row, with the status and the start of the answer. A run id or URL in the answer
(Buildkite's `id` and `web_url`, GitLab's, Jenkins' `Location` queue item) is kept.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode, urljoin

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from conjunction.address_guard import AddressRefused, GuardedResolver, check_literal
from conjunction.config import body_template
from conjunction.config.repo_config import Webhook
from conjunction.runner import PipelineStarted, TriggerError, TriggerRequest
from conjunction.secrets import SecretRefused, SecretStore

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Conjunction-Signature-256"
EVENT_HEADER = "X-Conjunction-Event"
USER_AGENT = "conjunction"
CONTENT_TYPES = {"json": "application/json", "form": "application/x-www-form-urlencoded"}
TIMEOUT = aiohttp.ClientTimeout(total=30, sock_connect=10)
ANSWER_READ_LIMIT = 64 * 1024
REASON_ANSWER_CHARS = 200
RETRIED_STATUSES = frozenset({408, 429})
MAX_URL = 2000
MAX_RUN_ID = 100


def trigger_event(request: TriggerRequest) -> dict[str, Any]:
    """The trigger event as a webhook receives it by default (CONTRACT §5), and as a run that
    claims its trigger is answered (`POST /api/v1/claims`)."""
    return {
        "event": request.event_id,
        "project": request.project,
        "upstream": request.upstream,
        "upstream_sha": request.upstream_sha,
        "upstream_ref": request.upstream_ref,
        "upstream_url": request.upstream_url,
        "callback_url": request.callback_url,
        "callback_token": request.callback_token,
        "parent": request.parent_id,
        "root": request.root_id,
        "depth": request.depth,
        "owners": list(request.owners),
        "artifacts": [dict(artifact) for artifact in request.artifacts],
        **request.run_fields(),
    }


def placeholder_values(request: TriggerRequest) -> dict[str, str]:
    """The text of each placeholder of `conjunction.config.body_template.PLACEHOLDERS` for one
    request."""
    event = trigger_event(request)
    values = {
        name: "" if value is None else str(value)
        for name, value in event.items()
        if name in body_template.PLACEHOLDERS
    }
    values["artifacts"] = json.dumps(event["artifacts"])
    for name in ("change", "kind", "step"):
        values.setdefault(name, "")  # an ordinary run: empty
    return values


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def encode(hook: Webhook, request: TriggerRequest, secret: Callable[[str], str]) -> bytes:
    """The exact bytes to send: the filled template (or the trigger event) as JSON or a form."""
    if hook.body is None:
        body: Any = trigger_event(request)
    else:
        body = body_template.fill(hook.body, placeholder_values(request), secret)
    if hook.format == "form":
        fields = {
            str(key): value if isinstance(value, str) else json.dumps(value)
            for key, value in body.items()
        }
        return urlencode(fields).encode()
    return json.dumps(body).encode()


class WebhookRunner:
    """`conjunction.runner.Runner` for `trigger.webhook`. `close()` it when the app stops."""

    def __init__(
        self,
        secrets: SecretStore,
        *,
        allow_private: bool = False,
        resolver: GuardedResolver | None = None,
        timeout: aiohttp.ClientTimeout = TIMEOUT,
    ) -> None:
        self._secrets = secrets
        self._allow_private = allow_private
        self._timeout = timeout
        connector = aiohttp.TCPConnector(
            resolver=None if allow_private else resolver or GuardedResolver()
        )
        self._session = aiohttp.ClientSession(connector=connector, timeout=timeout)

    async def close(self) -> None:
        await self._session.close()

    async def find_started(self, request: TriggerRequest) -> PipelineStarted | None:
        """A webhook cannot be asked what it started."""
        return None

    async def start_pipeline(self, request: TriggerRequest) -> PipelineStarted:
        hook = request.trigger.webhook
        if hook is None:
            raise TriggerError(f"{request.project} has no trigger.webhook")
        # secret values in this request, kept out of any reason: the named secrets it uses and
        # the callback token (a CI echoing the request must not publish it on the event page)
        used: list[str] = [request.callback_token]

        def secret(name: str) -> str:
            try:
                value = self._secrets.value(name, request.project)
            except SecretRefused as exc:
                raise TriggerError(str(exc)) from None
            used.append(value)
            return value

        try:
            body = encode(hook, request, secret)
            headers = self._headers(hook, request, secret)
        except KeyError as exc:
            raise TriggerError(f"unknown placeholder ${{{exc.args[0]}}}") from None
        if hook.secret is not None:
            headers[SIGNATURE_HEADER] = sign(secret(hook.secret), body)
        return await self._send(request.event_id, hook, body, headers, used)

    async def _send(
        self, event_id: str, hook: Webhook, body: bytes, headers: CIMultiDict[str], used: list[str]
    ) -> PipelineStarted:
        """One request, never redirected, to an address it may reach; what its answer says."""
        host = URL(hook.url).host or ""
        try:
            if not self._allow_private:
                check_literal(host)
            async with self._session.request(
                hook.method, hook.url, data=body, headers=headers, allow_redirects=False
            ) as answer:
                text = (await answer.content.read(ANSWER_READ_LIMIT)).decode("utf-8", "replace")
                log.info(
                    "trigger %s: %s answered %d",
                    event_id,
                    host,
                    answer.status,
                    extra={"event_id": event_id},
                )
                said = CIMultiDict(
                    (name, _redact(value, used)) for name, value in answer.headers.items()
                )
                return _started(hook.url, answer.status, said, _redact(text, used))
        except AddressRefused as exc:
            raise TriggerError(str(exc)) from None
        except aiohttp.InvalidURL as exc:
            raise TriggerError(f"{hook.url} is not a URL that can be called ({exc})") from None
        except TimeoutError:
            reason = f"{host} did not answer within {self._timeout.total:g} s"
            raise TriggerError(reason, permanent=False) from None
        except (aiohttp.ClientError, OSError) as exc:
            reason = f"{host} could not be reached ({str(exc) or type(exc).__name__})"
            raise TriggerError(reason, permanent=False) from None
        except ValueError as exc:  # a header aiohttp will not send; its text may hold a value
            reason = f"the request to {host} could not be made ({type(exc).__name__})"
            raise TriggerError(reason) from None

    @staticmethod
    def _headers(
        hook: Webhook, request: TriggerRequest, secret: Callable[[str], str]
    ) -> CIMultiDict[str]:
        headers = CIMultiDict(
            {
                "Content-Type": CONTENT_TYPES[hook.format],
                "User-Agent": USER_AGENT,
                EVENT_HEADER: request.event_id,
            }
        )
        values = placeholder_values(request)
        for name, template in hook.headers.items():
            value = body_template.fill(template, values, secret)
            if "\r" in value or "\n" in value:
                raise TriggerError(f"header {name} would hold a line break once filled in")
            headers[name] = value
        return headers


def _redact(text: str, values: list[str]) -> str:
    for value in sorted(values, key=len, reverse=True):
        if value:
            text = text.replace(value, "[secret]")
    return text


def _started(url: str, status: int, headers: CIMultiDict[str], text: str) -> PipelineStarted:
    """What a 2xx answer says about the run it started; TriggerError for any other answer."""
    answer = " ".join(text.split())[:REASON_ANSWER_CHARS]
    said = f"{status}: {answer}" if answer else str(status)
    if 300 <= status < 400:
        location = headers.get("Location", "")[:REASON_ANSWER_CHARS] or "nowhere"
        raise TriggerError(
            f"the webhook answered {status}, a redirect to {location}; redirects are not "
            "followed: configure the URL it redirects to"
        )
    if status >= 500 or status in RETRIED_STATUSES:
        raise TriggerError(f"the webhook answered {said}", permanent=False)
    if not 200 <= status < 300:
        raise TriggerError(f"the webhook answered {said}")
    data = _json_object(text)
    link = data.get("web_url") or data.get("html_url") or headers.get("Location")
    run_url = urljoin(url, link) if isinstance(link, str) else ""
    run_id = data.get("id")
    return PipelineStarted(
        url=run_url if _is_http_url(run_url) and len(run_url) <= MAX_URL else None,
        run_id=str(run_id)[:MAX_RUN_ID]
        if isinstance(run_id, str | int) and not isinstance(run_id, bool)
        else None,
    )


def _is_http_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


def _json_object(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
