"""SIP over TLS (RFC 3261 26.2) and the stream bounds of the edge, on real sockets.

A :class:`SipEndpoint` listens on 127.0.0.1 with a test certificate (made with the
``openssl`` command); clients connect from 127.0.0.x addresses, which Linux routes on
loopback, so that "per source" means distinct source addresses.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from certs import Leaf, make_ca, make_leaf

from gateway.cli import _parser, main, run_settings
from gateway.edge.sip_transport import ConnectionLimits, SipEndpoint, TlsSettings
from gateway.sip.message import Request, parse_message
from gateway.sip.responses import make_response
from gateway.sip.transaction import (
    RequestReceived,
    TransactionEvent,
    TransactionLayer,
    TransportError,
)

HOST = "127.0.0.1"


class Recorder:
    """A transaction user that only keeps what it is given."""

    def __init__(self) -> None:
        self.events: list[TransactionEvent] = []

    def handle_event(self, event: TransactionEvent) -> None:
        self.events.append(event)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Leaf]:
    folder = tmp_path_factory.mktemp("pki")
    ca = make_ca(folder)
    return {
        "ca": ca,
        "server": make_leaf(folder, ca, "server", cn="first"),
        "renewed": make_leaf(folder, ca, "renewed", cn="renewed"),
        "client": make_leaf(folder, ca, "client", cn="kiosk"),
        "stranger": make_leaf(folder, make_ca(folder, "other-ca"), "stranger"),
    }


@pytest.fixture
async def tls_endpoint(pki: dict[str, Leaf], tmp_path: Path) -> AsyncIterator[SipEndpoint]:
    cert, key = tmp_path / "live.pem", tmp_path / "live.key"
    shutil.copy(pki["server"].cert, cert)
    shutil.copy(pki["server"].key, key)
    endpoint = SipEndpoint(
        HOST,
        0,
        tls=TlsSettings(cert, key, 0, ca=pki["ca"].cert),
        limits=ConnectionLimits(per_source=2, total=4, transactions_per_source=2),
    )
    endpoint.tu = Recorder()
    await endpoint.start()
    yield endpoint
    await endpoint.close()


def client_context(pki: dict[str, Leaf], cert: Leaf | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki["ca"].cert))
    if cert is not None:
        ctx.load_cert_chain(cert.cert, cert.key)
    return ctx


async def tls_connect(
    port: int, ctx: ssl.SSLContext, source: str = HOST
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.wait_for(
        asyncio.open_connection(HOST, port, ssl=ctx, server_hostname=HOST, local_addr=(source, 0)),
        5,
    )


def options(branch: str, port: int) -> bytes:
    return (
        f"OPTIONS sip:vrgw@{HOST} SIP/2.0\r\n"
        f"Via: SIP/2.0/TLS {HOST}:{port};branch=z9hG4bK{branch}\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:kiosk@{HOST}>;tag=a{branch}\r\n"
        f"To: <sip:vrgw@{HOST}>\r\n"
        f"Call-ID: {branch}@test\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


async def until(predicate: object, timeout: float = 2.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if callable(predicate) and predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in time")


async def test_request_over_tls_reaches_the_core_as_tls(
    tls_endpoint: SipEndpoint, pki: dict[str, Leaf]
) -> None:
    assert tls_endpoint.tls_port is not None
    _, writer = await tls_connect(tls_endpoint.tls_port, client_context(pki))
    assert writer.get_extra_info("ssl_object").version() in ("TLSv1.2", "TLSv1.3")
    writer.write(options("tls1", 5099))
    recorder = tls_endpoint.tu
    assert isinstance(recorder, Recorder)
    await until(lambda: recorder.events)
    [event] = recorder.events
    assert isinstance(event, RequestReceived) and event.transport == "tls"
    # What the gateway writes of itself over TLS (RFC 3261 18.1.1, 26.2.2).
    via = tls_endpoint.via_for("tls", "z9hG4bKx")
    assert via.startswith(f"SIP/2.0/TLS {HOST}:{tls_endpoint.tls_port};")
    assert tls_endpoint.contact_uri("tls") == (
        f"sip:vrgw@{HOST}:{tls_endpoint.tls_port};transport=tls"
    )
    writer.close()


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion:DeprecationWarning")
@pytest.mark.parametrize("setup", ["tls1.1", "cbc-suite"])
async def test_old_protocols_and_non_aead_suites_are_refused(
    tls_endpoint: SipEndpoint, pki: dict[str, Leaf], setup: str
) -> None:
    assert tls_endpoint.tls_port is not None
    ctx = client_context(pki)
    if setup == "tls1.1":
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    else:  # TLS 1.2 offering CBC suites only
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers("ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA")
    with pytest.raises((ssl.SSLError, ConnectionError)):
        await tls_connect(tls_endpoint.tls_port, ctx)
    await until(lambda: tls_endpoint.counters.tls_handshake_failures == 1)
    await until(lambda: tls_endpoint.open_connections == 0)


async def test_tls12_with_aead_is_accepted(tls_endpoint: SipEndpoint, pki: dict[str, Leaf]) -> None:
    assert tls_endpoint.tls_port is not None
    ctx = client_context(pki)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    _, writer = await tls_connect(tls_endpoint.tls_port, ctx)
    cipher = writer.get_extra_info("cipher")
    assert "GCM" in cipher[0] or "CHACHA20" in cipher[0], cipher
    writer.close()


async def test_client_certificates_checked_when_asked(pki: dict[str, Leaf], tmp_path: Path) -> None:
    server = pki["server"]
    endpoint = SipEndpoint(
        HOST, 0, tls=TlsSettings(server.cert, server.key, 0, pki["ca"].cert, verify_clients=True)
    )
    await endpoint.start()
    try:
        assert endpoint.tls_port is not None
        _, writer = await tls_connect(endpoint.tls_port, client_context(pki, pki["client"]))
        # TLS 1.3 checks the client's certificate after the client's handshake ends:
        # a refused one shows as the connection closing; this one stays up.
        writer.write(options("cc1", 5099))
        await asyncio.sleep(0.2)
        assert not writer.is_closing() and endpoint.counters.tls_handshake_failures == 0
        writer.close()
        for cert in (None, pki["stranger"]):
            reader, writer = await tls_connect(endpoint.tls_port, client_context(pki, cert))
            with pytest.raises((ssl.SSLError, ConnectionError)):
                await asyncio.wait_for(reader.read(1), 2)
                raise ConnectionError("closed")  # EOF without an alert
            writer.close()
        await until(lambda: endpoint.counters.tls_handshake_failures == 2)
    finally:
        await endpoint.close()


async def test_certificate_reload(
    tls_endpoint: SipEndpoint, pki: dict[str, Leaf], tmp_path: Path
) -> None:
    assert tls_endpoint.tls_port is not None and tls_endpoint.tls_settings is not None
    port = tls_endpoint.tls_port

    async def served() -> str:
        _, writer = await tls_connect(port, client_context(pki))
        cert = writer.get_extra_info("peercert")
        writer.close()
        await until(lambda: tls_endpoint.open_connections == 1)  # per source: 2
        return str(dict(x[0] for x in cert["subject"])["commonName"])

    _, kept = await tls_connect(port, client_context(pki))  # a connection already up
    assert await served() == "first"
    live = tls_endpoint.tls_settings
    shutil.copy(pki["renewed"].cert, live.cert)
    shutil.copy(pki["renewed"].key, live.key)
    assert tls_endpoint.reload_tls() == (True, "reloaded")
    assert await served() == "renewed"
    # A broken pair (a key that is not the certificate's) is refused; the last stays.
    shutil.copy(pki["client"].key, live.key)
    ok, why = tls_endpoint.reload_tls()
    assert not ok and why
    assert await served() == "renewed"
    kept.write(options("kept", 5099))  # the older connection still carries messages
    recorder = tls_endpoint.tu
    assert isinstance(recorder, Recorder)
    await until(lambda: any(isinstance(e, RequestReceived) for e in recorder.events))
    kept.close()


async def test_connection_bounds_per_source_and_total(tls_endpoint: SipEndpoint) -> None:
    """Raw TCP connections to the TLS port count before any handshake (a half-open
    handshake holds a place), and those to the TCP port count alike."""
    assert tls_endpoint.tls_port is not None
    loop = asyncio.get_running_loop()
    opened: list[socket.socket] = []

    async def connect(source: str, port: int) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.bind((source, 0))
        await loop.sock_connect(sock, (HOST, port))
        opened.append(sock)
        return sock

    async def closed_by_peer(sock: socket.socket) -> bool:
        try:
            data = await asyncio.wait_for(loop.sock_recv(sock, 1), 0.5)
        except TimeoutError:
            return False
        except ConnectionError:
            return True
        return data == b""

    try:
        a1 = await connect("127.0.0.2", tls_endpoint.tls_port)
        a2 = await connect("127.0.0.2", tls_endpoint.port)
        a3 = await connect("127.0.0.2", tls_endpoint.tls_port)
        assert await closed_by_peer(a3)
        assert not await closed_by_peer(a1) and not await closed_by_peer(a2)
        assert tls_endpoint.bounds.refused["connections_per_source"] == 1
        b1 = await connect("127.0.0.3", tls_endpoint.port)
        b2 = await connect("127.0.0.3", tls_endpoint.tls_port)
        assert tls_endpoint.open_connections == 4
        c1 = await connect("127.0.0.4", tls_endpoint.port)  # the fifth: over the total
        assert await closed_by_peer(c1)
        assert tls_endpoint.bounds.refused["connections_total"] == 1
        # Closing gives the places back.
        for sock in (a1, a2, b1, b2):
            sock.close()
        await until(lambda: tls_endpoint.open_connections == 0)
        d1 = await connect("127.0.0.4", tls_endpoint.port)
        assert not await closed_by_peer(d1)
        assert tls_endpoint.open_connections == 1
    finally:
        for sock in opened:
            sock.close()


def udp_options(branch: str) -> Request:
    request = parse_message(options(branch, 5099).replace(b"SIP/2.0/TLS", b"SIP/2.0/UDP"))
    assert isinstance(request, Request)
    return request


def test_transactions_per_source_are_bounded() -> None:
    """Unanswered server transactions per source are bounded; answered ones (which
    linger for Timers J, K and L, RFC 3261 17.2) no longer count."""
    layer = TransactionLayer()
    layer.max_per_source = 2
    for n in range(3):
        layer.receive(udp_options(f"t{n}"), ("127.0.0.2", 5099), "udp", 0.0)
    assert len(layer) == 2 and layer.refused_sources == ["127.0.0.2"]
    layer.receive(udp_options("t9"), ("127.0.0.3", 5099), "udp", 0.0)
    assert len(layer) == 3
    # A repeat of a live transaction is not a new one: absorbed, not refused.
    layer.receive(udp_options("t0"), ("127.0.0.2", 5099), "udp", 0.1)
    assert layer.refused_sources == ["127.0.0.2"]
    events: list[TransactionEvent] = []
    while (event := layer.next_event()) is not None:
        events.append(event)
    first = events[0]
    assert isinstance(first, RequestReceived) and first.key is not None
    layer.send_response(first.key, make_response(first.request, 200), 0.2)
    # One answered: the source has room for one more, not two.
    for n in (5, 6):
        layer.receive(udp_options(f"t{n}"), ("127.0.0.2", 5099), "udp", 0.3)
    assert len(layer) == 4 and layer.refused_sources == ["127.0.0.2", "127.0.0.2"]
    # Every answer gives a place back; ended transactions hold none (Timer J).
    while (event := layer.next_event()) is not None:
        events.append(event)
    for event in events[1:]:
        assert isinstance(event, RequestReceived) and event.key is not None
        layer.send_response(event.key, make_response(event.request, 200), 0.4)
    layer.handle_timer(100.0)
    assert len(layer) == 0
    layer.receive(udp_options("t7"), ("127.0.0.2", 5099), "udp", 100.0)
    layer.receive(udp_options("t8"), ("127.0.0.2", 5099), "udp", 100.0)
    assert len(layer) == 2 and len(layer.refused_sources) == 2


async def test_outgoing_tls_to_a_station(pki: dict[str, Leaf]) -> None:
    """The gateway calls a station over TLS (transport=tls): it checks the station's
    certificate against the configured CA, and the station gets TLS messages."""
    server = pki["server"]
    settings = TlsSettings(server.cert, server.key, 0, pki["ca"].cert)
    station = SipEndpoint(HOST, 0, tls=settings)
    gateway = SipEndpoint(HOST, 0, tls=settings)
    station.tu = Recorder()
    await station.start()
    await gateway.start()
    try:
        assert station.tls_port is not None
        gateway._write(options("out1", gateway.tls_port or 0), (HOST, station.tls_port), "tls")
        recorder = station.tu
        assert isinstance(recorder, Recorder)
        await until(lambda: recorder.events)
        assert isinstance(recorder.events[0], RequestReceived)
        assert recorder.events[0].transport == "tls"
    finally:
        await gateway.close()
        await station.close()


def test_cli_wants_both_certificate_and_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--tls-cert", "/nonexistent.pem"]) == 1
    assert "--tls-cert and --tls-key go together" in capsys.readouterr().err
    args = _parser().parse_args(["run", "--tls-cert", "c.pem", "--tls-key", "k.pem"])
    settings = run_settings(args)
    tls = settings.tls()
    assert tls is not None and (tls.cert, tls.key, tls.port) == (
        Path("c.pem"),
        Path("k.pem"),
        5061,
    )
    assert run_settings(_parser().parse_args(["run"])).tls() is None


async def test_a_station_with_an_unknown_certificate_fails_at_once(
    pki: dict[str, Leaf],
) -> None:
    """The gateway refuses a station whose certificate it cannot check (another CA):
    the request is never sent and its transaction ends with a transport error at once
    (RFC 3261 17.1.4), not after Timer F (32 s)."""
    stranger = pki["stranger"]
    station = SipEndpoint(HOST, 0, tls=TlsSettings(stranger.cert, stranger.key, 0))
    station.tu = Recorder()
    server = pki["server"]
    gateway = SipEndpoint(HOST, 0, tls=TlsSettings(server.cert, server.key, 0, pki["ca"].cert))
    gateway.tu = Recorder()
    await station.start()
    await gateway.start()
    try:
        assert station.tls_port is not None
        request = parse_message(options("unk1", gateway.tls_port or 0))
        assert isinstance(request, Request)
        key = gateway.send_request(request, (HOST, station.tls_port), "tls")
        recorder = gateway.tu
        assert isinstance(recorder, Recorder)
        await until(lambda: recorder.events, timeout=3)
        [event] = recorder.events
        assert isinstance(event, TransportError) and event.key == key
        assert len(gateway.layer) == 0
        assert isinstance(station.tu, Recorder) and station.tu.events == []
    finally:
        await gateway.close()
        await station.close()


def test_requests_within_dialogs_and_cancels_are_never_refused() -> None:
    """A source at its bound still gets its BYEs and CANCELs through: refusing them
    would leave calls up (the bound is on new, out-of-dialog work)."""
    layer = TransactionLayer()
    layer.max_per_source = 1
    layer.receive(udp_options("d0"), ("127.0.0.2", 5099), "udp", 0.0)  # at the bound
    bye = parse_message(
        options("d1", 5099)
        .replace(b"SIP/2.0/TLS", b"SIP/2.0/UDP")
        .replace(b"OPTIONS", b"BYE")
        .replace(
            f"\r\nTo: <sip:vrgw@{HOST}>".encode(), f"\r\nTo: <sip:vrgw@{HOST}>;tag=gw1".encode()
        )
    )
    assert isinstance(bye, Request) and bye.to.tag == "gw1"
    layer.receive(bye, ("127.0.0.2", 5099), "udp", 0.1)
    cancel = parse_message(
        options("d2", 5099).replace(b"SIP/2.0/TLS", b"SIP/2.0/UDP").replace(b"OPTIONS", b"CANCEL")
    )
    assert isinstance(cancel, Request)
    layer.receive(cancel, ("127.0.0.2", 5099), "udp", 0.1)
    layer.receive(udp_options("d3"), ("127.0.0.2", 5099), "udp", 0.2)  # a new one: refused
    methods = []
    while (event := layer.next_event()) is not None:
        if isinstance(event, RequestReceived):
            methods.append(event.request.method)
    assert layer.refused_sources == ["127.0.0.2"]
    assert "BYE" in methods and "OPTIONS" in methods
