"""Test-only network guard, loaded by the test server's Python at start-up (``sitecustomize``).

``tests/comfy_host.py`` puts this folder on the server's ``PYTHONPATH`` and names a log file in
``OPENLTX_NETGUARD_LOG``.  Every attempt to reach a host that is not the loopback interface --
a name lookup (``getaddrinfo``), a TCP / UDP ``connect``, a UDP ``sendto`` -- is refused with an
``OSError`` and written to that log as one JSON line with the caller's stack, so a test can
assert that nothing in the server tried to leave the machine (the pack's privacy promise:
prompts and footage never leave it).  Loopback (127.0.0.0/8, ::1, ``localhost``) and Unix
sockets pass: the test talks to the server over 127.0.0.1.

Nothing here is part of the pack; it never runs outside the tests.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import os
import socket
import threading
import time
import traceback

_LOG = os.environ.get("OPENLTX_NETGUARD_LOG")
_LOCK = threading.Lock()
_INET = (socket.AF_INET, socket.AF_INET6)


def _loopback(host) -> bool:
    if host is None:
        return True  # getaddrinfo(None, port): the local wildcard / loopback
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    host = str(host).strip("[]").split("%")[0].lower()
    if host in ("", "localhost") or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def _record(kind: str, target) -> None:
    if not _LOG:
        return
    entry = {"time": time.time(), "kind": kind, "target": repr(target), "pid": os.getpid(),
             "stack": traceback.format_stack(limit=25)[:-2]}  # fmt: skip
    with _LOCK:
        with open(_LOG, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry) + "\n")


def _refuse(kind: str, target) -> OSError:
    _record(kind, target)
    return OSError(errno.ENETUNREACH, f"network access to {target!r} is blocked in this test server")


_getaddrinfo = socket.getaddrinfo
_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex
_sendto = socket.socket.sendto


def getaddrinfo(host, *args, **kwargs):
    if not _loopback(host):
        _record("getaddrinfo", host)
        raise socket.gaierror(socket.EAI_NONAME, f"name lookup of {host!r} is blocked in this test server")
    return _getaddrinfo(host, *args, **kwargs)


def connect(self, address):
    if self.family in _INET and not _loopback(address[0]):
        raise _refuse("connect", address)
    return _connect(self, address)


def connect_ex(self, address):
    if self.family in _INET and not _loopback(address[0]):
        _record("connect_ex", address)
        return errno.ENETUNREACH
    return _connect_ex(self, address)


def sendto(self, data, *args):
    address = args[-1]
    if self.family in _INET and isinstance(address, tuple) and not _loopback(address[0]):
        raise _refuse("sendto", address)
    return _sendto(self, data, *args)


if _LOG:
    with open(_LOG + ".pids", "a", encoding="utf-8") as _fh:  # which processes run guarded
        _fh.write(f"{os.getpid()}\n")
    socket.getaddrinfo = getaddrinfo
    socket.socket.connect = connect
    socket.socket.connect_ex = connect_ex
    socket.socket.sendto = sendto
