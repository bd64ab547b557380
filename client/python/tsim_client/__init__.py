"""Python client of tsim-helper, the privileged helper of the traceroute simulator.

``Client`` is blocking and safe to share between threads; ``AsyncClient`` is for asyncio.
Both speak the helper's protocol (protocol/PROTOCOL.md) over its Unix socket and raise
``HelperError`` (with ``code``, ``message`` and ``op_index``) when an operation fails, as the
subclass for its code (``NotFound``, ``Conflict``, ``PermissionDenied``, ...).
"""

from .aio import AsyncClient
from .client import DEFAULT_SOCKET, Client, socket_path
from .errors import (
    AlreadyExists,
    BadRequest,
    Busy,
    Cancelled,
    Conflict,
    ConnectionLost,
    HelperError,
    HelperTimeout,
    InternalError,
    InvalidArgument,
    KernelError,
    NotAllowed,
    NotFound,
    NotManaged,
    PermissionDenied,
    ProtocolVersionError,
    QuotaExceeded,
    Timeout,
    TsimError,
    Unsupported,
)

__all__ = [
    "AlreadyExists",
    "AsyncClient",
    "BadRequest",
    "Busy",
    "Cancelled",
    "Client",
    "Conflict",
    "ConnectionLost",
    "DEFAULT_SOCKET",
    "HelperError",
    "HelperTimeout",
    "InternalError",
    "InvalidArgument",
    "KernelError",
    "NotAllowed",
    "NotFound",
    "NotManaged",
    "PermissionDenied",
    "ProtocolVersionError",
    "QuotaExceeded",
    "Timeout",
    "TsimError",
    "Unsupported",
    "socket_path",
]
__version__ = "0.1.0"
