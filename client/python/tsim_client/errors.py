"""Exceptions raised by the tsim-helper clients."""


class TsimError(Exception):
    """Base class of every error of this package."""


class HelperError(TsimError):
    """The helper refused or failed an operation; each error code has its subclass
    (:class:`NotFound`, :class:`Conflict`, :class:`PermissionDenied`, ...: see ``BY_CODE``).

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


class BadRequest(HelperError):
    """The request could not be decoded (``bad_request``)."""


class InvalidArgument(HelperError):
    """An argument is invalid; the message names it (``invalid_argument``)."""


class NotFound(HelperError):
    """The named object does not exist (``not_found``)."""


class AlreadyExists(HelperError):
    """The named object exists already (``already_exists``)."""


class Conflict(HelperError):
    """The request contradicts what exists, e.g. a host's name with another address
    (``conflict``)."""


class NotManaged(HelperError):
    """The namespace exists but is not the helper's; it is left alone (``not_managed``)."""


class NotAllowed(HelperError):
    """Refused by policy, e.g. a sysctl outside the allow-list (``not_allowed``)."""


class Unsupported(HelperError):
    """A program or kernel feature the operation needs is missing (``unsupported``)."""


class PermissionDenied(HelperError):
    """The caller may not act on the object (``permission_denied``)."""


class QuotaExceeded(HelperError):
    """The caller's quota would be exceeded (``quota_exceeded``)."""


class Busy(HelperError):
    """The object is in the middle of another request's change; try again (``busy``)."""


class Cancelled(HelperError):
    """The request was cancelled, and undone if atomic (``cancelled``)."""


class HelperTimeout(HelperError):
    """Something did not finish in time on the helper's side, e.g. a request past
    ``--max-request-secs`` (``timeout``). Not :class:`Timeout`, which is this client giving up
    waiting."""


class KernelError(HelperError):
    """The kernel or a tool failed in a way that is not the caller's fault (``kernel``)."""


class InternalError(HelperError):
    """A bug in the helper; it is logged there (``internal``)."""


#: The exception class for each error code of the protocol (``ErrorCode`` in
#: protocol/src/error.rs; ``tests/tests/parity.rs`` checks that every code is here).
BY_CODE = {
    "bad_request": BadRequest,
    "invalid_argument": InvalidArgument,
    "not_found": NotFound,
    "already_exists": AlreadyExists,
    "conflict": Conflict,
    "not_managed": NotManaged,
    "not_allowed": NotAllowed,
    "unsupported": Unsupported,
    "permission_denied": PermissionDenied,
    "quota_exceeded": QuotaExceeded,
    "busy": Busy,
    "cancelled": Cancelled,
    "timeout": HelperTimeout,
    "kernel": KernelError,
    "internal": InternalError,
    "unsupported_version": ProtocolVersionError,
}


class ConnectionLost(TsimError):
    """The connection to the helper failed or closed (the helper may be restarting)."""


class Timeout(TsimError):
    """The helper did not answer in time (the request was cancelled)."""


def from_wire(error, results=None):
    """The exception for an error map of the protocol."""
    code = error.get("code", "internal")
    # A code from a newer helper is still a HelperError.
    cls = BY_CODE.get(code, HelperError)
    return cls(code, error.get("message", ""), error.get("op_index"), results)
