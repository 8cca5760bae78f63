"""dtrain.distributed's errors: one hierarchy under DistError; catch at the depth you want."""


class DistError(RuntimeError):
    """Something went wrong in distributed communication."""


class DistTimeoutError(DistError, TimeoutError):
    """An operation did not complete before its deadline; the message names who is missing."""


class DistPeerError(DistError):
    """Another rank failed, exited or aborted; the message names it."""


class DistMismatchError(DistError):
    """Ranks made different calls (kind, op, dtype, shape or root) at the same point."""


class DistStoreError(DistError):
    """The rendezvous store could not be reached or refused a request."""


class DistStoreTimeoutError(DistStoreError, DistTimeoutError):
    """A store wait passed its deadline: catch it as DistStoreError (torch) or DistTimeoutError."""


class DistBackendError(DistError):
    """The transport failed (for example, a socket could not be bound)."""
