"""Which peer to believe about the client: COMPARE_TRUSTED_PROXIES.

`X-Forwarded-For`, `-Proto` and `-Host` are believed only when the request comes
from one of the configured proxy addresses; from anyone else they are whatever the
client chose to send. The client is then the nearest `X-Forwarded-For` hop that is
not itself a trusted proxy: hops further left were written by the client. The one
rule serves two places:

- `client_ip` names the client to the login throttle (django-axes' client address,
  see AXES_CLIENT_IP_CALLABLE in compare/settings.py), under any WSGI server;
- `TrustedProxyMiddleware` sits in front of Django in `manage.py serve`
  (compare/management/commands/serve.py): from a trusted proxy it puts the client in
  REMOTE_ADDR and the proxy's scheme in `wsgi.url_scheme`; from anyone else it drops
  the forwarding headers, so `SECURE_PROXY_SSL_HEADER` cannot be spoofed either.
"""

import ipaddress
from collections.abc import Callable, Collection, Iterable
from typing import Any

from django.conf import settings
from django.http import HttpRequest

# Every header a proxy may set about the original request, as WSGI environ keys.
FORWARDING_HEADERS = (
    "HTTP_X_FORWARDED_FOR",
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_X_FORWARDED_HOST",
    "HTTP_X_FORWARDED_PORT",
    "HTTP_X_FORWARDED_BY",
    "HTTP_FORWARDED",
)


def _address(hop: str) -> str | None:
    """A forwarded hop as a plain IP address ("[::1]:443" and "192.0.2.1:80" included), or None."""
    hop = hop.strip().strip('"')
    if hop.startswith("["):  # [IPv6]:port
        hop = hop[1 : hop.find("]")] if "]" in hop else hop
    elif hop.count(":") == 1:  # IPv4:port
        hop = hop.split(":", 1)[0]
    try:
        return str(ipaddress.ip_address(hop.split("%", 1)[0]))
    except ValueError:
        return None


def forwarded_client(peer: str, forwarded_for: str, trusted: Collection[str]) -> str:
    """The client's address: `peer`, or, when `peer` is a trusted proxy, the nearest
    X-Forwarded-For hop that is not one (a hop that is no address ends the walk:
    the proxy in front did not write it, so nothing to its left is believed)."""
    if peer not in trusted:
        return peer
    for hop in reversed(forwarded_for.split(",")):
        address = _address(hop)
        if address is None:
            break
        if address not in trusted:
            return address
    return peer


def client_ip(request: HttpRequest | None) -> str | None:
    """The client's address for this request (None when the server gave none)."""
    if request is None:
        return None
    peer = request.META.get("REMOTE_ADDR") or ""
    forwarded_for = request.META.get("HTTP_X_FORWARDED_FOR", "")
    return forwarded_client(peer, forwarded_for, set(settings.COMPARE_TRUSTED_PROXIES)) or None


def _last_value(header: str) -> str:
    # The right-most value is the one the nearest proxy wrote; a client's own come first.
    return header.split(",")[-1].strip().strip('"')


StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class TrustedProxyMiddleware:
    """WSGI middleware: believe the forwarding headers of the trusted proxies only.

    Any number of proxies, in front of one another or side by side, each named by
    address (waitress's own option trusts one address, or every address as "*").
    """

    def __init__(self, app: WSGIApp, trusted: Iterable[str]) -> None:
        self.app = app
        self.trusted = frozenset(trusted)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        peer = environ.get("REMOTE_ADDR", "")
        if peer in self.trusted:
            environ["REMOTE_ADDR"] = forwarded_client(peer, environ.get("HTTP_X_FORWARDED_FOR", ""), self.trusted)
            proto = _last_value(environ.get("HTTP_X_FORWARDED_PROTO", "")).lower()
            if proto in {"http", "https"}:
                environ["wsgi.url_scheme"] = proto
                environ["HTTP_X_FORWARDED_PROTO"] = proto  # what SECURE_PROXY_SSL_HEADER reads
            else:
                environ.pop("HTTP_X_FORWARDED_PROTO", None)
            host = _last_value(environ.get("HTTP_X_FORWARDED_HOST", ""))
            if host:
                environ["HTTP_HOST"] = host
        else:
            for key in FORWARDING_HEADERS:
                environ.pop(key, None)
        return self.app(environ, start_response)
