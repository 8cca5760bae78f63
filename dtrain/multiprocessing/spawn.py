"""spawn and start_processes: run fn(i, *args) in N processes and report the first failure.

As torch/multiprocessing/spawn.py, except that fn and args travel with cloudpickle (see the
package docstring). Each child runs ``_child_main``, which catches fn's exception and sends its
traceback back through a pipe; the parent waits on the children's sentinels and those pipes.
"""
import contextlib
import ctypes
import io
import multiprocessing
import multiprocessing.connection
import os
import pickle
import signal
import sys
import threading
import time
import traceback
import types
import warnings
from collections import ChainMap
from multiprocessing.reduction import ForkingPickler

import cloudpickle

__all__ = ["ProcessContext", "ProcessException", "ProcessExitedException",
           "ProcessRaisedException", "spawn", "start_processes"]

# After SIGTERM, how long the other children get before SIGKILL when no grace_period is given
# (torch waits 30 s)
TERMINATE_TIMEOUT = 5.0

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


class ProcessException(Exception):
    """A process started by spawn failed; ``error_index`` and ``error_pid`` say which.

    >>> try:  # doctest: +SKIP
    ...     mp.spawn(train, nprocs=2)
    ... except mp.ProcessException as e:
    ...     print(f"process {e.error_index} (pid {e.error_pid}) failed")
    """

    __slots__ = ["error_index", "error_pid"]

    def __init__(self, msg, error_index, error_pid):
        super().__init__(msg)
        self.msg = msg
        self.error_index = error_index
        self.error_pid = error_pid

    def __reduce__(self):
        return type(self), (self.msg, self.error_index, self.error_pid)


class ProcessRaisedException(ProcessException):
    """A process failed because ``fn`` raised; the message holds the child's traceback.

    >>> mp.spawn(lambda i: 1 / 0, nprocs=2)  # raises it, with the traceback  # doctest: +SKIP
    """


class ProcessExitedException(ProcessException):
    """A process exited non-zero or was killed by a signal without raising a Python exception.
    ``exit_code`` is negative for a signal, whose name is in ``signal_name``.

    >>> mp.spawn(lambda i: os._exit(3), nprocs=2)  # raises it, exit_code 3  # doctest: +SKIP
    """

    __slots__ = ["exit_code"]

    def __init__(self, msg, error_index, error_pid, exit_code, signal_name=None):
        super().__init__(msg, error_index, error_pid)
        self.exit_code = exit_code
        self.signal_name = signal_name

    def __reduce__(self):
        return (type(self),
                (self.msg, self.error_index, self.error_pid, self.exit_code, self.signal_name))


class _ParentTerminated(BaseException):
    """SIGTERM reached the parent while it was joining its children."""

    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum


class _CloudForkingPickler(cloudpickle.Pickler):
    # cloudpickle first, then multiprocessing's reducers for what it cannot handle (Pipe ends,
    # sockets), which only work while multiprocessing is starting a child
    dispatch_table = ChainMap(cloudpickle.Pickler.dispatch_table, ForkingPickler._extra_reducers)


class _Payload:
    """``fn`` and ``args`` on their way to a child.

    They are cloudpickled while multiprocessing starts each child, not before: Queue, Lock and
    Pipe ends refuse to be pickled at any other time. The child unpickles them inside
    ``_child_main``, so that an import error there reaches the parent with its traceback.
    """

    def __init__(self, fn, args, data=None, filename=None):
        self.fn, self.args, self.data = fn, args, data
        self.filename = filename

    def __reduce__(self):
        buffer = io.BytesIO()
        try:
            _CloudForkingPickler(buffer).dump((self.fn, self.args))
        except Exception as exc:
            raise pickle.PicklingError(
                f"spawn could not send fn={self.fn!r} and its args to the child processes with "
                f"cloudpickle: {str(exc).rstrip('.')}. Create objects that hold threads, open "
                f"files or sockets inside fn, and take multiprocessing objects (Queue, Lock, "
                f"Event) from mp.get_context('spawn')."
            ) from exc
        code = getattr(self.fn, "__code__", None)
        return _Payload, (None, None, buffer.getvalue(), code and code.co_filename)

    def load(self):
        if self.data is None:  # the fork start method copies the object without pickling it
            return self.fn, self.args
        fn, args = cloudpickle.loads(self.data)
        if self.filename and hasattr(fn, "__code__"):
            # NOTE: cloudpickle >= 3.1 renames the file of functions it pickles by value to
            # "<dynamic-code>", so the child's traceback would lose its source lines
            fn.__code__ = _with_filename(fn.__code__, self.filename)
        return fn, args


def _with_filename(code, filename):
    """``code`` (and the code nested in it) pointing at ``filename`` where cloudpickle erased it."""
    if code.co_filename != "<dynamic-code>":
        return code
    consts = tuple(_with_filename(c, filename) if isinstance(c, types.CodeType) else c
                   for c in code.co_consts)
    return code.replace(co_filename=filename, co_consts=consts)


def _exit_with_parent():
    # Linux only: SIGINT this child when its parent dies, even by SIGKILL, as torch does
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, int(signal.SIGINT))


def _child_main(payload, index, error_writer):
    """What each child runs: ``fn(index, *args)``; a traceback goes back through the pipe."""
    _exit_with_parent()
    try:
        fn, args = payload.load()
        fn(index, *args)
    except KeyboardInterrupt:
        pass  # SIGINT: Ctrl-C or the parent died; exit quietly, as torch does
    except Exception:
        error_writer.send_bytes(traceback.format_exc().encode("utf-8"))
        sys.exit(1)
    finally:
        error_writer.close()


@contextlib.contextmanager
def _sigterm_raises():
    # SIGTERM would kill the parent on the spot and leave its children running: while joining,
    # turn it into an exception so that join can stop them first
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL):
        yield
        return

    def raise_terminated(signum, frame):
        raise _ParentTerminated(signum)

    signal.signal(signal.SIGTERM, raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


class ProcessContext:
    """The processes started by ``spawn(..., join=False)``; call :meth:`join` until it is True.

    >>> import dtrain.multiprocessing as mp
    >>> context = mp.spawn(lambda i: None, nprocs=2, join=False)  # doctest: +SKIP
    >>> len(context.pids())  # doctest: +SKIP
    2
    >>> while not context.join():  # doctest: +SKIP
    ...     pass
    """

    def __init__(self, processes, error_readers):
        self.processes = processes
        self.sentinels = {process.sentinel: index for index, process in enumerate(processes)}
        self._error_readers = dict(enumerate(error_readers))
        self._tracebacks = {}
        self._error = None

    def pids(self):
        """The children's process ids, in index order."""
        return [int(process.pid) for process in self.processes]

    def join(self, timeout=None, grace_period=None):
        """Wait up to ``timeout`` seconds (None: until a child exits) for the children.

        Returns True once every child has exited with code 0, False if some still run. If a
        child failed, stops the others and raises :class:`ProcessRaisedException` (it raised)
        or :class:`ProcessExitedException` (it exited non-zero or was killed by a signal).
        Stopping means: wait ``grace_period`` seconds if given, then SIGTERM, then SIGKILL
        after ``grace_period`` more seconds (``TERMINATE_TIMEOUT`` if None; torch waits 30 s).
        Ctrl-C or SIGTERM during join stop the children too, then reach the caller.

        >>> context = mp.spawn(lambda i: None, nprocs=2, join=False)  # doctest: +SKIP
        >>> while not context.join(timeout=1.0):  # doctest: +SKIP
        ...     print("still running")
        """
        if self._error is not None:
            raise self._error
        if not self.sentinels:
            return True
        try:
            with _sigterm_raises():
                failed_index = self._wait_for_failure(timeout)
        except BaseException as exc:
            self._stop(grace_period=None)
            if isinstance(exc, _ParentTerminated):
                os.kill(os.getpid(), exc.signum)  # the default action is back: die by SIGTERM
                raise SystemExit(128 + exc.signum) from None
            raise
        if failed_index is None:
            if not self.sentinels:
                self._close_error_readers()
            return not self.sentinels
        self._stop(grace_period)
        self._error = self._exception_for(failed_index)
        raise self._error

    def _wait_for_failure(self, timeout):
        """Reap children that exit; return the index of the first that failed, else None."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.sentinels:
            readers = {reader: index for index, reader in self._error_readers.items()}
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready = multiprocessing.connection.wait([*self.sentinels, *readers], remaining)
            exited = [obj for obj in ready if obj in self.sentinels]
            for reader in ready:
                if reader in readers:
                    # read tracebacks as they come: a long one fills the pipe and would block
                    # the child, and with it this join, forever
                    self._read_traceback(readers[reader])
            for sentinel in exited:
                index = self.sentinels.pop(sentinel)
                self.processes[index].join()
                if self.processes[index].exitcode != 0:
                    return index
            if exited or not ready:
                return None
        return None

    def _read_traceback(self, index):
        reader = self._error_readers.pop(index, None)
        if reader is None:
            return
        try:
            self._tracebacks[index] = reader.recv_bytes().decode("utf-8", "replace")
        except (EOFError, OSError):
            pass  # the child exited without sending one
        finally:
            reader.close()

    def _close_error_readers(self):
        for index in list(self._error_readers):
            self._read_traceback(index)

    def _stop(self, grace_period):
        """Stop every child that still runs (SIGTERM, then SIGKILL) and reap them all."""
        if grace_period is not None:
            self._join_all(grace_period)
        for process in self.processes:
            if process.is_alive():
                process.terminate()
        self._join_all(TERMINATE_TIMEOUT if grace_period is None else grace_period)
        for process in self.processes:
            if process.is_alive():
                process.kill()
            process.join()
        self.sentinels.clear()
        self._close_error_readers()

    def _join_all(self, timeout):
        deadline = time.monotonic() + timeout
        for process in self.processes:
            process.join(max(0.0, deadline - time.monotonic()))

    def _exception_for(self, index):
        process = self.processes[index]
        if index in self._tracebacks:
            msg = f"\n\n-- Process {index:d} terminated with the following error:\n"
            return ProcessRaisedException(msg + self._tracebacks[index], index, process.pid)
        exit_code = process.exitcode
        if exit_code >= 0:
            return ProcessExitedException(
                f"process {index:d} terminated with exit code {exit_code:d}",
                index, process.pid, exit_code)
        try:
            name = signal.Signals(-exit_code).name
        except ValueError:
            name = f"<Unknown signal {-exit_code}>"
        return ProcessExitedException(f"process {index:d} terminated with signal {name}",
                                      index, process.pid, exit_code, signal_name=name)


def start_processes(fn, args=(), nprocs=1, join=True, daemon=False, start_method="spawn"):
    """:func:`spawn` with any start method ("spawn", "fork" or "forkserver"), as in torch.

    >>> import dtrain.multiprocessing as mp
    >>> mp.start_processes(lambda i: print(i), nprocs=2, start_method="fork")  # doctest: +SKIP
    """
    context = multiprocessing.get_context(start_method)
    payload = _Payload(fn, tuple(args))
    processes, error_readers = [], []
    try:
        for index in range(nprocs):
            reader, writer = context.Pipe(duplex=False)
            error_readers.append(reader)
            process = context.Process(target=_child_main, args=(payload, index, writer),
                                      daemon=daemon)
            processes.append(process)  # first: Ctrl-C as start() returns must stop it too
            try:
                process.start()
            finally:
                writer.close()  # the child holds its own copy; ours would hide its EOF
    except BaseException:
        started = [p for p in processes if p.pid is not None]
        ProcessContext(started, error_readers)._stop(grace_period=None)
        raise
    process_context = ProcessContext(processes, error_readers)
    if not join:
        return process_context
    while not process_context.join():
        pass
    return None


def spawn(fn, args=(), nprocs=1, join=True, daemon=False, start_method="spawn"):
    """Run ``fn(i, *args)`` for ``i`` in ``range(nprocs)``, each in a fresh interpreter.

    As ``torch.multiprocessing.spawn``: returns None once all exit cleanly (``join=True``) or
    a :class:`ProcessContext` at once (``join=False``). If one child fails, the others are
    stopped and :class:`ProcessRaisedException` (with the child's traceback) or
    :class:`ProcessExitedException` (exit code or signal) is raised. Unlike torch, ``fn`` and
    ``args`` go through cloudpickle, so ``fn`` may be a lambda, a closure or a function
    defined in ``__main__``. A script that calls spawn still needs
    ``if __name__ == "__main__":``, because each child imports the script again.

    >>> import dtrain.multiprocessing as mp
    >>> def train(rank, world_size):
    ...     print(f"rank {rank} of {world_size}")
    >>> mp.spawn(train, args=(2,), nprocs=2)  # doctest: +SKIP
    rank 0 of 2
    rank 1 of 2
    """
    if start_method != "spawn":
        warnings.warn(
            f"spawn only supports start_method='spawn' (got {start_method!r}) and uses it. "
            f"To use another start method, call dtrain.multiprocessing.start_processes(...).",
            FutureWarning, stacklevel=2)
    return start_processes(fn, args, nprocs, join, daemon, start_method="spawn")
