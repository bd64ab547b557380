"""Python client of tsim-helper, the privileged helper of the traceroute simulator.

``Client`` is blocking and safe to share between threads; ``AsyncClient`` is for asyncio.
Both speak the helper's protocol (protocol/PROTOCOL.md) over its Unix socket and raise
``HelperError`` (with ``code``, ``message`` and ``op_index``) when an operation fails.
"""

from .aio import AsyncClient
from .client import DEFAULT_SOCKET, Client, socket_path
from .errors import ConnectionLost, HelperError, ProtocolVersionError, Timeout, TsimError

__all__ = [
    "AsyncClient",
    "Client",
    "ConnectionLost",
    "DEFAULT_SOCKET",
    "HelperError",
    "ProtocolVersionError",
    "Timeout",
    "TsimError",
    "socket_path",
]
__version__ = "0.1.0"
