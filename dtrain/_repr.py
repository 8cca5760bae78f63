"""Tensor printing that matches ``repr(torch.Tensor)`` character for character.

The algorithm is a compact port of PyTorch's ``torch/_tensor_str.py`` (BSD-3-Clause license,
Copyright (c) Meta Platforms, Inc. and affiliates), working on the tensor's numpy array:
one formatter per tensor picks integer / fixed-point / scientific notation and a common
width, large tensors are summarized with ``...``, and rows wrap at ``linewidth``.
"""
import dataclasses
import math

import numpy as np


@dataclasses.dataclass
class _PrintOptions:
    precision: int = 4
    threshold: float = 1000
    edgeitems: int = 3
    linewidth: int = 80
    sci_mode: object = None  # None: chosen per tensor; True/False: forced


PRINT_OPTS = _PrintOptions()
_PROFILES = {"default": (4, 1000, 3, 80), "short": (2, 1000, 2, 80), "full": (4, math.inf, 3, 80)}


def set_printoptions(precision=None, threshold=None, edgeitems=None, linewidth=None,
                     profile=None, sci_mode=None):
    """Set print options, like ``torch.set_printoptions``.

    precision: digits after the point (default 4); threshold: element count above which a
    tensor is summarized (1000); edgeitems: items kept at each end when summarizing (3);
    linewidth: characters per line (80); profile: "default", "short" or "full" sets the four
    above; sci_mode: True/False forces scientific notation on/off, None (the default, and
    what every call without it restores) lets each tensor choose.

    >>> dtrain.set_printoptions(precision=2)
    >>> dtrain.tensor([1.12345])
    tensor([1.12])
    """
    if profile is not None:
        (PRINT_OPTS.precision, PRINT_OPTS.threshold,
         PRINT_OPTS.edgeitems, PRINT_OPTS.linewidth) = _PROFILES[profile]
    for name, value in (("precision", precision), ("threshold", threshold),
                        ("edgeitems", edgeitems), ("linewidth", linewidth)):
        if value is not None:
            setattr(PRINT_OPTS, name, value)
    PRINT_OPTS.sci_mode = sci_mode


def get_printoptions():
    """The current print options as a dict that ``set_printoptions(**opts)`` accepts."""
    return dataclasses.asdict(PRINT_OPTS)


class _Formatter:
    """Chooses one notation and width for all the (possibly summarized) values of a tensor."""

    def __init__(self, arr):
        self.floating = arr.dtype.kind == "f"
        self.int_mode, self.sci_mode, self.max_width = True, False, 1
        flat = arr.reshape(-1)
        if not self.floating:
            self.max_width = max([1] + [len(str(v)) for v in flat.tolist()])
            return
        vals = flat[np.isfinite(flat) & (flat != 0)]
        if vals.size == 0:
            return
        absv = np.abs(vals).astype(np.float64)
        lo, hi = absv.min(), absv.max()
        self.int_mode = bool(np.all(vals == np.ceil(vals)))
        forced = PRINT_OPTS.sci_mode
        self.sci_mode = bool(hi / lo > 1000.0 or hi > 1.0e8 or lo < 1.0e-4
                             if forced is None else forced)
        p = PRINT_OPTS.precision
        if self.sci_mode:
            widths = [len(f"{v:.{p}e}") for v in vals.tolist()]
        elif self.int_mode:  # room for the trailing "." that marks a float
            widths = [len(f"{v:.0f}") + 1 for v in vals.tolist()]
        else:
            widths = [len(f"{v:.{p}f}") for v in vals.tolist()]
        self.max_width = max([1] + widths)

    def format(self, v):
        p = PRINT_OPTS.precision
        if not self.floating:
            s = f"{v}"
        elif self.sci_mode:
            s = f"{v:{self.max_width}.{p}e}"
        elif self.int_mode:
            s = f"{v:.0f}" + ("" if math.isinf(v) or math.isnan(v) else ".")
        else:
            s = f"{v:.{p}f}"
        return s.rjust(self.max_width)


def _summarized(arr):
    """The values a summarized print shows: ``edgeitems`` from each end of every dimension."""
    e = PRINT_OPTS.edgeitems
    if arr.ndim == 0:
        return arr
    n = arr.shape[0]
    if arr.ndim == 1:
        return np.concatenate((arr[:e], arr[-e:])) if n > 2 * e else arr
    if not e:
        return arr[:0]
    rows = [*range(e), *range(n - e, n)] if n > 2 * e else range(n)
    return np.stack([_summarized(arr[i]) for i in rows])


def _vector_str(arr, indent, summarize, fmt):
    per_line = max(1, math.floor((PRINT_OPTS.linewidth - indent) / (fmt.max_width + 2)))
    e = PRINT_OPTS.edgeitems
    if summarize and not e:
        data = ["..."]
    elif summarize and arr.shape[0] > 2 * e:
        data = ([fmt.format(v) for v in arr[:e].tolist()] + [" ..."]
                + [fmt.format(v) for v in arr[-e:].tolist()])
    else:
        data = [fmt.format(v) for v in arr.tolist()]
    lines = [", ".join(data[i:i + per_line]) for i in range(0, len(data), per_line)]
    return "[" + (",\n" + " " * (indent + 1)).join(lines) + "]"


def _nested_str(arr, indent, summarize, fmt):
    if arr.ndim == 0:
        return fmt.format(arr.item())
    if arr.ndim == 1:
        return _vector_str(arr, indent, summarize, fmt)
    e, n = PRINT_OPTS.edgeitems, arr.shape[0]
    sub = [_nested_str(arr[i], indent + 1, summarize, fmt) for i in range(n)
           if not (summarize and n > 2 * e) or i < e or i >= n - e]
    if summarize and n > 2 * e:
        sub.insert(e, "...")
    return "[" + ("," + "\n" * (arr.ndim - 1) + " " * (indent + 1)).join(sub) + "]"


def _add_suffixes(text, suffixes, indent):
    parts = [text]
    last_line_len = len(text) - text.rfind("\n") + 1  # torch's arithmetic, kept exactly
    for suffix in suffixes:
        n = len(suffix.replace("dtrain.", "torch."))  # wrap exactly where torch's text wraps
        if last_line_len + n + 2 > PRINT_OPTS.linewidth:
            parts.append(",\n" + " " * indent + suffix)
            last_line_len = indent + n
        else:
            parts.append(", " + suffix)
            last_line_len += n + 2
    return "".join(parts) + ")"


def tensor_repr(t):
    """``repr`` of a dtrain Tensor, identical to torch's with ``torch.`` spelled ``dtrain.``."""
    from ._dtypes import bool_, get_default_dtype, int64

    arr = np.asarray(t._data)
    dt, default = t.dtype, get_default_dtype()
    prefix = "tensor("
    indent = len(prefix)
    suffixes = []
    if arr.size == 0:
        if arr.ndim != 1:
            suffixes.append(f"size={tuple(arr.shape)}")
        if dt is not default:  # no values to tell ints from floats, so show any non-default
            suffixes.append(f"dtype=dtrain.{dt.name}")
        body = "[]"
    else:
        if not PRINT_OPTS.edgeitems:
            suffixes.append(f"size={tuple(arr.shape)}")
        if dt not in (default, int64, bool_):
            suffixes.append(f"dtype=dtrain.{dt.name}")
        summarize = arr.size > PRINT_OPTS.threshold
        fmt = _Formatter(_summarized(arr) if summarize else arr)
        body = _nested_str(arr, indent, summarize, fmt)
    if t.grad_fn is not None:
        suffixes.append(f"grad_fn=<{t.grad_fn.name()}>")
    elif t.requires_grad:
        suffixes.append("requires_grad=True")
    return _add_suffixes(prefix + body, suffixes, indent)
