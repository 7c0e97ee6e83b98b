"""Fetching from hostile servers on loopback: every fetch is bounded in time and bytes, connections are never
shared between host names, and a host that cannot be fetched reads the same whatever the reason."""

from __future__ import annotations

import contextlib
import datetime as dt
import socket
import ssl
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from i2v import create
from i2v.delivery import RESPONSE_READ_CAP, DeliveryFailed, post
from i2v.ingest import ingest
from i2v.lifecycle import Work
from i2v.media import GuardedTransport, guarded_client, stream_to_s3
from i2v.messages import IngestMessage
from i2v.models import RequestProblem, Status, VideoRequest
from i2v.probe import PROBE_DEADLINE_SECONDS, ProbeError, probe
from i2v.runtime import Runtime
from i2v_local.sim_local import LocalSimulator

MiB = 1024 * 1024
Handler = Callable[[socket.socket, threading.Event], None]


class Server:
    """A loopback TCP server running `handler(connection, stop)` on a thread per connection."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.stop = threading.Event()
        self.connections = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._threads: list[threading.Thread] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return  # closed
            self.connections += 1
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):  # the client hung up (ssl.SSLError is an OSError)
            self.handler(conn, self.stop)

    def finish(self, timeout: float = 15.0) -> None:
        """Wait for every connection's handler to end (the client closing them ends them)."""
        for thread in list(self._threads):
            thread.join(timeout)
            assert not thread.is_alive(), "a connection was left open"

    def close(self) -> None:
        self.stop.set()
        self._listener.close()
        for thread in self._threads:
            thread.join(5)


@contextmanager
def serving(handler: Handler) -> Iterator[Server]:
    server = Server(handler)
    try:
        yield server
    finally:
        server.close()


def read_request(conn: socket.socket) -> dict[str, str] | None:
    """The headers of one request (its body read and dropped), or None when the client closed."""
    data = b""
    while b"\r\n\r\n" not in data:
        piece = conn.recv(65536)
        if not piece:
            return None
        data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    remaining = int(headers.get("content-length", "0")) - len(body)
    while remaining > 0:
        piece = conn.recv(min(remaining, 65536))
        if not piece:
            return None
        remaining -= len(piece)
    return headers


@pytest.fixture
def names(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Host names of the test's own: name -> address; other names resolve as usual."""
    mapping: dict[str, str] = {}
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host in mapping:
            return real(mapping[host], port, *args, **kwargs)
        if isinstance(host, str) and host.endswith(".test"):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return mapping


# -- connections are per host name


def test_a_connection_opened_for_one_host_name_is_never_used_for_another(names: dict[str, str]) -> None:
    names.update({"a.test": "127.0.0.1", "b.test": "127.0.0.1"})
    seen: list[list[str]] = []  # per connection, the Host of each request it carried

    def answer(conn: socket.socket, stop: threading.Event) -> None:
        hosts: list[str] = []
        seen.append(hosts)
        while (request := read_request(conn)) is not None:
            hosts.append(request["host"].split(":")[0])
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    with serving(answer) as server, guarded_client(allow_private=True) as client:
        for host in ("a.test", "b.test", "a.test", "b.test"):
            assert client.get(f"http://{host}:{server.port}/").text == "ok"
    assert sorted(seen) == [["a.test", "a.test"], ["b.test", "b.test"]]  # kept alive, but per name


def certificate_for(name: str, folder: Path) -> tuple[Path, Path, ssl.SSLContext]:
    """(certificate, key) of a server named `name`, and a client context trusting only its own CA."""
    now = dt.datetime.now(dt.UTC)

    def issue(subject: str, key: Any, issuer: Any, signer: Any, ca: bool) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False
            )
        return builder.sign(signer, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca = issue("test CA", ca_key, ca_name, ca_key, ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = issue(name, key, ca_name, ca_key, ca=False)
    cert_path, key_path = folder / "server.pem", folder / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    client = ssl.create_default_context(cadata=ca.public_bytes(serialization.Encoding.PEM).decode())
    return cert_path, key_path, client


def test_a_certificate_for_one_host_name_does_not_serve_another_on_the_same_address(
    names: dict[str, str], tmp_path: Path
) -> None:
    """b.test resolves to a.test's server, which holds a certificate for a.test only: a request for b.test
    must fail TLS verification, even right after a.test's connection was kept alive."""
    names.update({"a.test": "127.0.0.1", "b.test": "127.0.0.1"})
    cert, key, trust = certificate_for("a.test", tmp_path)
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)

    def answer(conn: socket.socket, stop: threading.Event) -> None:
        with server_tls.wrap_socket(conn, server_side=True) as tls:
            while read_request(tls) is not None:
                tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    transport = GuardedTransport(allow_private=True, verify=trust)
    with serving(answer) as server, httpx.Client(transport=transport) as client:
        assert client.get(f"https://a.test:{server.port}/").text == "ok"
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            client.get(f"https://b.test:{server.port}/")
        assert client.get(f"https://a.test:{server.port}/").text == "ok"


# -- webhook answers are read with a cap

HUGE = 300 * MiB


def test_a_webhook_receiver_answering_a_huge_body_is_read_no_further_than_the_cap() -> None:
    sent = [0]
    block = b"x" * (64 * 1024)  # the same bytes sent again and again: the server itself allocates nothing

    def answer(conn: socket.socket, stop: threading.Event) -> None:
        read_request(conn)
        conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {HUGE}\r\n\r\n".encode())
        while sent[0] < HUGE:
            conn.sendall(block)
            sent[0] += len(block)

    with serving(answer) as server, guarded_client(allow_private=True) as client:
        tracemalloc.start()
        try:
            status = post(client, f"http://127.0.0.1:{server.port}/hook", {}, "{}")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        server.finish()  # the client hung up: the server's writes failed, ending its handler
    assert status == 200
    assert peak < 4 * MiB  # not 300 MiB of body
    # What the server got out before its writes failed is what loopback's socket buffers took, not the body.
    assert RESPONSE_READ_CAP <= sent[0] < 32 * MiB


def drip(first: bytes, every: float = 0.5, for_at_most: float = 20.0) -> Handler:
    """Send `first` at once, then one more byte every `every` seconds (of the body, or of a header while
    `first` has not ended the headers), giving up after `for_at_most` so an unbounded client ends too."""

    def answer(conn: socket.socket, stop: threading.Event) -> None:
        read_request(conn)
        conn.sendall(first)
        ends = time.monotonic() + for_at_most
        while not stop.wait(every) and time.monotonic() < ends:
            conn.sendall(b"p")

    return answer


def test_a_webhook_receiver_dripping_its_answer_is_given_up_on_at_the_timeout() -> None:
    answer = drip(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n")
    with serving(answer) as server, guarded_client(allow_private=True) as client:
        started = time.monotonic()
        with pytest.raises(DeliveryFailed, match=r"^no answer: 127\.0\.0\.1 cannot be fetched$"):
            post(client, f"http://127.0.0.1:{server.port}/hook", {}, "{}", timeout=1.5)
        assert time.monotonic() - started < 1.5 + 1.0


# -- media probes end within their deadline

# The answer to an image probe's one request for a whole file of 1 MB.
DRIPPING = {
    "dripping the body": b"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-999999/1000000\r\n"
    b"Content-Length: 1000000\r\n\r\n",
    "dripping the headers": b"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-999999/1000000\r\n"
    b"X-Padding: ",
}


@pytest.mark.parametrize("behaviour", DRIPPING)
def test_a_media_server_dripping_bytes_cannot_hold_a_probe_past_its_deadline(behaviour: str) -> None:
    with serving(drip(DRIPPING[behaviour])) as server, guarded_client(allow_private=True) as client:
        started = time.monotonic()
        with pytest.raises(ProbeError, match="cannot be fetched"):
            probe(client, f"http://127.0.0.1:{server.port}/a.png", "image")
        assert time.monotonic() - started < PROBE_DEADLINE_SECONDS + 1.0


def test_a_probe_deadline_can_be_set_per_call() -> None:
    with serving(drip(DRIPPING["dripping the body"])) as server, guarded_client(allow_private=True) as client:
        started = time.monotonic()
        with pytest.raises(ProbeError):
            probe(client, f"http://127.0.0.1:{server.port}/a.png", "image", deadline=1.0)
        assert time.monotonic() - started < 1.0 + 1.0


def test_a_host_that_cannot_be_fetched_reads_the_same_whatever_the_reason(
    names: dict[str, str], tmp_path: Path
) -> None:
    """Refused, silent, unresolvable or failing TLS: a tenant learns nothing about the network behind it."""
    closed = socket.create_server(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()

    def silent(conn: socket.socket, stop: threading.Event) -> None:
        read_request(conn)
        stop.wait(30)

    def not_tls(conn: socket.socket, stop: threading.Event) -> None:
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")

    names.update({"refusing.test": "127.0.0.1", "silent.test": "127.0.0.1", "plain.test": "127.0.0.1"})
    messages: dict[str, str] = {}
    with (
        serving(silent) as quiet,
        serving(not_tls) as plain,
        guarded_client(allow_private=True) as client,
    ):
        urls = {
            "refused": f"http://refusing.test:{closed_port}/a.png",
            "silent": f"http://silent.test:{quiet.port}/a.png",
            "unresolvable": "http://nowhere.test/a.png",
            "tls": f"https://plain.test:{plain.port}/a.png",
        }
        for reason, url in urls.items():
            with pytest.raises(ProbeError) as caught:
                probe(client, url, "image", deadline=1.0)
            host = httpx.URL(url).host
            messages[reason] = str(caught.value).replace(host, "HOST")
    assert set(messages.values()) == {"HOST cannot be fetched"}, messages


# -- a result copied into S3 ends within its deadline


def test_a_result_url_dripping_bytes_cannot_hold_an_ingest_past_its_deadline(rt: Runtime) -> None:
    s3, bucket = rt.s3, rt.settings.bucket_name
    headers = b"HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n"
    with serving(drip(headers, every=0.05)) as server, guarded_client(allow_private=True) as client:
        started = time.monotonic()
        with pytest.raises(httpx.TimeoutException):  # transient: the ingest gives its lease back and retries
            stream_to_s3(
                client,
                s3,
                f"http://127.0.0.1:{server.port}/v.mp4",
                bucket,
                "outputs/t/v.mp4",
                {},
                deadline=1.5,
            )
        assert time.monotonic() - started < 1.5 + 1.0
    assert (
        s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    )  # aborted, nothing left half-made


def test_an_ingest_from_a_dripping_result_url_ends_at_the_configured_deadline(
    rt: Runtime, tenant: str, local_sim: LocalSimulator
) -> None:
    """The ingest use case copies within `ingest_deadline_seconds`, then gives its lease back for a retry."""
    local_sim.faults.stall = True
    image = f"s3://{rt.settings.bucket_name}/inputs/{tenant}/sample.png"
    task, _ = create.create(rt, tenant, VideoRequest(image_url=image, duration=2, resolution="720p"))
    assert task.status is Status.SUBMITTED
    rt.settings.ingest_deadline_seconds = 1.5
    headers = b"HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n"
    with serving(drip(headers, every=0.05)) as server:
        message = IngestMessage(task_id=task.id, result_url=f"http://127.0.0.1:{server.port}/v.mp4")
        started = time.monotonic()
        with pytest.raises(httpx.TimeoutException):
            ingest(rt, message)
        assert time.monotonic() - started < 1.5 + 1.0
    # Still to be ingested, and the lease given back: a retry of the message takes it at once.
    assert rt.tasks.require(task.id).status is Status.SUBMITTED
    assert rt.tasks.claim(task.id, Work.INGEST, 60, {Status.SUBMITTED}) is not None


def test_dripping_media_cannot_hold_a_create_call_past_the_probe_deadline(rt: Runtime, tenant: str) -> None:
    """Two dripping inputs share one deadline: the call is a 422 naming both, within the deadline once."""
    rt.settings.probe_deadline_seconds = 1.5
    with serving(drip(DRIPPING["dripping the body"])) as server:
        base = f"http://127.0.0.1:{server.port}"
        request = VideoRequest(image_url=f"{base}/first.png", last_frame_url=f"{base}/last.png", duration=2)
        started = time.monotonic()
        with pytest.raises(RequestProblem) as caught:
            create.create(rt, tenant, request)
        assert time.monotonic() - started < 1.5 + 1.0
    assert caught.value.status == 422
    assert {(e.field, e.message) for e in caught.value.errors} == {
        ("image_url", "cannot be used: 127.0.0.1 cannot be fetched"),
        ("last_frame_url", "cannot be used: 127.0.0.1 cannot be fetched"),
    }


@pytest.mark.parametrize(("port", "refused"), [(8443, False), (22, True)])
def test_a_webhook_url_is_held_to_the_deployment_port_setting(
    rt: Runtime, tenant: str, port: int, refused: bool
) -> None:
    rt.settings.allow_private_urls = False
    rt.settings.allowed_ports = [443, 8443]
    request = VideoRequest(
        image_url=f"s3://{rt.settings.bucket_name}/inputs/{tenant}/sample.png",
        webhook_url=f"https://93.184.216.34:{port}/hook",
    )
    with pytest.raises(RequestProblem) as caught:  # the s3 input, served by moto on loopback, is refused
        create.create(rt, tenant, request)
    webhook = [e.message for e in caught.value.errors if e.field == "webhook_url"]
    assert webhook == (["cannot be used: port 22 cannot be fetched; use port 443 or 8443"] if refused else [])
