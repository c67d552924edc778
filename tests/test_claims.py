"""A downstream whose CI is started by a request that carries nothing of its trigger (Zuul's
enqueue API): `trigger.webhook.claim: true`, and the run claims its trigger with
`POST /api/v1/claims` and a project token.

End to end against a fake Zuul on loopback (tests/fakezuul.py), on SQLite and on PostgreSQL:
what Zuul is sent, what a claim answers, what the upstream shows once the claimed run reports;
which triggers a claim hands out, to whom, once each under concurrent claims from two
replicas; what a claim refuses; and that a trigger never claimed times out as any other.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp.test_utils import TestClient
from sqlalchemy import select, update

from conjunction.adapters import Adapters
from conjunction.app import create_app
from conjunction.config.settings import Settings
from conjunction.models import Event, Job, utcnow
from conjunction.tokens import create_project_token
from testkit.memoryhost import MemoryHost
from testkit.payloads import workflow_run
from tests.conftest import post_github, run_jobs, runtime
from tests.fakezuul import FakeZuul, Tenant, start_zuul
from tests.test_flow import index

LIB = "github.com/acme/lib"
APP = "review.acme.dev/acme/app"
TOOL = "review.acme.dev/acme/tool"
ZUUL_TOKEN = "eyJhbGciOiJIUzI1NiJ9.zuul-admin-of-acme"
ENQUEUE = {"pipeline": "conjunction", "ref": "refs/heads/main", "oldrev": None, "newrev": None}
SECRETS = f"""
zuul-enqueue: {{value: "{ZUUL_TOKEN}", projects: ["review.acme.dev/acme/*"]}}
"""


@pytest.fixture
def settings(settings: Settings, database_url: str, tmp_path: Path) -> Settings:
    """The app on SQLite and on PostgreSQL, with the secret Zuul's token is kept in; the fake
    Zuul listens on loopback."""
    secrets_file = tmp_path / "secrets.yml"
    secrets_file.write_text(SECRETS)
    return settings.model_copy(
        update={
            "database_url": database_url,
            "secrets_file": secrets_file,
            "allow_private_webhooks": True,
        }
    )


@pytest.fixture
async def client(
    aiohttp_client: Any, settings: Settings, forge: MemoryHost
) -> TestClient[Any, Any]:
    return await aiohttp_client(
        create_app(settings, adapters=Adapters.of(forge), run_workers=False)
    )


@pytest.fixture
async def zuul(aiohttp_server: Any) -> FakeZuul:
    """Zuul's tenant `acme`, which knows APP and TOOL and the pipeline `conjunction`."""
    zuul = await start_zuul(aiohttp_server)
    zuul.tenants["acme"] = Tenant(projects={APP, TOOL}, pipelines={"conjunction"})
    zuul.tenants["other"] = Tenant(projects=set(), pipelines=set())
    zuul.admin_tokens[ZUUL_TOKEN] = "acme"
    return zuul


def zuul_config(zuul: FakeZuul, project: str = APP, *, claim: bool = True) -> str:
    """A downstream started by Zuul's enqueue API, as docs/ci/zuul.md configures it."""
    webhook: dict[str, Any] = {
        "url": zuul.url("acme", project),
        "headers": {"Authorization": "Bearer ${secret:zuul-enqueue}"},
        "body": ENQUEUE,
    }
    if claim:
        webhook["claim"] = True
    return yaml.safe_dump(
        {"upstreams": [{"project": LIB}], "trigger": {"webhook": webhook}}, sort_keys=False
    )


async def joined(client: TestClient[Any, Any], zuul: FakeZuul, *projects: str) -> None:
    """LIB (owned by libby), whose downstreams on review.acme.dev may fail its commits, and
    those downstreams, started through Zuul with claims."""
    await index(client, LIB, "owners: [libby]\nreport:\n  required: [review.acme.dev/acme/*]\n")
    for project in projects:
        await index(client, project, zuul_config(zuul, project))


async def lib_succeeds(client: TestClient[Any, Any], sha: str, run: int = 1) -> None:
    """LIB's CI run at `sha` on main succeeds; its downstreams are sent their triggers."""
    await post_github(client, "workflow_run", workflow_run("acme/lib", sha, run_id=run))
    await run_jobs(client)


async def token_of(client: TestClient[Any, Any], project: str) -> str:
    """A project token, as `python app.py token create PROJECT` makes it."""
    async with runtime(client).sessions.begin() as session:
        return await create_project_token(session, project)


async def claim(
    client: TestClient[Any, Any], token: str | None, body: Any, **headers: str
) -> tuple[int, Any]:
    """`POST /api/v1/claims`: its status and its JSON (None for an empty answer)."""
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    answer = await client.post("/api/v1/claims", json=body, headers=headers)
    text = await answer.text()
    return answer.status, (await answer.json()) if text else None


async def report(client: TestClient[Any, Any], claimed: dict[str, Any], result: str) -> int:
    """The run's report, with what its claim answered, as every CI reports."""
    answer = await client.post(
        claimed["callback_url"].removeprefix("https://conjunction.test"),
        json={"result": result, "url": f"https://zuul.acme.dev/t/acme/buildset/{result}"},
        headers={"Authorization": f"Bearer {claimed['callback_token']}"},
    )
    return answer.status


async def triggers_of(client: TestClient[Any, Any], project: str) -> list[Event]:
    async with runtime(client).sessions() as session:
        rows = await session.scalars(
            select(Event).where(Event.project == project).order_by(Event.created_at)
        )
        return list(rows)


# end to end


async def test_zuul_is_enqueued_and_the_run_that_claims_its_trigger_reports_a_failure(
    client: TestClient[Any, Any], zuul: FakeZuul, forge: MemoryHost
) -> None:
    await joined(client, zuul, APP)
    token = await token_of(client, APP)
    signer = runtime(client).engine.signer
    for number, (sha, result) in enumerate([("a" * 40, "success"), ("b" * 40, "failure")], 1):
        await lib_succeeds(client, sha, run=number)

        # what Zuul's enqueue API receives: the pipeline and the branch, with its admin token
        enqueued = zuul.enqueued[-1]
        assert (len(zuul.enqueued), zuul.refused) == (number, [])
        assert (enqueued.tenant, enqueued.project, enqueued.body) == ("acme", APP, ENQUEUE)
        assert enqueued.headers["Authorization"] == f"Bearer {ZUUL_TOKEN}"
        assert enqueued.headers["Content-Type"] == "application/json"
        event = (await triggers_of(client, APP))[-1]
        assert enqueued.headers["X-Conjunction-Event"] == event.id
        assert (event.claim, event.run_id, event.result) == (True, None, None)
        page = await (await client.get(f"/events/{event.id}")).text()
        assert "waiting for its run to claim it" in page

        # the run's pre-run playbook claims its trigger, named by its buildset
        status, claimed = await claim(
            client, token, {"project": APP, "claimant": enqueued.buildset}
        )
        assert status == 200
        assert claimed == {
            "event": event.id,
            "project": APP,
            "upstream": LIB,
            "upstream_sha": sha,
            "upstream_ref": "main",
            "upstream_url": f"https://github.com/acme/lib/actions/runs/{number}",
            "callback_url": f"https://conjunction.test/api/v1/events/{event.id}/status",
            "callback_token": signer.token(event.id),
            "parent": event.parent_id,
            "root": event.root_id,
            "depth": 1,
            "owners": ["libby"],
            "artifacts": [],
        }
        shown = await (await client.get(f"/api/v1/events/{event.id}")).json()
        assert (shown["claim"], shown["run_id"]) == (True, enqueued.buildset)
        page = await (await client.get(f"/events/{event.id}")).text()
        assert f"claimed by run <code>{enqueued.buildset}</code>" in page

        # its post-run playbook reports with the callback token the claim gave
        assert await report(client, claimed, result) == 202
        await run_jobs(client)
        zuul.finish(enqueued.buildset)

    # the pair passed, then failed: the upstream commit shows the new regression
    _, (reported, status_report) = forge.of("status")[-1]
    assert (reported, status_report.state) == ("b" * 40, "failure")
    assert (
        f"| {APP} | ❌ new regression | [run](https://zuul.acme.dev/t/acme/buildset/failure)"
        in status_report.summary
    )


# what a claim hands out


async def test_two_claimants_take_the_two_triggers_oldest_first_and_each_keeps_its_own(
    client: TestClient[Any, Any], zuul: FakeZuul
) -> None:
    await joined(client, zuul, APP)
    token = await token_of(client, APP)
    await lib_succeeds(client, "a" * 40, run=1)
    await lib_succeeds(client, "b" * 40, run=2)
    [first] = (e.buildset for e in zuul.enqueued)
    assert zuul.dropped == [ENQUEUE], "Zuul leaves out an item already in its pipeline"
    second = "a-run-started-again"

    status, one = await claim(client, token, {"project": APP, "claimant": first})
    assert (status, one["upstream_sha"]) == (200, "a" * 40)
    # Zuul retries a job whose pre-run failed, in the same buildset: the same trigger again
    assert await claim(client, token, {"project": APP, "claimant": first}) == (200, one)
    status, two = await claim(client, token, {"project": APP, "claimant": second})
    assert (status, two["upstream_sha"]) == (200, "b" * 40)
    assert one["event"] != two["event"]
    assert {e.id: e.run_id for e in await triggers_of(client, APP)} == {
        one["event"]: first,
        two["event"]: second,
    }

    # once its trigger has a result, the claimant has nothing more to take
    assert await report(client, one, "success") == 202
    assert await claim(client, token, {"project": APP, "claimant": first}) == (204, None)
    # the project name as the token was made, in another case, is the same project
    assert await claim(client, token, {"project": APP.upper(), "claimant": second}) == (200, two)


async def test_a_trigger_whose_start_zuul_left_out_gets_a_run_once_the_last_one_ended(
    client: TestClient[Any, Any], zuul: FakeZuul
) -> None:
    """Three upstream successes while the first run is under way: Zuul starts one run, and
    leaves the other two enqueues out. A minute after each claimed trigger ends, a run is
    started again for the oldest still awaiting a claim: each trigger gets its own run."""
    await joined(client, zuul, APP)
    token = await token_of(client, APP)
    for run, sha in enumerate(("a" * 40, "b" * 40, "c" * 40), 1):
        await lib_succeeds(client, sha, run=run)
    assert (len(zuul.enqueued), len(zuul.dropped)) == (1, 2)

    for number, sha in enumerate(("a" * 40, "b" * 40, "c" * 40), 1):
        assert len(zuul.enqueued) == number
        buildset = zuul.enqueued[-1].buildset
        status, claimed = await claim(client, token, {"project": APP, "claimant": buildset})
        assert (status, claimed["upstream_sha"]) == (200, sha)
        assert await report(client, claimed, "success") == 202
        await run_jobs(client)
        zuul.finish(buildset)
        assert len(zuul.enqueued) == number, "not at once: the run that ended is still in Zuul"
        await a_minute_later(client)
    assert [e.result for e in await triggers_of(client, APP)] == ["success"] * 3
    # the last one ended with nothing awaiting a claim: no run more
    assert (len(zuul.enqueued), len(zuul.dropped)) == (3, 2)


async def a_minute_later(client: TestClient[Any, Any]) -> None:
    """The jobs due within a minute and a second, run."""
    async with runtime(client).sessions.begin() as session:
        await session.execute(
            update(Job)
            .where(Job.state == "queued", Job.run_at <= utcnow() + timedelta(seconds=61))
            .values(run_at=utcnow())
        )
    await run_jobs(client)


async def test_nothing_awaiting_a_claim_is_answered_204(
    client: TestClient[Any, Any], zuul: FakeZuul
) -> None:
    await joined(client, zuul, APP)
    token = await token_of(client, APP)
    assert await claim(client, token, {"project": APP, "claimant": "b1"}) == (204, None)
    # a project never indexed has nothing waiting either
    stranger = await token_of(client, "review.acme.dev/acme/new")
    body = {"project": "review.acme.dev/acme/new", "claimant": "b1"}
    assert await claim(client, stranger, body) == (204, None)


async def test_a_trigger_sent_without_claim_is_never_handed_out(
    client: TestClient[Any, Any], zuul: FakeZuul
) -> None:
    await index(client, LIB, None)
    await index(client, APP, zuul_config(zuul, APP, claim=False))
    await lib_succeeds(client, "a" * 40)
    assert len(zuul.enqueued) == 1
    [event] = await triggers_of(client, APP)
    assert (event.state, event.claim) == ("started", False)
    token = await token_of(client, APP)
    assert await claim(client, token, {"project": APP, "claimant": "b1"}) == (204, None)
    [event] = await triggers_of(client, APP)
    assert (event.run_id, event.result) == (None, None)


async def test_a_claim_takes_only_its_own_projects_triggers(
    client: TestClient[Any, Any], zuul: FakeZuul
) -> None:
    await joined(client, zuul, APP, TOOL)
    await lib_succeeds(client, "a" * 40)
    status, claimed = await claim(
        client, await token_of(client, TOOL), {"project": TOOL, "claimant": "b1"}
    )
    assert (status, claimed["project"]) == (200, TOOL)
    [app] = await triggers_of(client, APP)
    assert app.run_id is None


# who may claim, and what


async def test_a_missing_wrong_or_foreign_token_is_refused(
    client: TestClient[Any, Any], zuul: FakeZuul
) -> None:
    await joined(client, zuul, APP, TOOL)
    await lib_succeeds(client, "a" * 40)
    body = {"project": APP, "claimant": "b1"}
    required = {"error": "a valid project token is required (python app.py token create)"}
    assert await claim(client, None, body) == (401, required)
    assert await claim(client, "cjp_not-a-token", body) == (401, required)
    assert await claim(client, None, body, Authorization="Basic b1") == (401, required)
    # a callback token is no project token
    [event] = await triggers_of(client, APP)
    assert await claim(client, runtime(client).engine.signer.token(event.id), body) == (
        401,
        required,
    )
    foreign = await token_of(client, TOOL)
    assert await claim(client, foreign, body) == (
        403,
        {"error": f"this token claims triggers of {TOOL}, not of {APP}"},
    )
    [event] = await triggers_of(client, APP)
    assert event.run_id is None


@pytest.mark.parametrize(
    ("body", "field", "problem"),
    [
        ({"project": APP}, "claimant", "Field required"),
        ({"project": APP, "claimant": ""}, "claimant", "at least 1 character"),
        ({"project": APP, "claimant": "x" * 201}, "claimant", "at most 200 characters"),
        ({"project": APP, "claimant": 42}, "claimant", "a valid string"),
        ({"project": APP, "claimant": None}, "claimant", "a valid string"),
        ({"project": APP, "claimant": "   "}, "claimant", "printable text, not blank"),
        ({"project": APP, "claimant": "b1\nb2"}, "claimant", "printable text, not blank"),
        ({"claimant": "b1"}, "project", "Field required"),
        ({"project": "app", "claimant": "b1"}, "project", "not a project name"),
        ({"project": APP, "claimant": "b1", "job": "x"}, "job", "Extra inputs"),
        (["b1"], "body", "an object"),
    ],
)
async def test_a_bad_body_is_refused_naming_the_field(
    client: TestClient[Any, Any], body: Any, field: str, problem: str
) -> None:
    token = await token_of(client, APP)
    status, answer = await claim(client, token, body)
    assert status == 422
    assert answer["error"].startswith(f"{field}: ")
    assert problem in answer["error"]


async def test_a_body_that_is_not_json_is_refused(client: TestClient[Any, Any]) -> None:
    token = await token_of(client, APP)
    answer = await client.post(
        "/api/v1/claims", data=b"{", headers={"Authorization": f"Bearer {token}"}
    )
    assert answer.status == 400
    assert "error" in await answer.json()


async def test_a_claimant_of_200_characters_is_kept_whole(
    client: TestClient[Any, Any], zuul: FakeZuul
) -> None:
    await joined(client, zuul, APP)
    await lib_succeeds(client, "a" * 40)
    claimant = "z" * 200
    token = await token_of(client, APP)
    status, _ = await claim(client, token, {"project": APP, "claimant": claimant})
    assert status == 200
    [event] = await triggers_of(client, APP)
    assert event.run_id == claimant


# several at once


async def test_concurrent_claims_from_two_replicas_take_each_trigger_once(
    aiohttp_client: Any,
    client: TestClient[Any, Any],
    settings: Settings,
    forge: MemoryHost,
    zuul: FakeZuul,
) -> None:
    """20 runs claim at once, half through each of two servers on one database, while 10
    triggers await: each trigger is claimed by exactly one run, the others are answered 204."""
    await joined(client, zuul, APP)
    for run in range(1, 11):
        await lib_succeeds(client, f"{run:040x}", run=run)
    replica = await aiohttp_client(
        create_app(settings, adapters=Adapters.of(forge), run_workers=False)
    )
    token = await token_of(client, APP)
    claimants = [f"buildset-{number:02d}" for number in range(20)]
    answers = await asyncio.gather(
        *(
            claim(client if number % 2 else replica, token, {"project": APP, "claimant": name})
            for number, name in enumerate(claimants)
        )
    )
    taken = {
        name: body["event"] for name, (_, body) in zip(claimants, answers, strict=True) if body
    }
    assert sorted(status for status, _ in answers) == [200] * 10 + [204] * 10
    triggers = await triggers_of(client, APP)
    assert len(triggers) == 10
    assert sorted(taken.values()) == sorted(event.id for event in triggers)
    assert {event.id: event.run_id for event in triggers} == {
        event_id: name for name, event_id in taken.items()
    }


# time-outs


async def test_a_trigger_never_claimed_or_never_reported_times_out(
    client: TestClient[Any, Any], zuul: FakeZuul, forge: MemoryHost
) -> None:
    await joined(client, zuul, APP)
    token = await token_of(client, APP)
    await lib_succeeds(client, "a" * 40, run=1)
    await lib_succeeds(client, "b" * 40, run=2)
    status, claimed = await claim(client, token, {"project": APP, "claimant": "b1"})
    assert (status, claimed["upstream_sha"]) == (200, "a" * 40)
    engine = runtime(client).engine
    assert await engine.expire_overdue() == 0

    # CONJUNCTION_RESULT_TIMEOUT passes: the claimed trigger and the unclaimed one time out
    async with runtime(client).sessions.begin() as session:
        await session.execute(
            update(Event)
            .where(Event.project == APP)
            .values(deadline_at=utcnow() - timedelta(seconds=1))
        )
    assert await engine.expire_overdue() == 2
    await run_jobs(client)
    assert [(e.result, e.state) for e in await triggers_of(client, APP)] == [
        ("timed_out", "timed_out"),
        ("timed_out", "timed_out"),
    ]
    for sha in ("a" * 40, "b" * 40):
        [*_, last] = [shown for _, (reported, shown) in forge.of("status") if reported == sha]
        assert (last.state, last.description) == (
            "success",
            "0 of 1 downstream projects passed, 1 timed out; none blamed on this commit",
        )
    claimed_page, unclaimed_page = [
        await (await client.get(f"/events/{event.id}")).text()
        for event in await triggers_of(client, APP)
    ]
    assert "claimed by run <code>b1</code>" in claimed_page
    assert "never claimed" in unclaimed_page
    # neither is handed out any more, to a new run or to the one that claimed it
    assert await claim(client, token, {"project": APP, "claimant": "b2"}) == (204, None)
    assert await claim(client, token, {"project": APP, "claimant": "b1"}) == (204, None)
    # and the token it was given is taken no more
    assert await report(client, claimed, "failure") == 401


# the fake Zuul refuses what Zuul would


@pytest.mark.parametrize(
    ("path", "headers", "body", "status"),
    [
        ("/api/tenant/nope/project/{app}/enqueue", {}, ENQUEUE, 404),
        ("/api/tenant/acme/project/{app}/enqueue", {"Authorization": None}, ENQUEUE, 401),
        ("/api/tenant/acme/project/{app}/enqueue", {"Authorization": "Bearer x"}, ENQUEUE, 401),
        ("/api/tenant/other/project/{app}/enqueue", {}, ENQUEUE, 403),
        ("/api/tenant/acme/project/review.acme.dev/acme/x/enqueue", {}, ENQUEUE, 404),
        ("/api/tenant/acme/project/{app}/enqueue", {}, {**ENQUEUE, "pipeline": "gate"}, 400),
        ("/api/tenant/acme/project/{app}/enqueue", {}, {"pipeline": "conjunction"}, 400),
        ("/api/tenant/acme/project/{app}/enqueue", {}, {**ENQUEUE, "newrev": "abc1234"}, 400),
        ("/api/tenant/acme/project/{app}/enqueue", {}, {**ENQUEUE, "ref": "main"}, 400),
        ("/api/tenant/acme/project/{app}/enqueue", {}, {**ENQUEUE, "event": "e1"}, 400),
        ("/api/tenant/acme/project/{app}/enqueue", {"Content-Type": "text/plain"}, ENQUEUE, 415),
        ("/api/tenant/acme/project/{app}/enqueue", {}, "{", 400),
        ("/api/tenant/acme/project/{app}/enqueue", {}, {**ENQUEUE, "oldrev": "0" * 40}, 200),
    ],
)
async def test_the_fake_zuul_takes_only_what_zuul_documents(
    zuul: FakeZuul, path: str, headers: dict[str, str | None], body: Any, status: int
) -> None:
    sent = {
        "Authorization": f"Bearer {ZUUL_TOKEN}",
        "Content-Type": "application/json",
        **headers,
    }
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            zuul.base.rstrip("/") + path.format(app=APP),
            data=body if isinstance(body, str) else json.dumps(body),
            headers={name: value for name, value in sent.items() if value is not None},
        ) as answer,
    ):
        assert answer.status == status
    assert len(zuul.enqueued) == (status == 200)
