"""The aiohttp sessions the gateway talks to every upstream through.

aiohttp, not httpx, on the hot path: measured as a proxy transport, httpx's
default pool is several times slower (docs/PERFORMANCE.md, encode/httpx#3215).
The sessions are created in the app's lifespan and shared by every request.

Two pools: one for every ordinary request, whose body the gateway already
holds whole (so a connection is taken only when there is something to send
at once), and one for streamed uploads, whose bodies flow at the client's
pace. However many uploads are in flight, stalled or not, they cannot take
the connections that reads and small writes need.
"""

from __future__ import annotations

import aiohttp

from spp_gateway.settings import GatewaySettings

# Headers aiohttp would otherwise add on its own: the gateway forwards the
# client's own values (or nothing), so the upstream sees what the client sent.
SKIP_AUTO_HEADERS = ("Accept", "Accept-Encoding", "User-Agent", "Content-Type")


class UpstreamClient:
    """Holds the shared sessions between lifespan start and shutdown."""

    __slots__ = ("_session", "_uploads", "bulk_timeout", "settings")

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self._session: aiohttp.ClientSession | None = None
        self._uploads: aiohttp.ClientSession | None = None
        self.bulk_timeout = aiohttp.ClientTimeout(
            total=None,
            connect=settings.pool_timeout + settings.connect_timeout,
            sock_connect=settings.connect_timeout,
            sock_read=settings.bulk_read_timeout,
        )

    @property
    def session(self) -> aiohttp.ClientSession:
        """The pool of every request whose body, if any, is already read."""
        if self._session is None:
            raise RuntimeError("The gateway's upstream session is not open (lifespan not run).")
        return self._session

    @property
    def uploads(self) -> aiohttp.ClientSession:
        """The pool of streamed uploads."""
        if self._uploads is None:
            raise RuntimeError("The gateway's upstream session is not open (lifespan not run).")
        return self._uploads

    def _open(self, limit: int, limit_per_host: int) -> aiohttp.ClientSession:
        s = self.settings
        connector = aiohttp.TCPConnector(
            limit=limit,
            limit_per_host=limit_per_host,
            keepalive_timeout=s.keepalive_timeout,
            ttl_dns_cache=300,
            enable_cleanup_closed=False,
        )
        return aiohttp.ClientSession(
            connector=connector,
            # sock_read bounds the wait for each read, not the whole exchange,
            # so a long download that keeps flowing is never cut.
            timeout=aiohttp.ClientTimeout(
                total=None,
                connect=s.pool_timeout + s.connect_timeout,
                sock_connect=s.connect_timeout,
                sock_read=s.read_timeout,
            ),
            auto_decompress=False,  # bytes pass through as the upstream sent them
            cookie_jar=aiohttp.DummyCookieJar(),  # never keep one client's cookies
            skip_auto_headers=SKIP_AUTO_HEADERS,
            trust_env=False,
            raise_for_status=False,
            read_bufsize=2**16,
        )

    async def open(self) -> None:
        if self._session is not None:
            return
        s = self.settings
        self._session = self._open(s.pool_size, s.pool_size_per_host)
        self._uploads = self._open(s.upload_pool_size, s.upload_pool_size)

    async def close(self) -> None:
        for session in (self._session, self._uploads):
            if session is not None:
                await session.close()
        self._session = self._uploads = None
