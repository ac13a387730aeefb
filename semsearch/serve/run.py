"""`serve`: one open `Index` answering HTTP on a host and port, until Ctrl-C.

Everything that can fail is checked before the server listens: a host other
than loopback without a token, an index that is missing or damaged, a port in
use. Each raises a `SemsearchError` with one line saying what to do. The socket
is bound here (``port=0`` picks a free port) and handed to uvicorn, so the
``on_ready`` callback is told the real address. Ctrl-C stops the server
gracefully (requests in flight finish) and raises `KeyboardInterrupt`; the
server never writes to the index.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ..errors import ModelLoadError, ServeError, SourceError, UsageError
from .security import allowed_hosts_for, check_token_text, is_loopback

if TYPE_CHECKING:
    from ..index import Index
    from ..update.watch import Watcher

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
GRACEFUL_SECONDS = 10  # requests in flight at Ctrl-C get this long to finish

log = logging.getLogger("semsearch.serve")


def check_host(host: str, token: str | None) -> None:
    """Refuse to bind ``host`` if it serves other machines and no token guards it, and a
    token that HTTP cannot carry."""
    if token:
        check_token_text(token)
    if not host.strip():
        raise UsageError("the host is empty: give an address to listen on, e.g. 127.0.0.1")
    if not token and not is_loopback(host):
        raise UsageError(
            f"--host {host} lets other machines reach your notes: give a token with --token T "
            "or SEMSEARCH_TOKEN (or keep the default --host 127.0.0.1)"
        )


def bind(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host``:``port`` (``0``: a free port), not yet listening."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise UsageError(f"port must be a whole number from 0 to 65535 (got {port!r})")
    name = host.strip().strip("[]")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            name, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise ServeError(f"cannot listen on {host}: no such address ({exc})") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # restart right after a stop
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.set_inheritable(True)
    except OSError as exc:
        sock.close()
        why = exc.strerror or str(exc)
        hint = (
            ": another server is using it; pick another with --port N (or --port 0 for any "
            "free port)"
            if exc.errno in _IN_USE
            else ""
        )
        raise ServeError(f"cannot listen on {url_of(host, port)} ({why}){hint}") from None
    return sock


_IN_USE = {errno.EADDRINUSE, 10048}  # 10048: WSAEADDRINUSE (Windows)


def url_of(host: str, port: int) -> str:
    """``http://host:port/``, an IPv6 address in brackets."""
    name = host.strip()
    if ":" in name and not name.startswith("["):
        name = f"[{name}]"
    return f"http://{name}:{port}/"


def open_index(index_dir: str | os.PathLike[str], build_from: Sequence[str] = ()) -> Index:
    """The index in ``index_dir``, checked readable (raises when missing or damaged).

    With ``build_from`` (the paths `serve --watch` watches) a missing index is built from
    them first, as `semsearch index PATHS` would, so a server can start on a new folder.
    """
    from ..index import Index

    index = Index.open(index_dir, create=bool(build_from))
    try:
        if build_from and not index.exists:
            log.info("indexing %s first (no index in %s yet)", ", ".join(build_from), index_dir)
            index.add(list(build_from))
        index.info()  # reads the manifest and the generation: damage shows now, not per request
    except BaseException:
        index.close()
        raise
    return index


def watcher_for(index: Index, paths: Sequence[str]) -> Watcher:
    """A `Watcher` of ``paths`` on the serving ``index``, telling the request log each commit
    and each problem (one line)."""
    from ..update.watch import Watcher

    return Watcher(
        index,
        list(paths),
        on_commit=lambda c: log.info("watch: %s", c.summary()),
        on_problem=lambda line: log.warning("watch: %s", line),
    )


def warm(index: Index) -> None:
    """Load the query model now, so the first request is as fast as the others."""
    try:
        index.search("semsearch", k=1, highlight=True)  # the model, the word vectors, BM25
    except ModelLoadError as exc:  # lexical queries still work; dense and hybrid ones say why
        log.warning("the model did not load (%s); only mode=lexical queries will work", exc)


def log_to_stderr() -> None:
    """Send the request log (logger ``semsearch.serve``) to stderr, one line each."""
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
        log.addHandler(handler)
        log.propagate = False
    if log.level == logging.NOTSET:
        log.setLevel(logging.INFO)


def serve(
    index_dir: str | os.PathLike[str],
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    token: str | None = None,
    cors_origins: Sequence[str] = (),
    label: str | None = None,
    on_ready: Callable[[str], None] | None = None,
    warm_model: bool = True,
    watch: Sequence[str] = (),
) -> None:
    """Serve the index in ``index_dir`` (the API and the page) on ``host``:``port`` until
    interrupted (then `KeyboardInterrupt` is raised, the index untouched).

    ``token`` is needed for a host other than loopback; ``label`` is the index's name in
    answers (default: ``index_dir`` as given, as the command line prints it); ``on_ready``
    is called with the URL once the server listens. ``watch`` (files and folders) keeps the
    index fresh while serving: a `Watcher` in a thread of this process re-indexes what
    changes through the normal atomic commit, and the next request answers from it (a
    missing index is built from these paths first).
    """
    token = token or None
    check_host(host, token)
    for path in watch:
        if not os.path.exists(path):
            raise SourceError(f"{path}: no such file or folder to watch")
    index = open_index(index_dir, build_from=watch)
    watcher: Watcher | None = None
    try:
        if watch:
            watcher = watcher_for(index, watch)  # a bad path refuses before the port is bound
        if warm_model:
            warm(index)
        sock = bind(host, port)
        try:
            if watcher is not None:
                watcher.start()
            _run(index, sock, host, token, cors_origins, label or os.fspath(index_dir), on_ready)
        finally:
            if watcher is not None:
                watcher.stop()  # a commit under way finishes or rolls back: never half
            sock.close()
    finally:
        index.close()


def _run(
    index: Index,
    sock: socket.socket,
    host: str,
    token: str | None,
    cors_origins: Sequence[str],
    label: str,
    on_ready: Callable[[str], None] | None,
) -> None:
    import uvicorn

    from .app import create_app
    from .service import Service

    app = create_app(
        Service(index, label=label),
        token=token,
        allowed_hosts=allowed_hosts_for(host),
        cors_origins=cors_origins,
    )
    url = url_of(host, sock.getsockname()[1])

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started and on_ready is not None:
                on_ready(url)

    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,  # the app logs one line per request itself
        lifespan="off",
        server_header=False,
        timeout_graceful_shutdown=GRACEFUL_SECONDS,
    )
    Server(config).run(sockets=[sock])


__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "bind",
    "check_host",
    "log_to_stderr",
    "open_index",
    "serve",
    "url_of",
    "warm",
    "watcher_for",
]
