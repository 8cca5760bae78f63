"""Work: the handle of a communication in flight, as torch's ``dist.Work``."""
import threading
import time
from datetime import timedelta

from .errors import DistTimeoutError


def seconds(timeout):
    """A timeout given as timedelta or number of seconds, in seconds (None stays None)."""
    if timeout is None:
        return None
    return timeout.total_seconds() if isinstance(timeout, timedelta) else float(timeout)


class Work:
    """Returned by ``isend``/``irecv`` and by collectives called with ``async_op=True``.

    >>> req = dist.isend(tensor, dst=1)
    >>> req.wait()
    True
    """

    _watch = None  # a debug.OpWatch while the DETAIL log or the timeline is on
    _receives = None  # p2p.Receives, for a receive that its caller can take from a ring
    _peer = None      # with it: the rank received from (None: any rank)

    def __init__(self, description, deadline):
        self.description = description
        self.deadline = deadline  # time.monotonic() by which the engine fails it
        self._done = threading.Event()
        self._error = None
        self._source = None
        self._trackers = []  # ZeroMQ trackers of zero-copy sends still reading our buffer
        self._after = []     # callables run once after success, by whoever sees it first
        self._after_lock = threading.Lock()

    # --- engine side --------------------------------------------------------------------------
    def _finish(self, error=None, source=None):
        if self._done.is_set():
            return
        if self._watch is not None:
            self._watch.done(error, source)  # before the waiter wakes: the span ends first
        self._error, self._source = error, source
        self._done.set()

    # --- user side ----------------------------------------------------------------------------
    def wait(self, timeout=None):
        """Block until the operation is complete (for sends: until the buffer may be reused).
        Raises the operation's error, or DistTimeoutError after ``timeout``."""
        limit = seconds(timeout)
        if limit is None:
            # the engine fails the work at its deadline; the slack only guards a dead engine
            limit = max(self.deadline - time.monotonic(), 0) + 5.0
        end = time.monotonic() + limit
        if self._receives is not None:
            self._receives.wait(self, end)
        if not self._done.wait(max(end - time.monotonic(), 0)):
            raise DistTimeoutError(f"{self.description} did not complete within {limit:.1f} s")
        if self._error is not None:
            raise self._error
        for tracker in self._trackers:
            while not _tracker_wait(tracker, min(end - time.monotonic(), _SLICE)):
                if self._error is not None:  # abandoned: the peer is gone
                    raise self._error
                if time.monotonic() >= end:
                    raise DistTimeoutError(f"{self.description}: the data was not handed to "
                                           f"the network within {limit:.1f} s")
        self._run_after()
        return True

    def _abandon(self, error):
        """The peer that zero-copy sends of this work were going to is gone: what waits for
        them raises ``error`` (the engine thread calls this)."""
        if not all(t.done for t in self._trackers):
            self._error = error

    def _run_after(self):
        # NOTE: in the caller's thread, after the zero-copy sends are done (an AVG's divide or a
        # copy back must not change a buffer ZeroMQ may still be reading)
        with self._after_lock:
            while self._after:
                self._after.pop(0)()

    def is_completed(self):
        """True once the operation is done and its results are in place."""
        if self._receives is not None and not self._done.is_set():
            self._receives.poll(self)
        if not (self._done.is_set() and all(t.done for t in self._trackers)):
            return False
        if self._error is None:
            self._run_after()
        return True

    def is_success(self):
        return self.is_completed() and self._error is None

    def exception(self):
        """The error the operation failed with, or None."""
        return self._error

    def source_rank(self):
        """The rank a completed receive came from."""
        if not self._done.is_set():
            raise RuntimeError("source_rank() is only available once the receive completed; "
                               "call wait() first")
        if self._source is None:
            raise RuntimeError("source_rank() is only available for receives")
        return self._source

    def __repr__(self):
        state = "done" if self._done.is_set() else "pending"
        return f"<Work {self.description}: {state}>"


_SLICE = 0.05  # s: how often a wait for zero-copy sends checks whether they were abandoned


def _tracker_wait(tracker, timeout):
    if timeout <= 0:
        return tracker.done
    try:
        tracker.wait(timeout)
        return True
    except Exception:  # zmq.NotDone on timeout
        return tracker.done


class CompletedWork(Work):
    """A Work that is already done (for operations with nothing to communicate): ``wait()``
    returns True at once.

    >>> work = dist.CompletedWork()
    >>> work.is_completed(), work.wait()
    (True, True)
    """

    def __init__(self, description="no-op", source=None):
        super().__init__(description, time.monotonic())
        self._finish(source=source)
