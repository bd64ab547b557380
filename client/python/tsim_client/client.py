"""The blocking client: one connection, safe to share between threads (requests from
several threads are pipelined on it and matched to their answers by id)."""

from __future__ import annotations

import os
import select
import socket
import threading
import time
from typing import Any, Mapping, Optional, Sequence

from . import _wire
from ._ops import Operations
from .errors import ConnectionLost, Timeout, TsimError, from_wire

DEFAULT_SOCKET = "/run/tsim/helper.sock"


def socket_path(explicit: Optional[str] = None) -> str:
    """``explicit``, else ``$TSIM_SOCKET``, else the default socket."""
    return explicit or os.environ.get("TSIM_SOCKET") or DEFAULT_SOCKET


def _read_exact(sock, n):
    chunks = []
    while n:
        chunk = sock.recv(n)
        if not chunk:
            raise ConnectionLost("the helper closed the connection")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _read_frame(sock, max_frame):
    (length,) = _wire.HEADER.unpack(_read_exact(sock, 4))
    if length > max_frame:
        raise ConnectionLost(f"a frame of {length} bytes, more than the limit {max_frame}")
    return _wire.decode(_read_exact(sock, length))


class _NothingYet(Exception):
    """No frame started arriving before the deadline."""


#: How long a started frame may take to arrive whole, and a send to be taken.
_IO_TIMEOUT = 30.0


def _read_frame_until(sock, max_frame, deadline):
    """The next frame, or ``_NothingYet`` if none starts before ``deadline``. Once a frame has
    started it is read whole (a frame cut in the middle would leave the stream unusable).

    The wait is a ``select``, not a socket timeout: the socket's timeout is shared with the
    threads sending on it, and must stay the same for them."""
    readable, _, _ = select.select([sock], [], [], max(0.0, deadline - time.monotonic()))
    if not readable:
        raise _NothingYet()
    first = sock.recv(4)
    if not first:
        raise ConnectionLost("the helper closed the connection")
    header = first + (_read_exact(sock, 4 - len(first)) if len(first) < 4 else b"")
    (length,) = _wire.HEADER.unpack(header)
    if length > max_frame:
        raise ConnectionLost(f"a frame of {length} bytes, more than the limit {max_frame}")
    return _wire.decode(_read_exact(sock, length))


class _Connection:
    """One connected, welcomed socket.

    There is no reader thread: a caller waiting for its answer becomes the reader (the
    leader) if nobody else is reading, and hands over the answers it reads for others; so a
    lone caller pays no thread switch, and many callers share one connection."""

    def __init__(self, path, name, timeout):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.sock.settimeout(timeout)
            self.sock.connect(path)
            self.sock.sendall(_wire.encode(_wire.hello(name)))
            welcome = _read_frame(self.sock, _wire.HANDSHAKE_MAX_FRAME)
        except OSError as e:
            self.sock.close()
            raise ConnectionLost(f"cannot connect to {path}: {e}") from e
        except TsimError:
            self.sock.close()
            raise
        if welcome["type"] == "error":
            self.sock.close()
            raise from_wire(welcome)
        if welcome["type"] != "welcome":
            self.sock.close()
            raise ConnectionLost(f"expected welcome, got {welcome['type']}")
        self.welcome = welcome
        self.max_frame = welcome.get("limits", {}).get("max_frame", 16 << 20)
        self.sock.settimeout(_IO_TIMEOUT)
        self.send_lock = threading.Lock()
        self.cond = threading.Condition()
        self.waiting = set()
        self.answers = {}
        self.leader = False
        self.alive = True
        self.error = None

    def submit(self, request_id, message):
        with self.cond:
            if not self.alive:
                raise self.error or ConnectionLost("the connection to the helper is closed")
            self.waiting.add(request_id)
        try:
            with self.send_lock:
                self.sock.sendall(_wire.encode(message))
        except OSError as e:
            self._fail(ConnectionLost(f"cannot send to the helper: {e}"))
            raise self.error from e

    def _fail(self, error):
        with self.cond:
            if self.alive:
                self.alive = False
                self.error = error
            self.leader = False
            self.cond.notify_all()
        try:
            self.sock.close()
        except OSError:
            pass

    def wait(self, request_id, deadline):
        """The response to ``request_id``; raises :class:`Timeout` after ``deadline``."""
        with self.cond:
            while True:
                if request_id in self.answers:
                    self.waiting.discard(request_id)
                    return self.answers.pop(request_id)
                if not self.alive:
                    self.waiting.discard(request_id)
                    raise self.error
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self.waiting.discard(request_id)
                    raise Timeout(f"no answer from the helper in time (request {request_id})")
                if not self.leader:
                    self.leader = True
                    break
                self.cond.wait(remaining)
        # The leader reads, outside the lock, until its own answer comes.
        try:
            while True:
                try:
                    msg = _read_frame_until(self.sock, self.max_frame, deadline)
                except _NothingYet:
                    with self.cond:
                        self.leader = False
                        self.waiting.discard(request_id)
                        self.cond.notify_all()
                    raise Timeout(f"no answer from the helper in time (request {request_id})") from None
                with self.cond:
                    if msg["type"] == "response":
                        answer_id = msg.get("id")
                        if answer_id == request_id:
                            self.waiting.discard(request_id)
                            self.leader = False
                            self.cond.notify_all()
                            return msg
                        if answer_id in self.waiting:
                            self.answers[answer_id] = msg
                            self.cond.notify_all()
                    elif msg["type"] == "error":
                        raise from_wire(msg)
        except Timeout:
            raise
        except (OSError, ValueError, TsimError) as e:
            error = e if isinstance(e, TsimError) else ConnectionLost(f"connection to the helper failed: {e}")
            self._fail(error)
            raise error from None

    def closed_by_peer(self):
        """Whether the helper closed this idle connection (it closes idle ones after its
        ``--idle-timeout``): with nothing outstanding, anything readable is its goodbye."""
        with self.cond:
            if not self.alive:
                return True
            if self.waiting or self.leader:
                return False
            try:
                readable, _, _ = select.select([self.sock], [], [], 0)
            except (OSError, ValueError):
                readable = [self.sock]
        if readable:
            self._fail(ConnectionLost("the helper closed the idle connection"))
            return True
        return False

    def forget(self, request_id):
        with self.cond:
            self.waiting.discard(request_id)

    def send_quietly(self, message):
        try:
            with self.send_lock:
                self.sock.sendall(_wire.encode(message))
        except OSError:
            pass

    def close(self):
        self._fail(ConnectionLost("the client closed the connection"))


class Client(Operations):
    """A blocking client of tsim-helper.

    ``timeout`` (seconds) bounds every call; a call that times out is cancelled at the helper
    and raises :class:`~tsim_client.errors.Timeout`. When the connection is lost (the helper
    restarted), calls whose operations change nothing are sent again on a new connection;
    the others raise :class:`~tsim_client.errors.ConnectionLost`, since they may have run.
    """

    def __init__(
        self,
        path: Optional[str] = None,
        name: str = "tsim_client/0.1.0",
        timeout: float = 30.0,
        reconnect: bool = True,
    ) -> None:
        self.path = socket_path(path)
        self.name = name
        self.timeout = timeout
        self.reconnect = reconnect
        self._lock = threading.Lock()
        self._next_id = 0
        self._conn = _Connection(self.path, name, timeout)

    @property
    def welcome(self) -> dict:
        """The helper's ``welcome``: its version, limits, and what it knows of us."""
        return self._conn.welcome

    def close(self) -> None:
        """Closes the connection."""
        self._conn.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _connection(self, deadline):
        with self._lock:
            conn = self._conn
            if conn.alive and not conn.closed_by_peer():
                return conn
            # Reconnect, waiting for a restarting helper until the deadline.
            while True:
                try:
                    self._conn = _Connection(self.path, self.name, max(0.1, deadline - time.monotonic()))
                    return self._conn
                except ConnectionLost:
                    if time.monotonic() >= deadline:
                        raise
                    time.sleep(0.05)

    def _ids(self):
        with self._lock:
            self._next_id += 1
            return self._next_id

    def call(
        self,
        ops: Sequence[Mapping[str, Any]],
        atomic: bool = False,
        timeout: Optional[float] = None,
    ) -> list:
        """Sends ``ops`` (a list of operation maps, each with an ``"op"`` key) as one request
        and returns their results. With ``atomic``, a failure undoes the earlier operations.
        Raises :class:`~tsim_client.errors.HelperError` with the failing operation's index."""
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        retry = self.reconnect and all(op.get("op") in _wire.IDEMPOTENT for op in ops)
        while True:
            conn = self._connection(deadline)
            try:
                return self._call_on(conn, ops, atomic, deadline)
            except ConnectionLost:
                if not retry or time.monotonic() >= deadline:
                    raise
                retry = False

    def _call_on(self, conn, ops, atomic, deadline):
        request_id = self._ids()
        message = {"type": "request", "id": request_id, "ops": list(ops),
                   "atomic": bool(atomic), "progress": False}
        conn.submit(request_id, message)
        try:
            response = conn.wait(request_id, deadline)
        except Timeout:
            conn.send_quietly({"type": "cancel", "id": request_id})
            raise
        results = response.get("results", [])
        if response.get("error"):
            raise from_wire(response["error"], results)
        return results

    def _one(self, op):
        result = dict(self.call([op])[0])
        result.pop("op", None)
        return result
