"""The one place httpx clients are built: timeouts, limits, user agent."""

import threading

import httpx
from django.conf import settings

USER_AGENT = "compare/0.1 (+self-hosted image model comparison)"
_lock = threading.Lock()
_client: httpx.Client | None = None


def build_client(transport: httpx.BaseTransport | None = None) -> httpx.Client:
    return httpx.Client(
        timeout=httpx.Timeout(settings.COMPARE_REQUEST_TIMEOUT, connect=10.0),
        limits=httpx.Limits(max_connections=200, max_keepalive_connections=40),
        headers={"User-Agent": USER_AGENT},
        follow_redirects=False,
        transport=transport,
    )


def shared_client() -> httpx.Client:
    """A process-wide client (httpx.Client is thread-safe) so connections are reused."""
    global _client
    with _lock:
        if _client is None:
            _client = build_client()
        return _client


def reset_shared_client() -> None:
    global _client
    with _lock:
        if _client is not None:
            _client.close()
        _client = None
