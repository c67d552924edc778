"""IRC notifications against a real IRC server (Debian's `ngircd`, started here on a free
loopback port), read by a test client sitting in the channel; and the flood-safe pacing of every
line, on a controlled clock."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import shutil
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from aiohttp.test_utils import TestClient
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from conjunction.adapters import Adapters
from conjunction.app import create_app
from conjunction.config.settings import Settings
from conjunction.notify.irc import Connection, IrcError, IrcPool, TokenBucket
from testkit.memoryhost import MemoryHost
from testkit.payloads import workflow_run
from tests.conftest import post_github, run_jobs, runtime
from tests.test_flow import APP, LIB, index, report_status, upstream_of

NGIRCD = shutil.which("ngircd") or (
    "/usr/sbin/ngircd" if Path("/usr/sbin/ngircd").exists() else None
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, for the server's TLS port."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    for path in (directory, cert_path, key_path):  # ngircd may drop to another user
        path.chmod(0o755 if path.is_dir() else 0o644)
    return cert_path, key_path


class Server:
    def __init__(self, port: int, tls_port: int, cert: Path) -> None:
        self.port, self.tls_port, self.cert = port, tls_port, cert


@pytest.fixture(scope="module")
def ngircd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the module's tests."""
    if NGIRCD is None:
        pytest.skip("ngircd is not installed (apt-get install ngircd; .ci/run installs it)")
    directory = tmp_path_factory.mktemp("irc")
    cert, key = self_signed(directory)
    port, tls_port = free_port(), free_port()
    config = directory / "ngircd.conf"
    config.write_text(
        f"""[Global]
    Name = irc.conjunction.test
    Info = Conjunction test server
    Listen = 127.0.0.1
    Ports = {port}
    MotdPhrase = test server
[Limits]
    MaxNickLength = 30
    MaxPenaltyTime = 0
[Options]
    PAM = no
    Ident = no
    DNS = no
[SSL]
    CertFile = {cert}
    KeyFile = {key}
    Ports = {tls_port}
"""
    )
    config.chmod(0o644)
    assert NGIRCD is not None
    process = subprocess.Popen(
        [NGIRCD, "--nodaemon", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                socket.create_connection(("127.0.0.1", tls_port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None:
                    pytest.fail(f"ngircd exited with {process.returncode}")
                subprocess.run(["sleep", "0.05"], check=True)
        yield Server(port, tls_port, cert)
    finally:
        process.terminate()
        process.wait(timeout=10)


class Watcher:
    """A person in the channel: sees who joins and what is said."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def join(cls, port: int, channel: str) -> Watcher:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        watcher = cls(reader, writer)
        writer.write(f"NICK watcher\r\nUSER watcher 0 * :Watcher\r\nJOIN {channel}\r\n".encode())
        await writer.drain()
        await watcher.until(lambda line: f" 366 watcher {channel} " in line)
        return watcher

    async def until(self, wanted: Any) -> list[str]:
        """Lines up to the first that `wanted` accepts (answering PINGs)."""
        seen = []
        async with asyncio.timeout(20):
            while True:
                line = (await self.reader.readline()).decode().rstrip("\r\n")
                if not line:
                    raise EOFError("the server closed the connection")
                if line.startswith("PING"):
                    self.writer.write(f"PONG {line[5:]}\r\n".encode())
                    continue
                seen.append(line)
                if wanted(line):
                    return seen

    async def close(self) -> None:
        self.writer.write(b"QUIT\r\n")
        self.writer.close()


@pytest.fixture
async def watcher(ngircd: Server) -> AsyncIterator[Watcher]:
    watcher = await Watcher.join(ngircd.port, "#acme")
    yield watcher
    await watcher.close()


async def test_state_changes_are_said_in_the_channel_over_one_connection(
    aiohttp_client: Any, settings: Settings, forge: MemoryHost, ngircd: Server, watcher: Watcher
) -> None:
    settings = settings.model_copy(update={"allow_private_webhooks": True})
    client: TestClient[Any, Any] = await aiohttp_client(
        create_app(settings, adapters=Adapters.of(forge), run_workers=False)
    )
    runtime(client).engine.notifier.irc = IrcPool(interval=0.05, allow_private=True)
    irc = f"notify:\n  - irc: {{server: '127.0.0.1:{ngircd.port}', channel: '#acme', tls: false}}\n"
    await index(client, LIB, irc)
    await index(client, APP, upstream_of(LIB))
    for run_id, result in enumerate(["success", "failure", "failure", "success"], start=1):
        sha = str(run_id) * 40
        await post_github(client, "workflow_run", workflow_run("acme/lib", sha, run_id=run_id))
        await run_jobs(client)
        _, request = forge.of("start_pipeline")[-1]
        await report_status(client, request.event_id, result)
        await run_jobs(client)

    seen = await watcher.until(lambda line: "PRIVMSG #acme :[conjunction] fixed" in line)
    said = [line.split(" PRIVMSG #acme :", 1)[1] for line in seen if " PRIVMSG " in line]
    assert [text.split(" https://")[0] for text in said] == [
        f"[conjunction] new regression: {APP} broke against {LIB} at 2222222",
        f"[conjunction] fixed: {APP} passes again against {LIB} at 4444444",
    ]
    assert said[0].split()[-1].startswith("https://conjunction.test/events/")
    joins = [line for line in seen if line.endswith(" JOIN :#acme") or line.endswith(" JOIN #acme")]
    assert [line.split("!")[0] for line in joins] == [":conjunction"]  # one connection, one JOIN

    await client.close()  # the server stops: the bot says goodbye
    quit_line = (await watcher.until(lambda line: " QUIT " in line))[-1]
    assert quit_line.startswith(":conjunction!")


async def test_tls_and_a_taken_nick(ngircd: Server, watcher: Watcher) -> None:
    trusted = ssl.create_default_context(cafile=str(ngircd.cert))
    pool = IrcPool(nick="watcher", interval=0, allow_private=True, ssl_context=trusted)
    try:
        await pool.send("127.0.0.1", ngircd.tls_port, True, "#acme", "over TLS\r\nPRIVMSG #x :no")
        seen = await watcher.until(lambda line: " PRIVMSG #acme :" in line)
        assert seen[-1].startswith(":cj")  # "watcher" was taken: another nick
        assert seen[-1].endswith(" PRIVMSG #acme :over TLS PRIVMSG #x :no")
    finally:
        await pool.close()


async def test_what_cannot_be_reached_or_joined_is_an_error(
    ngircd: Server, watcher: Watcher
) -> None:
    watcher.writer.write(b"JOIN #closed\r\nMODE #closed +i\r\n")
    await watcher.until(lambda line: " MODE #closed +i" in line)
    pool = IrcPool(interval=0, timeout=5, allow_private=True)
    try:
        with pytest.raises(IrcError, match=r"cannot join #closed: .*\(\+i\)"):
            await pool.send("127.0.0.1", ngircd.port, False, "#closed", "hello")
        await pool.send("127.0.0.1", ngircd.port, False, "#acme", "the connection stays")
        await watcher.until(lambda line: line.endswith("PRIVMSG #acme :the connection stays"))
        with pytest.raises(IrcError, match=r"127\.0\.0\.1"):
            await pool.send("127.0.0.1", free_port(), False, "#acme", "hello")
    finally:
        await pool.close()
    refusing = IrcPool(allow_private=False)
    with pytest.raises(IrcError, match="refused to call"):
        await refusing.send("127.0.0.1", ngircd.port, False, "#acme", "hello")
    await refusing.close()


# flood-safe pacing: a burst of 4 lines, then one every 2 seconds (the defaults, BURST and
# LINE_INTERVAL), on a clock the tests move themselves


class Clock:
    """Time that passes only when the bot sleeps (or the test says so): each pause it asks for
    is noted and passes at once, so what is sent when is exact and no test waits."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


class FakeServer:
    """Stands in for the socket to an IRC server: notes each line the bot writes with the time
    on the clock when it was written, and answers registration, JOIN and QUIT as a server
    would."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.reader = asyncio.StreamReader()
        self.lines: list[tuple[float, str]] = []

    def write(self, data: bytes) -> None:
        for line in data.decode().split("\r\n"):
            if line:
                self.lines.append((self.clock.now, line))
                self.answer(line)

    async def drain(self) -> None:
        pass

    def close(self) -> None:
        pass

    def answer(self, line: str) -> None:
        command, _, rest = line.partition(" ")
        if command == "USER":
            self.say(":irc.test 001 conjunction :Welcome")
        elif command == "JOIN":
            self.say(f":conjunction!cj@test JOIN {rest}")
        elif command == "QUIT":
            self.say("ERROR :Closing Link")
            self.reader.feed_eof()

    def say(self, line: str) -> None:
        self.reader.feed_data(line.encode() + b"\r\n")


class Network:
    """Where IRC connections opened in a test go: a FakeServer per host, on one clock."""

    def __init__(self) -> None:
        self.clock = Clock()
        self.servers: dict[str, FakeServer] = {}

    async def connect(self, connection: Connection) -> asyncio.StreamReader:
        server = self.servers[connection.host] = FakeServer(self.clock)
        connection.writer = cast(asyncio.StreamWriter, server)
        return server.reader


@pytest.fixture
def network(monkeypatch: pytest.MonkeyPatch) -> Network:
    network = Network()

    async def connect(connection: Connection) -> asyncio.StreamReader:
        return await network.connect(connection)

    monkeypatch.setattr(Connection, "_connect", connect)
    return network


async def test_every_line_counts_four_go_at_once_then_one_every_two_seconds(
    network: Network,
) -> None:
    clock = network.clock
    pool = IrcPool(clock=clock, sleep=clock.sleep)  # the default pace
    to = ("irc.acme.dev", 6667, False)
    await asyncio.gather(*(pool.send(*to, "#acme", f"line {n}") for n in range(1, 7)))
    await pool.send(*to, "#other", "a JOIN is a line too")
    server = network.servers["irc.acme.dev"]
    assert server.lines == [
        (0.0, "NICK conjunction"),
        (0.0, "USER conjunction 0 * :Conjunction"),
        (0.0, "JOIN #acme"),
        (0.0, "PRIVMSG #acme :line 1"),  # the burst of 4 is spent
        (2.0, "PRIVMSG #acme :line 2"),
        (4.0, "PRIVMSG #acme :line 3"),
        (6.0, "PRIVMSG #acme :line 4"),
        (8.0, "PRIVMSG #acme :line 5"),
        (10.0, "PRIVMSG #acme :line 6"),
        (12.0, "JOIN #other"),
        (14.0, "PRIVMSG #other :a JOIN is a line too"),
    ]

    # a minute with nothing to say fills the bucket again, up to the burst and no further
    clock.now += 60
    del server.lines[:]
    await asyncio.gather(*(pool.send(*to, "#acme", f"later {n}") for n in range(1, 6)))
    await pool.close()
    assert server.lines == [
        (74.0, "PRIVMSG #acme :later 1"),
        (74.0, "PRIVMSG #acme :later 2"),
        (74.0, "PRIVMSG #acme :later 3"),
        (74.0, "PRIVMSG #acme :later 4"),
        (76.0, "PRIVMSG #acme :later 5"),
        (78.0, "QUIT :Conjunction is done for now"),
    ]


async def test_each_connection_has_its_own_bucket(network: Network) -> None:
    clock = network.clock
    pool = IrcPool(clock=clock, sleep=clock.sleep)
    await pool.send("irc.one.test", 6667, False, "#acme", "one")
    await pool.send("irc.one.test", 6667, False, "#acme", "one again")  # the burst is spent
    await pool.send("irc.two.test", 6667, False, "#acme", "two")  # another server: its own burst
    said = {
        host: [(time, line) for time, line in server.lines if "PRIVMSG" in line]
        for host, server in network.servers.items()
    }
    assert said == {
        "irc.one.test": [(0.0, "PRIVMSG #acme :one"), (2.0, "PRIVMSG #acme :one again")],
        "irc.two.test": [(2.0, "PRIVMSG #acme :two")],  # at once: its 4th line
    }
    assert clock.slept == [2.0], "only the second message to irc.one.test waited"
    await pool.close()


async def test_the_bucket_refills_one_token_per_interval() -> None:
    clock = Clock()
    bucket = TokenBucket(burst=4, interval=2.0, clock=clock, sleep=clock.sleep)
    sent = []
    for _ in range(6):
        await bucket.take()
        sent.append(clock.now)
    assert sent == [0.0, 0.0, 0.0, 0.0, 2.0, 4.0]
    clock.now += 3.0  # a token and a half came back
    for _ in range(3):
        await bucket.take()
        sent.append(clock.now)
    assert sent[6:] == [7.0, 8.0, 10.0]
    assert clock.slept == [2.0, 2.0, 1.0, 2.0]


async def test_an_interval_of_zero_does_not_pace() -> None:
    clock = Clock()
    bucket = TokenBucket(burst=4, interval=0, clock=clock, sleep=clock.sleep)
    for _ in range(20):
        await bucket.take()
    assert clock.slept == []


async def test_a_burst_of_notifications_reaches_the_channel_whole_and_in_order(
    ngircd: Server, watcher: Watcher
) -> None:
    """Against the real server: what the person in the channel sees, while the bot waited its
    2 s before each line after the burst (NICK, USER, JOIN and the first message)."""
    clock = Clock()
    pool = IrcPool(nick="pacer", allow_private=True, clock=clock, sleep=clock.sleep)
    try:
        texts = [f"regression {n}" for n in range(1, 7)]
        await asyncio.gather(
            *(pool.send("127.0.0.1", ngircd.port, False, "#acme", t) for t in texts)
        )
        assert clock.slept == [2.0] * 5
        seen = await watcher.until(lambda line: line.endswith("PRIVMSG #acme :regression 6"))
        said = [line.split(" PRIVMSG #acme :", 1)[1] for line in seen if " PRIVMSG " in line]
        assert said == texts
        joins = [line for line in seen if " JOIN " in line]
        assert [line.split("!")[0] for line in joins] == [":pacer"]
    finally:
        await pool.close()
