"""Two "hosts" on one machine: two Linux network namespaces joined by a veth pair.

    with TwoHosts() as hosts:            # needs root and iproute2's `ip`
        proc = hosts.popen(0, [...])     # runs inside host 0's namespace (10.213.0.1)
        hosts.cut()                      # the cable is pulled: the veth goes down
    # every process in the namespaces is killed, the namespaces (and the veth) are gone

Names carry the pid and a counter, so concurrent runs do not collide. Every `ip` call has a
timeout, and close() is safe to call twice and after a failed setup.
"""
import ipaddress
import itertools
import os
import shutil
import signal
import subprocess
import time

SUBNET = "10.213.0"
_IP_TIMEOUT = 10  # s, for any one `ip` command
_serial = itertools.count()


def ip(*args, check=True, timeout=_IP_TIMEOUT):
    """Run `ip ARGS`; returns the CompletedProcess (raises with ip's message when check)."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise RuntimeError(f"`ip {' '.join(args)}` failed ({done.returncode}): "
                           f"{(done.stderr or done.stdout).strip()}")
    return done


def unavailable():
    """Why two namespaces cannot be made here (a sentence), or None when they can."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "needs root to create network namespaces (run the tests as root)"
    if shutil.which("ip") is None:
        return "needs the `ip` command of iproute2 (apt-get install iproute2)"
    name = f"dtrain-probe-{os.getpid()}-{next(_serial)}"
    try:
        done = ip("netns", "add", name, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"`ip netns add` could not run: {e}"
    if done.returncode != 0:
        return (f"`ip netns add {name}` failed, so network namespaces cannot be made here: "
                f"{(done.stderr or done.stdout).strip()}")
    try:
        done = ip("netns", "exec", name, "true", check=False)
        if done.returncode != 0:
            return f"`ip netns exec` fails here: {(done.stderr or done.stdout).strip()}"
    finally:
        ip("netns", "delete", name, check=False)
    return None


def namespaces():
    """The names `ip netns list` shows."""
    return [line.split()[0] for line in ip("netns", "list").stdout.splitlines() if line.strip()]


def pids_in(ns):
    """The pids of the processes in namespace ``ns`` (empty once it is gone)."""
    done = ip("netns", "pids", ns, check=False)
    return [int(p) for p in done.stdout.split()] if done.returncode == 0 else []


def alive(pid):
    """Whether ``pid`` is a process that has not exited (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


class TwoHosts:
    """Namespaces ``names[0]`` (address ``addrs[0]``) and ``names[1]`` (``addrs[1]``), joined by
    the veth ``links[0]`` <-> ``links[1]``, loopback up in both."""

    def __init__(self):
        tag = f"{os.getpid()}-{next(_serial)}"
        self.names = [f"dtrain-mh{i}-{tag}" for i in range(2)]
        # interface names are at most 15 characters
        self.links = [f"dmh{i}{os.getpid() % 10**7}{next(_serial) % 100}" for i in range(2)]
        self.addrs = [f"{SUBNET}.{i + 1}" for i in range(2)]
        self.procs = []   # what popen started, to reap
        self.seen = set()  # every pid ever found in the namespaces
        self._made = []

    def __enter__(self):
        try:
            self.open()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()

    def open(self):
        for name in self.names:
            ip("netns", "add", name)
            self._made.append(name)
        a, b = self.names
        ip("link", "add", self.links[0], "netns", a, "type", "veth",
           "peer", "name", self.links[1], "netns", b)
        for name, link, addr in zip(self.names, self.links, self.addrs):
            ip("-n", name, "addr", "add", f"{addr}/24", "dev", link)
            ip("-n", name, "link", "set", "lo", "up")
            ip("-n", name, "link", "set", link, "up")

    def popen(self, host, argv, **kw):
        """Start ``argv`` inside host ``host``'s namespace, in a session of its own (`ip netns
        exec` execs it, so the Popen's pid is the command's)."""
        proc = subprocess.Popen(["ip", "netns", "exec", self.names[host], *argv],
                                start_new_session=True, stdin=subprocess.DEVNULL, **kw)
        self.procs.append(proc)
        return proc

    def run(self, host, argv, timeout=_IP_TIMEOUT):
        """Run a short command inside host ``host``'s namespace; its stdout."""
        done = subprocess.run(["ip", "netns", "exec", self.names[host], *argv],
                              capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"{argv} in {self.names[host]} failed: {done.stderr.strip()}")
        return done.stdout

    def pids(self):
        """The pids now in either namespace (remembered in ``seen``)."""
        found = [pid for name in self._made for pid in pids_in(name)]
        self.seen.update(found)
        return found

    def cut(self):
        """Pull the cable: host 0's end of the veth goes down (and with it the link)."""
        ip("-n", self.names[0], "link", "set", self.links[0], "down")

    def close(self, timeout=10.0):
        """Kill whatever still runs in the namespaces (by pid: only our processes live
        there), reap what popen started, and delete the namespaces (the veth goes with them).
        Raises if something is left."""
        problems = []
        deadline = time.monotonic() + timeout
        while True:
            left = [pid for pid in self.pids() if alive(pid)]
            if not left:
                break
            if time.monotonic() > deadline:
                problems.append(f"processes still running in the namespaces: {left}")
                break
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.05)
        for proc in self.procs:
            try:
                proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                problems.append(f"process {proc.pid} did not exit")
        for name in list(self._made):
            done = ip("netns", "delete", name, check=False)
            if done.returncode == 0 or name not in namespaces():
                self._made.remove(name)
            else:
                problems.append(f"could not delete namespace {name}: {done.stderr.strip()}")
        for link in self.links:  # normally gone with its namespace
            if ip("link", "show", link, check=False).returncode == 0:
                ip("link", "delete", link, check=False)
                problems.append(f"veth {link} outlived its namespace")
        if problems:
            raise RuntimeError("; ".join(problems))


def in_subnet(address):
    """Whether ``address`` (no port) is one of the two hosts' addresses."""
    try:
        return ipaddress.ip_address(address) in ipaddress.ip_network(f"{SUBNET}.0/24")
    except ValueError:
        return False
