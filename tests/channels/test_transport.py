"""The adapters' client over aiohttp (channels/transport.py): one kept-alive connection per
call in flight, httpx's exceptions for every way a provider may not answer, a POST never
sent twice, TLS verified, no cookies kept."""

from __future__ import annotations

import asyncio
import datetime
import gzip
import ipaddress
import ssl
from contextlib import asynccontextmanager

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from drumbeat.bootstrap import build_adapters
from drumbeat.channels.base import Credential, OutboundMessage
from drumbeat.channels.transport import AiohttpTransport, ProviderClient, provider_client
from drumbeat.channels.whatsapp import WhatsAppCloudAdapter
from drumbeat.domain.errors import ErrorClass

OK = b'{"messaging_product":"whatsapp","messages":[{"id":"wamid.1"}]}'
BODY = {"messaging_product": "whatsapp", "to": "4915112345678", "type": "text", "text": {"body": "x"}}


def answer(body: bytes = OK, *, status: bytes = b"200 OK", headers: bytes = b"") -> bytes:
    return (b"HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n%s"
            % (status, len(body), headers, body))


class RawServer:
    """A bare HTTP/1.1 server on loopback: `reply(head, body)` returns the bytes to answer,
    None to close the connection unanswered, or ... to never answer."""

    def __init__(self, reply) -> None:
        self.reply = reply
        self.connections = 0
        self.requests: list[bytes] = []  # request heads, as received
        self.latency = 0.0
        self.close_after_answer = False

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":", 1)[1]) for line in head.lower().split(b"\r\n")
                               if line.startswith(b"content-length:")), 0)
                body = await reader.readexactly(length)
                self.requests.append(head)
                if self.latency:
                    await asyncio.sleep(self.latency)
                out = self.reply(head, body)
                if out is ...:
                    await asyncio.sleep(3600)
                if out is None:
                    break
                writer.write(out)
                await writer.drain()
                if self.close_after_answer:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def raw_server(reply=lambda head, body: answer(), ssl_context: ssl.SSLContext | None = None):
    fake = RawServer(reply)
    server = await asyncio.start_server(fake.handle, "127.0.0.1", 0, ssl=ssl_context)
    fake.url = f"{'https' if ssl_context else 'http'}://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    async with server:
        yield fake


def credential(url: str) -> Credential:
    return Credential("int-wa-1", "whatsapp_cloud", "whatsapp", {"access_token": "EAAG-t"},
                      {"phone_number_id": "1", "base_url": f"{url}/v23.0"})


MESSAGE = OutboundMessage("whatsapp", "+4915112345678", "Hi", "lead1:0:1", template={"body": "Hi"})


async def test_calls_in_flight_each_keep_one_connection_and_later_calls_reuse_them():
    async with raw_server() as fake, provider_client(16, httpx.Timeout(5.0)) as client:
        fake.latency = 0.05  # every request is still in flight when the next ones start
        for _ in range(3):  # three waves of 16: the second and third reuse the first one's connections
            answers = await asyncio.gather(*(client.post(f"{fake.url}/v23.0/1/messages", json=BODY)
                                             for _ in range(16)))
            assert all(a.status_code == 200 and a.json()["messages"][0]["id"] == "wamid.1" for a in answers)
        assert (len(fake.requests), fake.connections) == (48, 16)


async def test_no_more_connections_are_opened_than_allowed():
    async with raw_server() as fake, provider_client(4, httpx.Timeout(5.0)) as client:
        fake.latency = 0.02
        await asyncio.gather(*(client.post(f"{fake.url}/x", json=BODY) for _ in range(20)))
        assert (len(fake.requests), fake.connections) == (20, 4)


async def test_the_request_goes_out_as_httpx_built_it():
    async with raw_server() as fake, provider_client(1, httpx.Timeout(5.0)) as client:
        await client.post(f"{fake.url}/v23.0/1/messages?x=a%20b", json=BODY, headers={"Authorization": "Bearer t"})
        await client.get(f"{fake.url}/status")
    post, get = (head.decode().split("\r\n") for head in fake.requests)
    assert post[0] == "POST /v23.0/1/messages?x=a%20b HTTP/1.1"
    headers = {line.split(":", 1)[0].lower(): line.split(":", 1)[1].strip() for line in post[1:] if line}
    assert headers["authorization"] == "Bearer t" and headers["content-type"] == "application/json"
    assert headers["host"] == fake.url.removeprefix("http://")
    assert headers["user-agent"].startswith("python-httpx/")  # httpx's, not aiohttp's
    assert get[0] == "GET /status HTTP/1.1"
    assert not any(line.lower().startswith(("content-length", "content-type")) for line in get[1:])


async def test_a_streamed_request_body_is_sent_chunked(whatsapp_server):
    async def chunks():
        yield b'{"messaging_product": "whatsapp", "to": "4915112345678", '
        yield b'"type": "text", "text": {"body": "streamed"}}'

    async with provider_client(1, httpx.Timeout(5.0)) as client:
        answer_ = await client.post(f"{whatsapp_server.base_url}/v23.0/1/messages", content=chunks(),
                                    headers={"Authorization": "Bearer t", "Content-Type": "application/json"})
    assert answer_.status_code == 200
    assert whatsapp_server.requests[-1].body["text"] == {"body": "streamed"}


async def test_a_compressed_answer_is_decoded_by_httpx():
    zipped = gzip.compress(OK)
    async with raw_server(lambda head, body: answer(zipped, headers=b"Content-Encoding: gzip\r\n")) as fake, \
            provider_client(1, httpx.Timeout(5.0)) as client:
        got = await client.post(f"{fake.url}/x", json=BODY)
    assert got.json()["messages"][0]["id"] == "wamid.1"


async def test_cookies_a_provider_sets_are_not_kept_for_the_next_call():
    reply = lambda head, body: answer(headers=b"Set-Cookie: AWSALB=abc; Path=/\r\n")  # noqa: E731
    async with raw_server(reply) as fake, provider_client(1, httpx.Timeout(5.0)) as client:
        first = await client.post(f"{fake.url}/x", json=BODY)
        await client.post(f"{fake.url}/x", json=BODY)
    assert first.headers["set-cookie"].startswith("AWSALB=")
    assert not any(b"cookie:" in head.lower() for head in fake.requests)
    assert isinstance(client, ProviderClient) and not client.cookies


# --- no answer: httpx's exceptions, so that the adapters tell a timeout from a failure ------

async def test_a_refused_connection_is_a_connect_error(closed_port_url):
    async with provider_client(1, httpx.Timeout(2.0)) as client:
        with pytest.raises(httpx.ConnectError):
            await client.post(f"{closed_port_url}/x", json=BODY)
        result = await WhatsAppCloudAdapter(client).send(credential(closed_port_url), MESSAGE)
    assert (result.error_class, result.error_code) == (ErrorClass.TRANSIENT, "whatsapp:connection")


async def test_a_provider_that_never_answers_is_a_read_timeout():
    async with raw_server(lambda head, body: ...) as fake, provider_client(1, httpx.Timeout(0.2)) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.post(f"{fake.url}/x", json=BODY)
        result = await WhatsAppCloudAdapter(client).send(credential(fake.url), MESSAGE)
    assert (result.error_class, result.error_code) == (ErrorClass.TRANSIENT, "whatsapp:timeout")


async def test_a_connection_closed_without_an_answer_is_not_a_timeout_and_the_post_is_sent_once():
    async with raw_server(lambda head, body: None) as fake, provider_client(1, httpx.Timeout(2.0)) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post(f"{fake.url}/x", json=BODY)
        assert len(fake.requests) == 1  # not repeated on a fresh connection: the lead may be contacted
        result = await WhatsAppCloudAdapter(client).send(credential(fake.url), MESSAGE)
    assert (result.error_class, result.error_code) == (ErrorClass.TRANSIENT, "whatsapp:connection")
    assert len(fake.requests) == 2


async def test_a_kept_alive_connection_the_provider_closed_meanwhile_is_not_reused():
    replies = iter([answer(headers=b"Connection: close\r\n"), answer()])
    async with raw_server(lambda head, body: next(replies)) as fake, provider_client(1, httpx.Timeout(2.0)) as c:
        assert (await c.post(f"{fake.url}/x", json=BODY)).status_code == 200
        assert (await c.post(f"{fake.url}/x", json=BODY)).status_code == 200
    assert (len(fake.requests), fake.connections) == (2, 2)


async def test_a_malformed_answer_is_a_protocol_error():
    async with raw_server(lambda head, body: b"SMTP? 220 hello\r\n\r\n") as fake, \
            provider_client(1, httpx.Timeout(2.0)) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post(f"{fake.url}/x", json=BODY)


async def test_a_body_cut_short_is_a_protocol_error():
    async with raw_server(lambda head, body: answer()[:-10]) as fake, \
            provider_client(1, httpx.Timeout(2.0)) as client:
        fake.close_after_answer = True
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post(f"{fake.url}/x", json=BODY)


async def test_a_url_that_is_not_http_is_an_unsupported_protocol():
    async with provider_client(1, httpx.Timeout(2.0)) as client:
        with pytest.raises(httpx.UnsupportedProtocol):
            await client.post("ftp://127.0.0.1/x", json=BODY)
        result = await WhatsAppCloudAdapter(client).send(credential("ftp://graph.example"), MESSAGE)
    assert (result.error_class, result.error_code) == (ErrorClass.KEY, "whatsapp:config")


def _self_signed() -> tuple[ssl.SSLContext, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    pem = cert.public_bytes(serialization.Encoding.PEM)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(*_write_pair(pem, key))
    return server, pem


def _write_pair(pem: bytes, key) -> tuple[str, str]:
    import tempfile

    folder = tempfile.mkdtemp()
    with open(f"{folder}/cert.pem", "wb") as f:
        f.write(pem)
    with open(f"{folder}/key.pem", "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return f"{folder}/cert.pem", f"{folder}/key.pem"


async def test_tls_is_verified_a_certificate_nobody_signed_is_refused():
    server_context, pem = _self_signed()
    async with raw_server(ssl_context=server_context) as fake:
        async with provider_client(1, httpx.Timeout(2.0)) as client:
            with pytest.raises(httpx.ConnectError):
                await client.post(f"{fake.url}/x", json=BODY)
        assert fake.requests == []
        trusting = ssl.create_default_context(cadata=pem.decode())
        async with httpx.AsyncClient(transport=AiohttpTransport(1, verify=trusting)) as client:
            assert (await client.post(f"{fake.url}/x", json=BODY)).status_code == 200


def test_the_whole_call_is_bounded_by_connect_write_and_read():
    timeout = AiohttpTransport(1)._timeout(httpx.Timeout(30.0, connect=10.0).as_dict())
    assert (timeout.total, timeout.sock_connect, timeout.sock_read, timeout.connect) == (70.0, 10.0, 30.0, 30.0)
    unbounded = AiohttpTransport(1)._timeout(httpx.Timeout(None).as_dict())
    assert (unbounded.total, unbounded.sock_connect, unbounded.sock_read) == (None, None, None)


# --- what a worker builds ----------------------------------------------------------------------

async def test_a_worker_keeps_a_connection_for_each_call_in_flight(monkeypatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    adapters = build_adapters(concurrency=256)
    client = adapters["whatsapp_cloud"].client
    assert isinstance(client, ProviderClient) and isinstance(client._transport, AiohttpTransport)
    assert client._transport.connections == 256
    assert client.timeout.connect == 10.0 and client.timeout.read == 30.0
    await client.aclose()


async def test_behind_an_environment_proxy_the_worker_keeps_httpx_own_transport(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    client = build_adapters(concurrency=64)["whatsapp_cloud"].client
    assert not isinstance(client._transport, AiohttpTransport)
    proxied = client._transport_for_url(httpx.URL("https://graph.facebook.com/v23.0/1/messages"))
    assert proxied is not client._transport  # the proxy's mount answers
    assert proxied._pool._max_connections == 64
    await client.aclose()
