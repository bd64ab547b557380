"""The asyncio client: one connection, any number of concurrent calls (pipelined, matched
to their answers by id)."""

import asyncio

from . import _wire
from ._ops import Operations
from .client import socket_path
from .errors import ConnectionLost, Timeout, TsimError, from_wire


class AsyncClient(Operations):
    """An asyncio client of tsim-helper; create it with ``await AsyncClient.connect(...)``.

    The operation methods are coroutines. Timeouts, errors and reconnection behave as in
    :class:`tsim_client.Client`.
    """

    def __init__(self, path, name, timeout, reconnect):
        self.path = path
        self.name = name
        self.timeout = timeout
        self.reconnect = reconnect
        self.welcome = None
        self._reader = self._writer = self._task = None
        self._pending = {}
        self._next_id = 0
        self._lock = asyncio.Lock()

    @classmethod
    async def connect(cls, path=None, name="tsim_client/0.1.0", timeout=30.0, reconnect=True):
        """Connects and does the handshake."""
        client = cls(socket_path(path), name, timeout, reconnect)
        await asyncio.wait_for(client._open(), timeout)
        return client

    async def _open(self):
        try:
            reader, writer = await asyncio.open_unix_connection(self.path)
        except OSError as e:
            raise ConnectionLost(f"cannot connect to {self.path}: {e}") from e
        writer.write(_wire.encode(_wire.hello(self.name)))
        await writer.drain()
        welcome = await self._read_frame(reader, _wire.HANDSHAKE_MAX_FRAME)
        if welcome["type"] == "error":
            writer.close()
            raise from_wire(welcome)
        self.welcome = welcome
        self._reader, self._writer = reader, writer
        self._pending = {}
        self._task = asyncio.ensure_future(self._read_loop(reader))

    @staticmethod
    async def _read_frame(reader, max_frame):
        try:
            header = await reader.readexactly(4)
            (length,) = _wire.HEADER.unpack(header)
            if length > max_frame:
                raise ConnectionLost(f"a frame of {length} bytes is over the limit")
            return _wire.decode(await reader.readexactly(length))
        except asyncio.IncompleteReadError as e:
            raise ConnectionLost("the helper closed the connection") from e

    async def _read_loop(self, reader):
        max_frame = self.welcome.get("limits", {}).get("max_frame", 16 << 20)
        error = ConnectionLost("the helper closed the connection")
        pending = self._pending
        try:
            while True:
                msg = await self._read_frame(reader, max_frame)
                if msg["type"] == "response":
                    future = pending.pop(msg.get("id"), None)
                    if future is not None and not future.done():
                        future.set_result(msg)
                elif msg["type"] == "error":
                    error = from_wire(msg)
                    break
        except (OSError, ValueError, TsimError) as e:
            error = e if isinstance(e, TsimError) else ConnectionLost(str(e))
        for future in pending.values():
            if not future.done():
                future.set_exception(error)
        pending.clear()

    def _alive(self):
        return self._task is not None and not self._task.done()

    async def close(self):
        """Closes the connection."""
        if self._writer is not None:
            self._writer.close()
        if self._task is not None:
            self._task.cancel()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()

    async def call(self, ops, atomic=False, timeout=None):
        """As :meth:`tsim_client.Client.call`."""
        timeout = self.timeout if timeout is None else timeout
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        retry = self.reconnect and all(op.get("op") in _wire.IDEMPOTENT for op in ops)
        while True:
            async with self._lock:
                while not self._alive():
                    try:
                        await asyncio.wait_for(self._open(), max(0.1, deadline - loop.time()))
                    except (ConnectionLost, asyncio.TimeoutError):
                        if loop.time() >= deadline:
                            raise ConnectionLost(f"cannot reconnect to {self.path}") from None
                        await asyncio.sleep(0.05)
                self._next_id += 1
                request_id = self._next_id
                future = loop.create_future()
                self._pending[request_id] = future
                message = {"type": "request", "id": request_id, "ops": list(ops),
                           "atomic": bool(atomic), "progress": False}
                try:
                    self._writer.write(_wire.encode(message))
                    await self._writer.drain()
                except OSError as e:
                    self._pending.pop(request_id, None)
                    future.set_exception(ConnectionLost(f"cannot send to the helper: {e}"))
            try:
                response = await asyncio.wait_for(future, max(0.0, deadline - loop.time()))
            except asyncio.TimeoutError:
                self._pending.pop(request_id, None)
                try:
                    self._writer.write(_wire.encode({"type": "cancel", "id": request_id}))
                except OSError:
                    pass
                raise Timeout(f"no answer from the helper in time (request {request_id})") from None
            except ConnectionLost:
                if not retry or loop.time() >= deadline:
                    raise
                retry = False
                continue
            results = response.get("results", [])
            if response.get("error"):
                raise from_wire(response["error"], results)
            return results

    async def _call_one(self, op):
        result = dict((await self.call([op]))[0])
        result.pop("op", None)
        return result

    def _one(self, op):
        return self._call_one(op)
