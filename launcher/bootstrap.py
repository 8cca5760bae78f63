"""What each worker runs first: ``python launcher/bootstrap.py script.py args...`` (or
``-m module args...``).

It makes the worker die with its launcher, installs an excepthook that writes the traceback of
an uncaught exception to the file named by DTRAIN_ERROR_FILE (the launcher's failure summary
reads it), and then runs the script as ``python script.py`` would, as ``__main__``. The launcher
starts this file by path, so it imports nothing but the standard library: the worker's imports
are the script's own.
"""
import os
import sys

# sys.path[0] is this file's directory (unless PYTHONSAFEPATH); the script must see its own
if sys.path and sys.path[0] == os.path.dirname(os.path.abspath(__file__)):
    del sys.path[0]

import ctypes  # noqa: E402
import runpy  # noqa: E402
import signal  # noqa: E402
import traceback  # noqa: E402

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
_OWN_FILES = (os.path.abspath(__file__), os.path.abspath(runpy.__file__), "<frozen runpy>")


def die_with_launcher():
    """SIGKILL this process when the launcher dies, even by SIGKILL (Linux).

    The death signal fires when the *thread* that forked us exits: the launcher forks from its
    main thread, which lives as long as the launcher. The launcher may have died before prctl:
    then no signal will ever come, so compare the parent with the one the launcher announced.
    """
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL))
        except (OSError, AttributeError):
            pass
    launcher = os.environ.get("DTRAIN_LAUNCHER_PID")
    if launcher and os.getppid() != int(launcher):
        os._exit(1)


def _script_frames(tb):
    """The traceback from the script's first frame on, without this file's and runpy's (None
    if the script never started, e.g. no such module: Python then prints no traceback either)."""
    while tb is not None and _is_own(tb.tb_frame.f_code.co_filename):
        tb = tb.tb_next
    return tb


def _is_own(filename):
    return filename in _OWN_FILES or os.path.abspath(filename) in _OWN_FILES


def report_uncaught(exc_type, exc, tb):
    """sys.excepthook: save the traceback for the launcher, then print it as Python does."""
    if issubclass(exc_type, KeyboardInterrupt):
        return  # Ctrl-C reached every worker through the launcher, which says so once
    tb = _script_frames(tb)
    exc.__traceback__ = tb  # Python's own hook prints this one, whatever tb it is given
    path = os.environ.get("DTRAIN_ERROR_FILE")
    if path:
        try:
            with open(path, "w", encoding="utf-8") as f:
                f.write("".join(traceback.format_exception(exc_type, exc, tb)))
        except OSError:
            pass
    sys.__excepthook__(exc_type, exc, tb)


def run(argv):
    """Run ``script args...`` or ``-m module args...`` as __main__."""
    if argv[0] == "-m":
        sys.argv = argv[1:]
        sys.path.insert(0, os.getcwd())
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = argv
        sys.path.insert(0, os.path.dirname(os.path.realpath(argv[0])))
        runpy.run_path(argv[0], run_name="__main__")


if __name__ == "__main__":
    die_with_launcher()
    sys.excepthook = report_uncaught
    run(sys.argv[1:])
