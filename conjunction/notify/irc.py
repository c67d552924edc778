"""IRC notifications over asyncio streams: one connection per server, opened when a message
comes (TLS or not; NICK and USER), reused while messages queue (each channel JOINed once), every
line paced by a token bucket so that no server's flood control drops it, and QUIT once idle."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from conjunction.address_guard import AddressRefused, resolve_checked

log = logging.getLogger(__name__)

TEXT_LIMIT = 400  # bytes of text in one PRIVMSG: a line is at most 512 with prefix and command
INBOX_LIMIT = 1000  # lines kept for whoever waits for an answer
JOIN_ERRORS = {"403", "405", "471", "473", "474", "475", "477"}  # no such channel, full, banned, …

# Flood-safe pacing, per connection, for every line we send (NICK, USER, JOIN, PRIVMSG, PONG,
# QUIT): servers such as Libera (solanum) let a client send a few lines at once, then about one
# line every 2 seconds; a client that sends faster has lines queued, then is disconnected with
# "Excess Flood". So a fresh (or long idle) connection may send BURST lines at once, and after
# that one line every LINE_INTERVAL seconds, a token coming back every LINE_INTERVAL seconds.
BURST = 4  # lines sent at once: NICK, USER, JOIN and the first PRIVMSG of a new connection
LINE_INTERVAL = 2.0  # seconds per line once the burst is spent (Libera's sustained rate)

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class IrcError(Exception):
    """The server refused us or went away; the message was not sent."""


@dataclass(frozen=True)
class Outgoing:
    channel: str
    text: str
    done: asyncio.Future[None]


@dataclass(frozen=True)
class Line:
    prefix: str
    command: str
    params: tuple[str, ...]

    @property
    def nick(self) -> str:
        return self.prefix.split("!", 1)[0]


def parse(raw: str) -> Line:
    """One line from the server: `:prefix COMMAND a b :trailing text`."""
    prefix = ""
    if raw.startswith(":"):
        prefix, _, raw = raw[1:].partition(" ")
    head, _, trailing = raw.partition(" :")
    command, *params = head.split()
    return Line(prefix, command.upper(), (*params, trailing) if " :" in raw else tuple(params))


class TokenBucket:
    """Up to `burst` lines at once, then one every `interval` seconds; a token comes back every
    `interval` seconds, up to `burst`. Whoever waits for a token waits in turn (FIFO)."""

    def __init__(
        self,
        burst: int = BURST,
        interval: float = LINE_INTERVAL,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.burst, self.interval = max(burst, 1), interval
        self.clock, self.sleep = clock, sleep
        self.tokens = float(self.burst)
        self.updated = clock()
        self._turn = asyncio.Lock()

    async def take(self) -> None:
        """Return once one more line may be sent, and count it."""
        async with self._turn:
            self._refill()
            if self.tokens < 1:
                await self.sleep((1 - self.tokens) * self.interval)
                self._refill()
            self.tokens = max(self.tokens - 1, 0.0)

    def _refill(self) -> None:
        now = self.clock()
        if self.interval <= 0:
            self.tokens = float(self.burst)
        else:
            self.tokens = min(self.burst, self.tokens + (now - self.updated) / self.interval)
        self.updated = now


def clean(text: str) -> str:
    """Text that cannot end the line early or run over its length."""
    flat = " ".join(text.replace("\0", " ").splitlines())
    return flat.encode()[:TEXT_LIMIT].decode(errors="ignore")


class IrcPool:
    """The open connections, one per (server, port, TLS)."""

    def __init__(
        self,
        *,
        nick: str = "conjunction",
        burst: int = BURST,
        interval: float = LINE_INTERVAL,
        idle: float = 60.0,
        timeout: float = 30.0,
        allow_private: bool = False,
        ssl_context: ssl.SSLContext | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.nick = nick
        self.burst = burst  # lines one connection may send at once
        self.interval = interval  # then seconds per line on one connection (0: no pacing)
        self.clock, self.sleep = clock, sleep  # the pacing's, so that tests can control time
        self.idle = idle  # a connection with nothing to send for this long quits
        self.timeout = timeout
        self.allow_private = allow_private
        self.ssl_context = ssl_context
        self._connections: dict[tuple[str, int, bool], Connection] = {}

    async def send(self, host: str, port: int, tls: bool, channel: str, text: str) -> None:
        """Post text in channel; returns once it was written, raises IrcError if it was not."""
        key = (host.lower(), port, tls)
        connection = self._connections.get(key)
        if connection is None or connection.closing:
            connection = self._connections[key] = Connection(self, host, port, tls)
        await connection.send(channel, clean(text))

    async def close(self) -> None:
        for connection in list(self._connections.values()):
            await connection.close()
        self._connections.clear()


class Connection:
    def __init__(self, pool: IrcPool, host: str, port: int, tls: bool) -> None:
        self.pool, self.host, self.port, self.tls = pool, host, port, tls
        # what to send; None: quit once what came before it was sent
        self.outbox: asyncio.Queue[Outgoing | None] = asyncio.Queue()
        # what the server said, for whoever waits for it; None: the server went away
        self.inbox: asyncio.Queue[Line | None] = asyncio.Queue(INBOX_LIMIT)
        self.joined: set[str] = set()
        self.closing = False
        self.writer: asyncio.StreamWriter | None = None
        self.pace = TokenBucket(pool.burst, pool.interval, clock=pool.clock, sleep=pool.sleep)
        self.task = asyncio.create_task(self._run(), name=f"irc {host}:{port}")

    async def send(self, channel: str, text: str) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self.outbox.put(Outgoing(channel, text, done))
        await asyncio.wait({done, self.task}, return_when=asyncio.FIRST_COMPLETED)
        if not done.done():  # it quit just before this message came
            raise IrcError(f"the connection to {self.host} closed before the message was sent")
        await done

    async def close(self) -> None:
        """Quit once what is queued was sent (within the timeout), else drop the connection."""
        self.closing = True
        self.outbox.put_nowait(None)
        try:
            await asyncio.wait_for(asyncio.shield(self.task), self.pool.timeout)
        except TimeoutError:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    async def _run(self) -> None:
        reader_task = None
        failure: BaseException = IrcError(f"the connection to {self.host} closed")
        try:
            reader = await asyncio.wait_for(self._connect(), self.pool.timeout)
            reader_task = asyncio.create_task(self._read(reader))
            await asyncio.wait_for(self._register(), self.pool.timeout)
            await self._deliver()
            self.closing = True
            await self._write("QUIT :Conjunction is done for now")
            with contextlib.suppress(IrcError, TimeoutError):  # the server says goodbye
                await asyncio.wait_for(self._expect(lambda line: False), self.pool.timeout)
        except (OSError, IrcError, TimeoutError, AddressRefused) as exc:
            failure = exc if isinstance(exc, IrcError) else IrcError(f"{self.host}: {exc}")
            log.warning("IRC %s:%s: %s", self.host, self.port, failure)
        finally:
            self.closing = True
            while not self.outbox.empty():
                item = self.outbox.get_nowait()
                if item is not None and not item.done.done():
                    item.done.set_exception(failure)
            if reader_task is not None:
                reader_task.cancel()
            if self.writer is not None:
                self.writer.close()

    async def _connect(self) -> asyncio.StreamReader:
        address = await resolve_checked(self.host, self.port, self.pool.allow_private)
        context = (self.pool.ssl_context or ssl.create_default_context()) if self.tls else None
        reader, self.writer = await asyncio.open_connection(
            address,
            self.port,
            ssl=context,
            server_hostname=self.host.strip("[]") if self.tls else None,
        )
        return reader

    async def _register(self) -> None:
        nick = self.pool.nick
        await self._write(f"NICK {nick}")
        await self._write(f"USER {nick} 0 * :Conjunction")
        while True:
            line = await self._expect(lambda line: line.command in {"001", "432", "433"})
            if line.command == "001":
                return
            nick = f"cj{secrets.token_hex(3)}"  # taken or refused: a short one any server takes
            await self._write(f"NICK {nick}")

    async def _deliver(self) -> None:
        """Send what queues (each line paced by `_write`) until nothing came for `idle` s."""
        while True:
            try:
                item = await asyncio.wait_for(self.outbox.get(), self.pool.idle)
            except TimeoutError:
                return
            if item is None:
                return
            try:
                await self._join(item.channel)
                await self._write(f"PRIVMSG {item.channel} :{item.text}")
            except IrcError as exc:  # this channel refused us: the connection stays
                item.done.set_exception(exc)
                continue
            except (OSError, TimeoutError) as exc:  # the connection is lost: so is the message
                item.done.set_exception(IrcError(f"{self.host}: {exc or 'no answer in time'}"))
                raise
            item.done.set_result(None)

    async def _join(self, channel: str) -> None:
        if channel.lower() in self.joined:
            return
        await self._write(f"JOIN {channel}")

        def answers(line: Line) -> bool:
            named = [param.lower() for param in line.params]
            return (line.command in {"JOIN", "366"} | JOIN_ERRORS) and channel.lower() in named

        line = await asyncio.wait_for(self._expect(answers), self.pool.timeout)
        if line.command in JOIN_ERRORS:
            raise IrcError(f"cannot join {channel}: {line.params[-1]}")
        self.joined.add(channel.lower())

    async def _expect(self, wanted: Callable[[Line], bool]) -> Line:
        while True:
            line = await self.inbox.get()
            if line is None:
                raise IrcError(f"{self.host} closed the connection")
            if line.command == "ERROR":
                raise IrcError(f"{self.host}: {line.params[-1] if line.params else 'error'}")
            if wanted(line):
                return line

    async def _read(self, reader: asyncio.StreamReader) -> None:
        """Answer PINGs at once; hand everything else to whoever waits for it."""
        try:
            while raw := await reader.readline():
                text = raw.decode(errors="replace").rstrip("\r\n")
                if not text:
                    continue
                line = parse(text)
                if line.command == "PING":
                    await self._write(f"PONG :{line.params[-1] if line.params else ''}")
                else:
                    self._keep(line)
        finally:
            self._keep(None)

    def _keep(self, line: Line | None) -> None:
        if self.inbox.full():  # channel chatter nobody waits for: the oldest goes
            self.inbox.get_nowait()
        self.inbox.put_nowait(line)

    async def _write(self, line: str) -> None:
        """Send one line once the bucket allows it: every line counts, whoever sends it."""
        await self.pace.take()
        assert self.writer is not None
        self.writer.write(line.encode() + b"\r\n")
        await self.writer.drain()
