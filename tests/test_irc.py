"""IRC notifications against a real IRC server (Debian's `ngircd`, started here on a free
loopback port), read by a test client sitting in the channel."""

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
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from app import create_app
from bot.adapters import Adapters
from bot.notify.irc import IrcError, IrcPool
from config.settings import Settings
from tests.conftest import post_github, run_jobs, runtime, workflow_run
from tests.memoryhost import MemoryHost
from tests.test_flow import APP, LIB, index, report_status, upstream_of

NGIRCD = shutil.which("ngircd") or (
    "/usr/sbin/ngircd" if Path("/usr/sbin/ngircd").exists() else None
)
pytestmark = pytest.mark.skipif(
    NGIRCD is None, reason="ngircd is not installed (apt-get install ngircd; .ci/run installs it)"
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
