"""A rude SMTP relay in front of the local sink: the ways a real relay fails after the data.

Why: an SMTP relay that took a message can still lose the conversation: the connection resets
before its ``250`` reaches the sender, or it answers ``250`` and then fails the ``QUIT``. A
sender that reads either as "not sent" mails the person twice. This relay speaks SMTP to the
worker and forwards every command to the real sink (``processor.devkit.local_stack``'s aiosmtpd
outbox), so what the sink wrote is what was delivered; on the first ``first`` conversations it
misbehaves as ``mode`` says:

- ``reset_after_data``: the message (with its final dot) goes to the sink, the sink's ``250``
  does not come back: the worker's connection is reset instead;
- ``quit_fails``: the ``250`` comes back, then ``QUIT`` is answered ``421`` and the connection
  closed.
"""

from __future__ import annotations

import socket
import struct
import threading
from typing import BinaryIO, Literal

Mode = Literal["reset_after_data", "quit_fails"]


def _reply(f: BinaryIO) -> bytes:
    """One SMTP reply, all its lines (``250-...`` continue, ``250 ...`` ends)."""
    lines = b""
    while True:
        line = f.readline()
        if not line:
            raise ConnectionError("upstream closed")
        lines += line
        if len(line) < 4 or line[3:4] != b"-":
            return lines


class SmtpFaultProxy:
    """``with SmtpFaultProxy(host, port, mode="quit_fails", first=1) as relay: relay.port``."""

    def __init__(self, upstream_host: str, upstream_port: int, mode: Mode, first: int = 1, port: int = 0) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.mode = mode
        self.first = first
        self.conversations = 0
        self.faults = 0
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", port))
        self._sock.listen(16)
        self.host, self.port = self._sock.getsockname()[:2]

    def __enter__(self) -> SmtpFaultProxy:
        threading.Thread(target=self._serve, daemon=True, name="smtp-fault-proxy").start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._sock.close()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with self._lock:
                self.conversations += 1
                rude = self.conversations <= self.first
            threading.Thread(target=self._session, args=(conn, rude), daemon=True).start()

    def _session(self, client: socket.socket, rude: bool) -> None:
        up = socket.create_connection(self.upstream, timeout=30)
        cf, uf = client.makefile("rb"), up.makefile("rb")
        try:
            client.sendall(_reply(uf))  # the greeting
            while True:
                line = cf.readline()
                if not line:
                    return
                verb = line[:4].upper()
                if verb == b"QUIT" and rude and self.mode == "quit_fails":
                    self._count()
                    client.sendall(b"421 4.3.0 relay shutting down\r\n")
                    return
                up.sendall(line)
                reply = _reply(uf)
                if verb == b"DATA" and reply.startswith(b"354"):
                    client.sendall(reply)
                    while True:
                        chunk = cf.readline()
                        if not chunk:
                            return
                        up.sendall(chunk)
                        if chunk == b".\r\n":
                            break
                    reply = _reply(uf)  # the sink has the message now
                    if rude and self.mode == "reset_after_data":
                        self._count()
                        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                        return
                client.sendall(reply)
                if verb == b"QUIT":
                    return
        except OSError:
            return
        finally:
            for f in (cf, uf):
                f.close()
            client.close()
            up.close()

    def _count(self) -> None:
        with self._lock:
            self.faults += 1
