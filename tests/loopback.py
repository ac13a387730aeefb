"""Run a command whose only network is loopback: a network namespace of its own.

    python tests/loopback.py COMMAND [ARGS...]     # `make test` runs pytest so

Servers in the tests listen on 127.0.0.1, and nothing may send traffic anywhere
else. Ray's processes, though, listen on the machine's own address (they must be
reachable from other nodes): in a namespace whose only interface is loopback they
can only listen on, and talk to, 127.0.0.1. Where a namespace cannot be made (not
root, or a container without CAP_SYS_ADMIN) the command runs as it is, with a note,
and the Ray tests skip themselves (`only_loopback` is false).
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import socket
import struct
import sys

CLONE_NEWNET = 0x40000000
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1


def only_loopback() -> bool:
    """True when this process sees no network interface but loopback."""
    return [name for _, name in socket.if_nameindex()] == ["lo"]


def isolate() -> str | None:
    """Move this (single-threaded) process into a new network namespace with loopback up;
    returns why it could not, or None."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        return os.strerror(ctypes.get_errno())
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH14s", b"lo", 0, b"")
        flags = struct.unpack("16sH14s", fcntl.ioctl(sock, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH14s", b"lo", flags | IFF_UP, b""))
    return None


def main(argv: list[str]) -> None:
    if not argv:
        sys.exit("usage: python tests/loopback.py COMMAND [ARGS...]")
    why = None if only_loopback() else isolate()
    if why is not None:
        print(
            f"note: no network namespace of loopback only ({why}): running as is; the Ray "
            "tests skip",
            file=sys.stderr,
        )
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    main(sys.argv[1:])
