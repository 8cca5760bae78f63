"""dtrain.distributed's errors: one hierarchy under DistError; catch at the depth you want."""


class DistError(RuntimeError):
    """Something went wrong in distributed communication: the base of every error below, and a
    RuntimeError, as torch's. The rendezvous of init_process_group raises it as is (MASTER_ADDR
    does not resolve, two processes claim one rank, world sizes differ).

    >>> try: dist.all_reduce(t)
    ... except dist.DistError as e: print(f"rank {rank}: {e}")   # any of the errors below
    """


class DistTimeoutError(DistError, TimeoutError):
    """An operation did not complete before its deadline; the message names who is missing.

    Raised by collectives and receives at the group's timeout, by ``Work.wait(timeout)``, by
    ``monitored_barrier`` and by the rendezvous. It is a TimeoutError too.

    >>> req = dist.irecv(t, src=1)
    >>> try: req.wait(timeout=5)
    ... except dist.DistTimeoutError as e: print(e)   # "... did not complete within 5.0 s"
    """


class DistPeerError(DistError):
    """Another rank failed, exited or aborted; the message names it.

    Raised by every operation that needs that rank, once it is gone (its connection closed, it
    went silent for DTRAIN_PEER_TIMEOUT, or it left with destroy_process_group).

    >>> try: dist.all_reduce(t)
    ... except dist.DistPeerError as e: print(e)   # "... cannot complete: rank 1 is gone: ..."
    """


class DistMismatchError(DistError):
    """Ranks made different calls (kind, op, dtype, shape or root) at the same point.

    Raised on the ranks of the collective instead of a hang or a wrong result; ``recv`` raises
    it too when the buffer's shape or dtype differs from the tensor sent.

    >>> t = dtrain.ones(2 if rank == 0 else 3)   # shapes differ across ranks
    >>> try: dist.all_reduce(t)
    ... except dist.DistMismatchError as e: print(e)   # names both ranks' calls
    """


class DistStoreError(DistError):
    """The rendezvous store could not be reached or refused a request (a wrong job token, a
    closed client). Raised by TCPStore and so by init_process_group.

    >>> try: store = dist.TCPStore("127.0.0.1", 29500, timeout=timedelta(seconds=5))
    ... except dist.DistStoreError as e: print(e)   # "could not reach the rendezvous store ..."
    """


class DistStoreTimeoutError(DistStoreError, DistTimeoutError):
    """A store wait passed its deadline: catch it as DistStoreError (torch) or DistTimeoutError.

    Raised by TCPStore's ``get``, ``wait`` and ``multi_get`` when a key is not set in time, and
    by a master store whose workers did not all join.

    >>> try: store.wait(["ready"], timedelta(seconds=1))
    ... except dist.DistStoreTimeoutError as e: print(e)   # "... still missing: 'ready'. ..."
    """


class DistBackendError(DistError):
    """The transport failed (for example, a socket could not be bound).

    init_process_group raises it when this rank cannot open its data socket or map a peer's
    shared memory; a collective raises it when its algorithm fails unexpectedly.

    >>> try: dist.init_process_group("gloo")
    ... except dist.DistBackendError as e: print(e)   # "rank 0 could not open its data socket ..."
    """
