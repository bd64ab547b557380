"""Exceptions raised by the tsim-helper clients."""


class TsimError(Exception):
    """Base class of every error of this package."""


class HelperError(TsimError):
    """The helper refused or failed an operation.

    ``code`` is the protocol's stable error code (``not_found``, ``already_exists``,
    ``invalid_argument``…), ``message`` its explanation, ``op_index`` the index of the
    failing operation in the request (``None`` for the request as a whole), and ``results``
    the results of the operations before it (for requests that were not atomic).
    """

    def __init__(self, code, message, op_index=None, results=None):
        super().__init__(f"{code}: {message}" + (f" (op {op_index})" if op_index is not None else ""))
        self.code = code
        self.message = message
        self.op_index = op_index
        self.results = results or []


class ProtocolVersionError(HelperError):
    """The helper does not speak this client's protocol version (``unsupported_version``)."""


class ConnectionLost(TsimError):
    """The connection to the helper failed or closed (the helper may be restarting)."""


class Timeout(TsimError):
    """The helper did not answer in time (the request was cancelled)."""


def from_wire(error, results=None):
    """The exception for an error map of the protocol."""
    code = error.get("code", "internal")
    cls = ProtocolVersionError if code == "unsupported_version" else HelperError
    return cls(code, error.get("message", ""), error.get("op_index"), results)
