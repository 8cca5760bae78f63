"""Where workers' output goes: the launcher's console, each line prefixed with ``[rankR]:``,
per-rank log files (--log-dir), or both (--tee).

One reader thread per worker pipe copies whole lines; the console is shared by every thread and
by the launcher's own messages, so lines never mix. Workers run with PYTHONUNBUFFERED=1, so a
line reaches the console when the worker prints it.
"""
import collections
import sys
import threading

TAIL_LINES = 20  # stderr lines kept per worker for the failure summary
_MAX_LINE = 1 << 16  # a longer line is cut into pieces, each prefixed


class Console:
    """The launcher's stdout and stderr, written one whole line (or block) at a time."""

    def __init__(self, stdout=None, stderr=None):
        self._streams = {"stdout": stdout or sys.stdout, "stderr": stderr or sys.stderr}
        self._lock = threading.Lock()
        self._closed = set()

    def write(self, name, data):
        """Write bytes to "stdout" or "stderr"; a closed console (say, `| head`) is skipped."""
        stream = self._streams[name]
        with self._lock:
            if name in self._closed:
                return
            try:
                binary = getattr(stream, "buffer", None)
                if binary is not None:
                    binary.write(data)
                else:
                    stream.write(data.decode(errors="replace"))
                stream.flush()
            except (OSError, ValueError):
                self._closed.add(name)

    def say(self, text):
        """A message of the launcher's own, on stderr."""
        self.write("stderr", "".join(f"dtrain-run: {line}\n"
                                     for line in text.splitlines()).encode())


class Output:
    """Routes each worker's stdout and stderr to the console, to files, or to both."""

    def __init__(self, console, prefix=True, log_dir=None, tee=False):
        self.console = console
        self.prefix = prefix
        self.log_dir = log_dir
        self.to_console = log_dir is None or tee

    def log_file(self, attempt, rank, name):
        """The file that holds one worker's stdout or stderr, or None without --log-dir."""
        if self.log_dir is None:
            return None
        return self.log_dir / f"attempt_{attempt}" / f"rank_{rank}.{name}.log"

    def attach(self, proc, rank, attempt):
        """Start copying proc's stdout and stderr; returns its WorkerOutput."""
        prefix = f"[rank{rank}]:".encode() if self.prefix else b""
        pumps = []
        tail = collections.deque(maxlen=TAIL_LINES)
        for name, pipe in (("stdout", proc.stdout), ("stderr", proc.stderr)):
            path = self.log_file(attempt, rank, name)
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
            sink = open(path, "wb") if path is not None else None
            thread = threading.Thread(
                target=self._pump, daemon=True, name=f"dtrain-run-rank{rank}-{name}",
                args=(pipe, name if self.to_console else None, prefix, sink,
                      tail if name == "stderr" else None))
            thread.start()
            pumps.append(thread)
        return WorkerOutput(pumps, tail)

    def _pump(self, pipe, console_name, prefix, sink, tail):
        try:
            with pipe:
                for line in iter(lambda: pipe.readline(_MAX_LINE), b""):
                    if not line.endswith(b"\n"):
                        line += b"\n"
                    if console_name is not None:
                        self.console.write(console_name, prefix + line)
                    if sink is not None:
                        sink.write(line)
                        sink.flush()
                    if tail is not None:
                        tail.append(line.decode(errors="replace").rstrip("\n"))
        finally:
            if sink is not None:
                sink.close()


class WorkerOutput:
    """The reader threads of one worker, and the last lines of its stderr."""

    def __init__(self, pumps, tail):
        self._pumps = pumps
        self._tail = tail

    def close(self, timeout=2.0):
        """Wait for the pipes to drain (they close when the worker's process group is gone)."""
        for thread in self._pumps:
            thread.join(timeout)

    def stderr_tail(self):
        return list(self._tail)
