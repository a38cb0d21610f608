"""The transport under the adapters' `httpx.AsyncClient`: httpx's API over aiohttp's pool.

The adapters speak httpx (an injected `AsyncClient`, `MockTransport` in tests, httpx's
exception tree for "no answer"); only the connection handling below it is aiohttp's. Why:
httpcore costs ~1 ms of CPU per request even with its pool split in small shards (its pool
re-examines every connection for every request, and every lock goes through anyio), which
capped a worker at a few hundred sends/s; aiohttp's pool and parser (C) cost a fraction
of that (bench/RESULTS.md, bench/sends_over_http.py).

What this transport promises the client above it, as httpcore did:
- one keep-alive connection for each call in flight, up to `connections`; a POST is sent
  once — never repeated on a fresh connection when a kept-alive one fails (aiohttp retries
  only idempotent methods), since a repeated send would contact a lead twice;
- the client's timeouts: connect, read (per socket read), and the whole exchange bounded by
  connect + write + read, the longest call `domain.leads.LONGEST_PROVIDER_CALL` assumes;
- httpx's exceptions (below), so `channels.errors.no_answer` tells a timeout from a failed
  connection; TLS verified with httpx's own default context; no cookies, redirects,
  decompression or proxies of its own (the client above does those, or not);
- the answer's body is read whole before the response is returned (provider answers are a
  few hundred bytes), which hands the connection back to the pool at once.

    aiohttp                                         httpx
    ConnectionTimeoutError (connect, pool wait) ... ConnectTimeout
    SocketTimeoutError, any other timeout ......... ReadTimeout
    ClientConnectorError (refused, DNS, TLS) ...... ConnectError  (ProxyError for a proxy)
    ServerDisconnectedError, ClientPayloadError,
      ClientResponseError (a malformed answer) .... RemoteProtocolError
    ClientOSError, reset, other connection errors . ReadError
    NonHttpUrlClientError / InvalidURL ............ UnsupportedProtocol / InvalidURL
"""

from __future__ import annotations

import ssl
import urllib.request
from functools import lru_cache

import aiohttp
import httpx

KEEPALIVE_SECONDS = 5.0  # httpx's default keep-alive expiry

_ERRORS: tuple[tuple[type[BaseException], type[Exception]], ...] = (  # the first match wins
    (aiohttp.ConnectionTimeoutError, httpx.ConnectTimeout),
    (TimeoutError, httpx.ReadTimeout),  # aiohttp's other timeouts are TimeoutErrors too
    (aiohttp.ClientProxyConnectionError, httpx.ProxyError),
    (aiohttp.ClientConnectorError, httpx.ConnectError),
    (aiohttp.ServerFingerprintMismatch, httpx.ConnectError),
    (aiohttp.ServerDisconnectedError, httpx.RemoteProtocolError),
    (aiohttp.ClientPayloadError, httpx.RemoteProtocolError),
    (aiohttp.ClientResponseError, httpx.RemoteProtocolError),
    (aiohttp.NonHttpUrlClientError, httpx.UnsupportedProtocol),
    (aiohttp.ClientConnectionError, httpx.ReadError),
    (aiohttp.ClientError, httpx.TransportError),
    (OSError, httpx.ReadError),
)


def httpx_error(exc: BaseException, request: httpx.Request) -> Exception:
    """The httpx exception that stands for an aiohttp one (module docstring)."""
    message = str(exc) or type(exc).__name__
    if isinstance(exc, aiohttp.InvalidURL):
        return httpx.InvalidURL(message)
    for source, target in _ERRORS:
        if isinstance(exc, source):
            return target(message, request=request)
    return httpx.TransportError(message, request=request)


class AiohttpTransport(httpx.AsyncBaseTransport):
    """Keeps up to `connections` keep-alive connections in one aiohttp session, opened on the
    first request (inside the event loop that uses it)."""

    def __init__(self, connections: int, *, verify: ssl.SSLContext | None = None,
                 keepalive_seconds: float = KEEPALIVE_SECONDS) -> None:
        self.connections = connections
        self.ssl_context = verify if verify is not None else httpx.create_ssl_context()
        self.keepalive_seconds = keepalive_seconds
        self.session: aiohttp.ClientSession | None = None
        self._timeouts: dict[tuple, aiohttp.ClientTimeout] = {}

    def _session(self) -> aiohttp.ClientSession:
        if self.session is None:
            connector = aiohttp.TCPConnector(limit=self.connections, limit_per_host=0, ssl=self.ssl_context,
                                             keepalive_timeout=self.keepalive_seconds)
            self.session = aiohttp.ClientSession(
                connector=connector, cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False,
                trust_env=False, timeout=aiohttp.ClientTimeout(),
                # httpx sets these itself when it wants them; aiohttp must not add its own
                skip_auto_headers=("Accept", "Accept-Encoding", "User-Agent", "Content-Type"))
        return self.session

    def _timeout(self, timeout: dict) -> aiohttp.ClientTimeout:
        connect, read, write = timeout.get("connect"), timeout.get("read"), timeout.get("write")
        key = (connect, read, write, timeout.get("pool"))
        found = self._timeouts.get(key)
        if found is None:
            total = None if None in (connect, read, write) else connect + write + read
            found = self._timeouts[key] = aiohttp.ClientTimeout(total=total, connect=timeout.get("pool"),
                                                                sock_connect=connect, sock_read=read)
        return found

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(f"Request URL has an unsupported protocol '{request.url.scheme}://'.",
                                            request=request)
        headers = request.headers
        try:
            data = request.content or None
        except httpx.RequestNotRead:  # a streamed body: aiohttp sends it chunked itself
            data = request.stream
            headers = headers.copy()
            headers.pop("transfer-encoding", None)
        extensions = request.extensions
        try:
            async with self._session().request(
                    request.method, str(request.url), headers=headers.multi_items(), data=data,
                    allow_redirects=False, timeout=self._timeout(extensions.get("timeout") or {}),
                    server_hostname=extensions.get("sni_hostname")) as answer:
                body = await answer.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise httpx_error(exc, request) from exc
        version = answer.version
        return httpx.Response(
            answer.status, headers=answer.raw_headers, stream=httpx.ByteStream(body),
            extensions={"http_version": f"HTTP/{version.major}.{version.minor}".encode() if version else b"HTTP/1.1",
                        "reason_phrase": (answer.reason or "").encode()})

    async def aclose(self) -> None:
        session, self.session = self.session, None
        if session is not None:
            await session.close()


class _Unkept(httpx.Cookies):
    """A cookie jar that keeps nothing a provider sets (cookies set on purpose still go out)."""

    def extract_cookies(self, response: httpx.Response) -> None:
        pass


class ProviderClient(httpx.AsyncClient):
    """The adapters' shared client: an `httpx.AsyncClient` that keeps no cookies from the
    answers. One client serves every workspace's credentials, so a cookie that one
    provider account's answer set must not ride along with another account's calls; and
    reading every answer for cookies (through the standard library's cookie jar) was a
    tenth of the CPU a send costs."""

    def __init__(self, **options) -> None:
        super().__init__(**options)
        self._unkept = _Unkept(options.get("cookies"))

    @property
    def cookies(self) -> httpx.Cookies:
        return self._unkept

    @cookies.setter
    def cookies(self, cookies) -> None:
        self._unkept = _Unkept(cookies)


def provider_client(connections: int, timeout: httpx.Timeout) -> httpx.AsyncClient:
    """The client the HTTP adapters share: a keep-alive connection for each of the
    `connections` calls a worker may have in flight, over aiohttp — or, when HTTP(S)_PROXY
    / ALL_PROXY are set, over httpx's own transport, which honours them (and NO_PROXY)."""
    if urllib.request.getproxies():
        return ProviderClient(timeout=timeout, limits=httpx.Limits(max_connections=connections,
                                                                   max_keepalive_connections=connections))
    return ProviderClient(timeout=timeout, transport=AiohttpTransport(connections))


@lru_cache(maxsize=4096)
def endpoint(url: str) -> httpx.URL:
    """A provider endpoint parsed once per credential rather than once per send: parsing
    the URL string was half of what building a request cost (about 40 of 80 µs)."""
    return httpx.URL(url)
