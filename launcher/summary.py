"""The failure summary: which worker failed first, how it ended, and its traceback."""
import signal
import socket
from dataclasses import dataclass, field

_RULE = "=" * 72


@dataclass
class WorkerEnd:
    """How one worker ended. ``code`` is Popen's returncode: negative for a signal."""

    rank: int
    local_rank: int
    pid: int
    code: int
    traceback: str = ""
    stderr_tail: list = field(default_factory=list)
    log_file: object = None  # its stderr log under --log-dir, if any

    def how(self):
        """'exit code 1' or 'signal SIGKILL'."""
        if self.code >= 0:
            return f"exit code {self.code}"
        try:
            return f"signal {signal.Signals(-self.code).name}"
        except ValueError:
            return f"signal {-self.code}"

    def who(self, node_rank):
        return (f"rank {self.rank} (local rank {self.local_rank}, node {node_rank}, host "
                f"{socket.gethostname()}, pid {self.pid})")

    def last_line(self):
        lines = (self.traceback or "").strip().splitlines() or self.stderr_tail
        return lines[-1].strip() if lines else ""


def failure_report(title, failed, stopped, node_rank):
    """The summary printed when workers failed; ``failed`` holds the root cause first.

    ``stopped``: the workers the launcher stopped because of the failure.
    """
    first, *others = failed
    lines = [_RULE, title, f"root cause: {first.who(node_rank)}: {first.how()}"]
    if first.code == -signal.SIGKILL:
        lines.append("  (SIGKILL from outside the launcher is often the kernel's out-of-memory "
                     "killer: see `dmesg`)")
    if first.traceback:
        lines += ["  " + line for line in first.traceback.rstrip().splitlines()]
    elif first.stderr_tail:
        lines.append("  no Python traceback; the last lines of its stderr:")
        lines += ["  " + line for line in first.stderr_tail]
    else:
        lines.append("  no Python traceback and nothing on its stderr")
    if first.log_file is not None:
        lines.append(f"  its full stderr: {first.log_file}")
    for end in others:
        detail = end.last_line()
        lines.append(f"also failed: rank {end.rank} (local rank {end.local_rank}, pid "
                     f"{end.pid}): {end.how()}" + (f": {detail}" if detail else ""))
    if stopped:
        lines.append("stopped by the launcher: rank" + ("s " if len(stopped) > 1 else " ")
                     + ", ".join(str(end.rank) for end in stopped))
    lines.append(_RULE)
    return "\n".join(lines)
