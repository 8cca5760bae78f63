"""Grad mode: whether new operations are recorded in the backward graph (per thread, as in torch)."""
import functools
import threading


class _GradState(threading.local):
    enabled = True


_state = _GradState()


def is_grad_enabled():
    """True when operations are being recorded for autograd.

    >>> with dtrain.no_grad():
    ...     dtrain.is_grad_enabled()
    False
    """
    return _state.enabled


class _GradModeContext:
    """Base for no_grad/enable_grad/set_grad_enabled: a context manager and a decorator."""

    mode = True

    def __new__(cls, *args):
        # ``@no_grad`` without parentheses passes the function itself
        if cls in (no_grad, enable_grad) and len(args) == 1 and callable(args[0]):
            return cls()(args[0])
        return super().__new__(cls)

    def __enter__(self):
        self.prev = _state.enabled
        _state.enabled = self.mode

    def __exit__(self, *exc):
        _state.enabled = self.prev
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self.clone():
                return fn(*args, **kwargs)
        return wrapper

    def clone(self):
        return self.__class__()


class no_grad(_GradModeContext):
    """Disable gradient recording, as a context manager or a decorator.

    >>> with dtrain.no_grad():
    ...     y = x * 2          # y.requires_grad is False
    """

    mode = False


class enable_grad(_GradModeContext):
    """Enable gradient recording inside a ``no_grad`` block, as a context manager or a decorator.

    >>> with dtrain.no_grad():
    ...     with dtrain.enable_grad():
    ...         y = x * 2      # recorded again
    """

    mode = True


class inference_mode(no_grad):
    """Same as ``no_grad`` in dtrain (torch's extra inference-mode checks do not apply).

    >>> with dtrain.inference_mode():
    ...     logits = model(x)
    """

    def __init__(self, mode=True):
        self.mode = not mode

    def clone(self):
        return self.__class__(not self.mode)


class set_grad_enabled(_GradModeContext):
    """Turn grad mode on or off. Takes effect at once when called, and is restored on exit
    when used as a context manager.

    >>> with dtrain.set_grad_enabled(False):
    ...     y = x * 2
    """

    def __init__(self, mode):
        self.mode = bool(mode)
        self.prev = _state.enabled
        _state.enabled = self.mode

    def __enter__(self):
        pass

    def __call__(self, fn):
        _state.enabled = self.prev  # used as a decorator: only the decorated calls change mode
        return super().__call__(fn)

    def clone(self):
        return _ScopedGradMode(self.mode)


class _ScopedGradMode(_GradModeContext):
    def __init__(self, mode):
        self.mode = mode
