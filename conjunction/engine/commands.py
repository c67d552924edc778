"""Commands in comments, acted on (CONTRACT §9): a comment that holds commands is taken once,
acknowledged with an `eyes` reaction, checked against the forge's permissions of its author, and
each command is carried out or answered in one reply.

`conjunction.commands` parses and places them (pure); here they meet the code host, the database and
the engine: pre-merge runs of a pull or merge request through `Premerge`, and a breakage issue's
`retry` as a new trigger event standing for the failure it retries (`effects.start_again`), whose
result `results.record_result` puts in the failure's place.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from conjunction import texts
from conjunction.codehost import CodeHost, CommentRef
from conjunction.commands import MAX_COMMANDS, Command, Place, Verb, misplaced, parse
from conjunction.engine import bisects, effects
from conjunction.engine.context import Context
from conjunction.engine_api import CommentPosted
from conjunction.models import CommandComment, Event, IssueLink
from conjunction.names import project_key
from conjunction.results import Result
from conjunction.runs import Change, Step, TriggerState

log = logging.getLogger(__name__)

ACKNOWLEDGED = "eyes"  # the reaction every comment with commands gets at once


class PremergeOutcome(Protocol):
    """What a pre-merge start did: the downstreams started, or why none was."""

    @property
    def downstreams(self) -> Sequence[str]: ...

    @property
    def reason(self) -> str | None: ...


class Premerge(Protocol):
    """Pre-merge runs of a change (CONTRACT §8), as `/conjunction test` and `retry` start them."""

    async def premerge(
        self,
        change: Change,
        *,
        only: Sequence[str] = (),
        retry: bool = False,
        commanded: bool = False,
    ) -> PremergeOutcome: ...


async def comment_posted(ctx: Context, posted: CommentPosted, premerge: Premerge) -> None:
    """Act on the commands of a new comment, once however often it is delivered."""
    commands = parse(posted.body)
    host = ctx.adapters.host(posted.comment.project)
    if not commands or host is None or not await _take(ctx, posted):
        return
    comment = posted.comment
    await host.react(comment, ACKNOWLEDGED)
    allowed = posted.may_write or (lambda: host.can_write(comment.project, posted.author))
    if not await allowed():
        log.info("commands of %s in %s refused", posted.author, comment.project)
        await host.reply(comment, _say("not_allowed", forge=posted.forge))
        return
    place, link = await _place(ctx, comment)
    answers = [
        await _act(ctx, host, comment, place, link, command, premerge, posted.author)
        for command in commands[:MAX_COMMANDS]
    ]
    if len(commands) > MAX_COMMANDS:
        answers.append(_say("too_many", limit=MAX_COMMANDS))
    said = [answer for answer in answers if answer]
    if said:
        await host.reply(comment, "\n\n".join(said))


async def _take(ctx: Context, posted: CommentPosted) -> bool:
    """Whether this delivery acts on the comment: the first to take it does (and does again
    when its job runs again); the same comment under another delivery id does not."""
    key = (posted.forge, project_key(posted.comment.project), str(posted.comment.id))
    try:
        async with ctx.sessions.begin() as session:
            taken = await session.get(CommandComment, key)
            if taken is not None:
                return taken.delivery_id == posted.delivery_id
            session.add(
                CommandComment(
                    forge=key[0],
                    project=key[1],
                    comment_id=key[2],
                    delivery_id=posted.delivery_id,
                    author=posted.author[:300],
                )
            )
    except IntegrityError:  # taken at the same moment by the other delivery
        return False
    return True


async def _place(ctx: Context, comment: CommentRef) -> tuple[Place, IssueLink | None]:
    """Where the comment is: a change, one of Conjunction's breakage issues, or another issue."""
    if comment.on_change:
        return Place.CHANGE, None
    async with ctx.sessions() as session:
        links = await session.scalars(
            select(IssueLink)
            .where(
                IssueLink.repository == project_key(comment.project),
                IssueLink.number == comment.number,
            )
            .order_by(IssueLink.updated_at.desc())
        )
        link = next(iter(links), None)
    return (Place.BREAKAGE, link) if link is not None else (Place.ISSUE, None)


async def _act(
    ctx: Context,
    host: CodeHost,
    comment: CommentRef,
    place: Place,
    link: IssueLink | None,
    command: Command,
    premerge: Premerge,
    author: str,
) -> str | None:
    """Carry out one command; its answer, when it has one."""
    verb = command.verb
    if verb is None:
        return _say("unknown", word=command.word[:40])
    wrong = misplaced(command, place)
    if wrong is not None:
        return _say("misplaced", verb=wrong.verb.value, belongs=wrong.belongs)
    if verb is Verb.HELP:
        return texts.render("command_help.md")
    if place is Place.CHANGE:
        return await _premerge(host, comment, command, premerge)
    assert link is not None  # a retry or a bisect on a breakage issue
    if verb is Verb.BISECT:
        answer = await bisects.request(ctx, link.upstream, link.downstream, author)
        return _say("bisect", answer=answer)
    return await _retry(ctx, link)


async def _premerge(
    host: CodeHost, comment: CommentRef, command: Command, premerge: Premerge
) -> str | None:
    """`test` or `retry` on a pull or merge request: pre-merge runs of its head commit."""
    change = await host.get_change(comment.project, comment.number)
    if change is None:
        return _say("no_change", change_word="pull or merge request")
    started = await premerge.premerge(
        change, only=list(command.args), retry=command.verb is Verb.RETRY, commanded=True
    )
    if started.downstreams:
        return None  # the pre-merge report on the change says the rest
    return _say("premerge_not_started", reason=(started.reason or "no downstream").rstrip("."))


async def _retry(ctx: Context, link: IssueLink) -> str:
    """`retry` on a breakage issue: the downstream again, against the upstream commit of the
    pair's latest failure, under the same upstream build; its result stands for the failure's."""
    async with ctx.sessions.begin() as session:
        anchor = await session.get(Event, link.last_event_id or "")
        if link.state != "open" or anchor is None:
            return _say("retry_nothing", reason="This issue is closed: the pair passes again")
        failure = await session.scalar(
            select(Event)
            .where(
                Event.kind == "trigger",
                Event.project == anchor.project,
                Event.upstream == anchor.upstream,
                Event.step == Step.FIRST,
                Event.result.in_([result for result in Result if result.failed]),
            )
            .order_by(Event.created_at.desc())
            .limit(1)
            .with_for_update()
        )
        if failure is None:
            return _say("retry_nothing", reason="The pair has no failure to run again")
        if failure.confirming is not None:
            return _say(
                "retry_nothing", reason="Its latest failure is being confirmed by a re-run already"
            )
        running = await session.scalar(
            select(Event).where(
                Event.confirms_id == failure.id,
                Event.step == Step.RETRY,
                Event.state.in_([state for state in TriggerState if state.waiting]),
            )
        )
        if running is not None:
            return _say(
                "retry_running", downstream=failure.project, trace_url=ctx.event_url(running.id)
            )
        retry = await effects.start_again(ctx, session, failure, Step.RETRY)
        log.info("retry %s of %s asked for in issue %s", retry.id, failure.id, link.number)
        return _say("retry_started", downstream=failure.project, trace_url=ctx.event_url(retry.id))


def _say(kind: str, **values: object) -> str:
    return texts.render("command_reply.md", kind=kind, **values).strip()
