"""Small helpers shared by tests that run the same code with dtrain and with torch."""
import re
import warnings

import numpy as np


def npy(x):
    """A numpy copy of a tensor of either library."""
    return np.array(x.detach().numpy(), copy=True)


def dname(d):
    """A dtype's short name ('float32') for either library."""
    return str(d).rsplit(".", 1)[-1]


def gname(x):
    """The class name of x.grad_fn, or None."""
    return None if x.grad_fn is None else type(x.grad_fn).__name__


def nonleaf_grad(x):
    """x.grad for a non-leaf, without torch's UserWarning about reading it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return x.grad


def run(snippet, lib, **names):
    """Exec a snippet with the word torch replaced by lib's name; return its namespace."""
    src = re.sub(r"\btorch\b", lib.__name__, snippet)
    ns = {lib.__name__: lib, "np": np, **names}
    exec(compile(src, "<seed>", "exec"), ns)
    return ns
