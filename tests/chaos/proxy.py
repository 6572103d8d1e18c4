"""A tiny TCP proxy for network-partition tests: the fleet talks to a service through it, and the
test cuts and restores the path without touching the (shared) service itself.

`cut()` closes every open connection (both sides, like a reset) and stops listening, so new
connections are refused; `restore()` listens again on the same port. Plain threads: one accept
loop, two pumps per connection.
"""
from __future__ import annotations

import contextlib
import socket
import threading


class TcpProxy:
    def __init__(self, target_host: str, target_port: int, listen_host: str = "127.0.0.1", port: int = 0):
        self.target = (target_host, target_port)
        self.host = listen_host
        self.port = port
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._accepting: threading.Thread | None = None
        self.connections_made = 0

    # -- control --------------------------------------------------------------------------------

    def start(self) -> TcpProxy:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.port))
        listener.listen(128)
        self.port = listener.getsockname()[1]  # keep the port for restore()
        self._listener = listener
        self._accepting = threading.Thread(target=self._accept_loop, args=(listener,), name="proxy-accept",
                                           daemon=True)
        self._accepting.start()
        return self

    @property
    def is_cut(self) -> bool:
        return self._listener is None

    def cut(self) -> None:
        """Drop every connection and refuse new ones until `restore()`."""
        listener, self._listener = self._listener, None
        if listener is not None:
            _close(listener, shutdown=True)  # unblocks accept()
        if self._accepting is not None:
            self._accepting.join(2)
            self._accepting = None
        with self._lock:
            conns, self._conns = self._conns, set()
        for conn in conns:
            _close(conn, shutdown=True)

    def restore(self) -> None:
        if self._listener is None:
            self.start()

    def close(self) -> None:
        self.cut()

    def __enter__(self) -> TcpProxy:
        return self.start() if self._listener is None else self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- plumbing -------------------------------------------------------------------------------

    def _accept_loop(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed by cut()
            if listener is not self._listener:
                _close(client)
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                _close(client)
                continue
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._conns.update((client, upstream))
                self.connections_made += 1
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), name="proxy-pump", daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            # One side ended: end the other too, and forget both.
            for sock in (src, dst):
                _close(sock, shutdown=True)
            with self._lock:
                self._conns.discard(src)
                self._conns.discard(dst)


def _close(sock: socket.socket, shutdown: bool = False) -> None:
    if shutdown:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
