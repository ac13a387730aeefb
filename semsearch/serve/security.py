"""Who may ask the server: the token and the ``Host`` header check.

A server bound to loopback serves only this machine, but a web page open in the
user's browser can still reach it: by DNS rebinding (a name of the attacker's
that resolves to 127.0.0.1), it would read the answers as its own origin. The
``Host`` header of such a request names the attacker's domain, so every request
whose ``Host`` is not the bound name or a loopback name is refused. A server
bound to another address must have a token: every API request carries it as
``Authorization: Bearer TOKEN`` (programs) or in the ``semsearch_token`` cookie
that ``POST /login`` sets (the page), compared in constant time.

Nothing here imports FastAPI or Starlette at run time: requests are read
through the few attributes every Starlette ``HTTPConnection`` has.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..errors import UsageError

if TYPE_CHECKING:
    from starlette.requests import HTTPConnection

TOKEN_COOKIE = "semsearch_token"
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")
WILDCARD_HOSTS = ("0.0.0.0", "::", "[::]", "")  # bound to every interface: any name reaches it


class Security:
    """The token (``None``: no token asked) and the host names this server answers to.

    ``allowed_hosts`` are host names without a port (``localhost``, ``[::1]``,
    ``notes.example``); ``None`` accepts any ``Host`` (a server bound to every
    interface, which must have a token).
    """

    def __init__(
        self, token: str | None = None, allowed_hosts: Iterable[str] | None = LOOPBACK_HOSTS
    ) -> None:
        self.token = token or None
        if self.token is not None:
            check_token_text(self.token)
        self.allowed_hosts: frozenset[str] | None = (
            None if allowed_hosts is None else frozenset(_bare_host(h) for h in allowed_hosts)
        )

    def authorized(self, request: HTTPConnection) -> bool:
        """Whether ``request`` may read the notes: no token is set, or it carries the token
        (``Authorization: Bearer T`` or the ``semsearch_token`` cookie)."""
        if self.token is None:
            return True
        given = bearer_token(request.headers.get("authorization"))
        if given is None:
            given = request.cookies.get(TOKEN_COOKIE)
        return given is not None and self.check_token(given)

    def check_token(self, given: str) -> bool:
        """Whether ``given`` is the token, compared in constant time."""
        if self.token is None:
            return True
        return hmac.compare_digest(given.encode("utf-8"), self.token.encode("utf-8"))

    def host_allowed(self, request: HTTPConnection) -> bool:
        """Whether the request's ``Host`` header names this server (not a rebound name)."""
        if self.allowed_hosts is None:
            return True
        host = request.headers.get("host")
        return host is not None and _bare_host(host) in self.allowed_hosts


def check_token_text(token: str) -> None:
    """Refuse a token that HTTP cannot carry as it was given: an ``Authorization`` header is
    read as Latin-1 with the spaces at its ends dropped, and a cookie holds Latin-1 only, so
    anything but printable ASCII with no space at either end could never match."""
    bad = next((c for c in token if not " " <= c <= "~"), None)
    if bad is not None:
        raise UsageError(
            f"the token holds {bad!r}, which an HTTP header cannot carry: use printable ASCII "
            "(letters, digits, punctuation)"
        )
    if token != token.strip():
        raise UsageError(
            "the token starts or ends with a space, which an HTTP header drops: remove it"
        )


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer TOKEN`` header, or ``None``."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` serves this machine only (``localhost``, 127.x, ::1)."""
    name = host.strip().strip("[]").lower().rstrip(".")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def allowed_hosts_for(host: str) -> tuple[str, ...] | None:
    """The ``Host`` names a server bound to ``host`` answers to: loopback names and the bound
    name; ``None`` (any) when bound to every interface."""
    if host.strip() in WILDCARD_HOSTS:
        return None
    bound = host.strip()
    if ":" in bound and not bound.startswith("["):  # an IPv6 address is written [::1] in Host
        bound = f"[{bound}]"
    return (*LOOPBACK_HOSTS, bound)


def _bare_host(host: str) -> str:
    """``host`` of a ``Host`` header without its port, lower case, no trailing dot."""
    host = host.strip().lower()
    if host.startswith("["):  # [::1]:8765
        end = host.find("]")
        if end == -1 or not _is_port_part(host[end + 1 :]):
            return host  # '[::1]evil': no name of this server
        return host[: end + 1]
    if host.count(":") == 1:  # name:port
        name, _, port = host.partition(":")
        if not _is_port_part(":" + port):
            return host  # '127.0.0.1:1@evil.example': no name of this server
        host = name
    elif host.count(":") > 1:  # a bare IPv6 address, no port
        host = f"[{host}]"
    return host.rstrip(".")


def _is_port_part(rest: str) -> bool:
    """Whether ``rest`` (what follows the name in a ``Host`` header) is empty or ``:PORT``."""
    return rest == "" or (rest[:1] == ":" and rest[1:].isascii() and rest[1:].isdigit())


__all__ = [
    "LOOPBACK_HOSTS",
    "TOKEN_COOKIE",
    "Security",
    "allowed_hosts_for",
    "bearer_token",
    "check_token_text",
    "is_loopback",
]
