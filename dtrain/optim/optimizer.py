"""Optimizer: parameter groups, per-parameter state and torch's state_dict layout.

The algorithms (sgd.py, adam.py, ...) implement ``_update(p, group)``, one parameter's step of
torch's single-tensor (``foreach=False``) loop, on the numpy arrays in place; the loop over
groups and parameters, the closure and grad mode live here.
"""
import time
import warnings
from collections import defaultdict
from copy import deepcopy
from itertools import chain

import numpy as np

from .. import _dtypes, timeline
from ..autograd.grad_mode import enable_grad, no_grad
from ..tensor import Tensor


class _RequiredParameter:
    """The default of a hyper-parameter that every parameter group must set."""

    def __repr__(self):
        return "<required parameter>"


required = _RequiredParameter()


class Optimizer:
    """Base class of all optimizers, as ``torch.optim.Optimizer``.

    ``params`` is an iterable of tensors, of ``(name, tensor)`` pairs, or of dicts, each a
    parameter group with its own options; ``defaults`` fills the options a group leaves out.
    A subclass either overrides ``step`` (as in torch) or implements ``_update(p, group)``,
    which ``step`` calls for every parameter that has a gradient.

    >>> class PlainSGD(dtrain.optim.Optimizer):
    ...     def __init__(self, params, lr=0.1):
    ...         super().__init__(params, {"lr": lr})
    ...     def _update(self, p, group):      # runs under no_grad
    ...         p.add_(p.grad, alpha=-group["lr"])
    """

    def __init__(self, params, defaults):
        self.defaults = defaults
        if isinstance(params, Tensor):
            raise TypeError("params argument given to the optimizer should be an iterable of "
                            "Tensors or dicts, but got " + _typename(params))
        self.state = defaultdict(dict)
        self.param_groups = []
        param_groups = list(params)
        if len(param_groups) == 0:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(param_groups[0], dict):
            param_groups = [{"params": param_groups}]
        for param_group in param_groups:
            self.add_param_group(param_group)

    def add_param_group(self, param_group):
        """Add a group of parameters with its own options (the rest from ``defaults``), for
        example to train layers that were frozen so far.

        >>> opt.add_param_group({"params": head.parameters(), "lr": 1e-2})
        """
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group)}")
        params = param_group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, set):
            raise TypeError("optimizer parameters need to be organized in ordered collections, "
                            "but the ordering of tensors in sets will change between runs. "
                            "Please use a list instead.")
        params = list(params)
        names = [p[0] for p in params if isinstance(p, tuple)]
        params = [p[1] if isinstance(p, tuple) else p for p in params]
        param_group["params"] = params
        if names:
            if len(names) != len(params):
                raise ValueError("all optimizer params should be with/without names. Some param "
                                 "names are missing")
            param_group["param_names"] = names

        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError("optimizer can only optimize Tensors, but one of the params is "
                                + _typename(p))
            if not (p.is_leaf or p.retains_grad):
                raise ValueError("can't optimize a non-leaf Tensor")
        for name, default in self.defaults.items():
            if default is required and name not in param_group:
                raise ValueError("parameter group didn't specify a value of required "
                                 f"optimization parameter {name}")
            param_group.setdefault(name, default)

        if len(params) != len(set(params)):
            warnings.warn("optimizer contains a parameter group with duplicate parameters; in "
                          "future, this will cause an error; see "
                          "github.com/pytorch/pytorch/issues/40967 for more information",
                          stacklevel=3)
        seen = set()
        for group in self.param_groups:
            seen.update(group["params"])
            if ("param_names" in param_group) != ("param_names" in group):
                kind = "with names" if "param_names" in param_group else "without names"
                raise ValueError("all optimizer param groups should be with/without names. "
                                 f"cannot add param group {kind} to the optimizer")
        if not seen.isdisjoint(params):
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(param_group)

    def step(self, closure=None):
        """Update every parameter that has a gradient, once. ``closure``, if given, re-evaluates
        the model and returns the loss, which ``step`` returns; it runs with grad enabled, the
        update under ``no_grad``.

        >>> loss.backward(); opt.step(); opt.zero_grad()
        """
        rec = timeline.recorder
        if rec is not None:
            start = time.time_ns()
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        with no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        self._update(p, group)
                        p._bump()
        if rec is not None:
            rec.add("optimizer.step", timeline.COMPUTE, start,
                    args={"optimizer": type(self).__name__})
        return loss

    def _update(self, p, group):
        raise NotImplementedError(f"{type(self).__name__} must override step() or implement "
                                  "_update(p, group), one parameter's update.")

    def zero_grad(self, set_to_none=True):
        """Reset the gradients: to None (the default), or to zeros in place.

        >>> opt.zero_grad()
        """
        for group in self.param_groups:
            for p in group["params"]:
                grad = p.grad
                if grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                    continue
                if grad.grad_fn is not None:
                    grad.detach_()
                else:
                    grad.requires_grad_(False)
                grad._data[...] = 0
                grad._bump()

    def state_dict(self):
        """The optimizer's state as torch lays it out: ``{"state": {index: {...}},
        "param_groups": [{..., "params": [index, ...]}]}``, parameters replaced by their index in
        group order. The state tensors are the live ones, not copies, as in torch.

        >>> checkpoint = {"optim": opt.state_dict()}
        """
        mapping = {}
        start = 0

        def pack(group):
            nonlocal start
            packed = {k: v for k, v in group.items() if k != "params"}
            mapping.update({id(p): i for i, p in enumerate(group["params"], start)
                            if id(p) not in mapping})
            packed["params"] = [mapping[id(p)] for p in group["params"]]
            start += len(packed["params"])
            return packed

        param_groups = [pack(g) for g in self.param_groups]
        state = {(mapping[id(k)] if isinstance(k, Tensor) else k): v
                 for k, v in self.state.items()}
        return {"state": state, "param_groups": param_groups}

    def load_state_dict(self, state_dict):
        """Load a ``state_dict()``: groups and parameters are matched by position. State
        tensors are copied (floating ones cast to their parameter's dtype, except ``step``).

        >>> opt.load_state_dict(checkpoint["optim"])
        """
        groups = self.param_groups
        saved_groups = deepcopy(state_dict["param_groups"])
        if len(groups) != len(saved_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        if any(len(g["params"]) != len(s["params"]) for g, s in zip(groups, saved_groups)):
            raise ValueError("loaded state dict contains a parameter group that doesn't match "
                             "the size of optimizer's group")
        id_map = dict(zip(chain.from_iterable(g["params"] for g in saved_groups),
                          chain.from_iterable(g["params"] for g in groups)))
        state = defaultdict(dict)
        for k, v in state_dict["state"].items():
            if k in id_map:
                param = id_map[k]
                state[param] = _copy_state(param, v)
            else:
                state[k] = v
        for group, saved in zip(groups, saved_groups):
            saved["params"] = group["params"]
            if "param_names" in group and "param_names" not in saved:
                saved["param_names"] = group["param_names"]
        self.__setstate__({"state": state, "param_groups": saved_groups})

    def __getstate__(self):
        return {"defaults": self.defaults, "state": self.state, "param_groups": self.param_groups}

    def __setstate__(self, state):
        self.__dict__.update(state)

    def __repr__(self):
        lines = [self.__class__.__name__ + " ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {key}: {group[key]}" for key in sorted(group) if key != "params"]
        return "\n".join(lines) + "\n)"


def _copy_state(param, value, key=None):
    """A deep copy of one parameter's saved state, tensors cast as torch's load_state_dict does:
    floating state follows the parameter's dtype, but ``step`` keeps its own."""
    if isinstance(value, Tensor):
        dtype = value._data.dtype
        if key != "step" and param._data.dtype.kind == "f":
            dtype = param._data.dtype
        return Tensor._make(np.array(value._data, dtype=dtype, copy=True))
    if isinstance(value, dict):
        return {k: _copy_state(param, v, k) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_copy_state(param, v) for v in value)
    return value


def _typename(obj):
    if isinstance(obj, Tensor):
        return obj.type()
    cls = type(obj)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


# --- helpers shared by the algorithms -------------------------------------------------------

def _check_flags(differentiable=False, fused=None, capturable=False):
    """dtrain implements torch's single-tensor loop on the CPU; refuse the variants it lacks.
    (``foreach`` is accepted and ignored: it changes speed, not the update rule.)"""
    if differentiable:
        raise NotImplementedError("differentiable=True is not supported: dtrain has no "
                                  "higher-order gradients, so step() always runs under no_grad.")
    if fused:
        raise NotImplementedError("fused=True is not supported: dtrain has one CPU "
                                  "implementation, torch's single-tensor (foreach=False) loop. "
                                  "Leave fused unset.")
    if capturable:
        raise NotImplementedError("capturable=True is not supported: it is for CUDA graph "
                                  "capture, and dtrain runs on the CPU only.")


def _step_tensor():
    """A fresh ``state["step"]``: a 0-d tensor, float64 only when that is the default dtype."""
    dtype = np.float64 if _dtypes.get_default_dtype() is _dtypes.float64 else np.float32
    return Tensor._make(np.zeros((), dtype=dtype))


def _full_like(p, value=0.0):
    return Tensor._make(np.full_like(p._data, value))


def _advance(step):
    """``step += 1`` on a state step tensor; returns the new count as a Python float."""
    step._data += 1
    return float(step._data)


def _grad_for_update(param, grad, weight_decay, maximize):
    """torch's ``grad = -grad if maximize``, then ``grad = grad.add(param, alpha=weight_decay)``.

    Returns ``(array, owned)``: ``owned`` is True when the array is a fresh buffer the caller
    may overwrite, False when it is the gradient's own storage.
    """
    if weight_decay != 0:
        out = np.multiply(param, weight_decay, out=np.empty_like(param))
        # -g + wd*p equals wd*p - g exactly, so maximizing needs no second buffer
        return (np.subtract(out, grad, out=out) if maximize else np.add(out, grad, out=out)), True
    if maximize:
        return np.negative(grad, out=np.empty_like(grad)), True
    return grad, False


def _lerp_(start, end, weight, scratch):
    """``start.lerp_(end, weight)`` with torch's formula, which changes form at weight 0.5."""
    weight = start.dtype.type(weight)
    np.subtract(end, start, out=scratch)
    if abs(weight) < 0.5:
        np.multiply(scratch, weight, out=scratch)
        np.add(start, scratch, out=start)
    else:
        np.multiply(scratch, 1 - weight, out=scratch)
        np.subtract(end, scratch, out=start)


def _addcmul_(out, t, value, scratch):
    """``out.addcmul_(t, t, value=value)``: out + (value * t) * t, in torch's order."""
    if value == 1:
        np.multiply(t, t, out=scratch)
    else:
        np.multiply(t, value, out=scratch)
        np.multiply(scratch, t, out=scratch)
    np.add(out, scratch, out=out)


def _addcdiv_(out, t, denom, value, scratch):
    """``out.addcdiv_(t, denom, value=value)``: out + (value * t) / denom, in torch's order.
    ``scratch`` may be ``t`` when t is not needed afterwards, and ``denom`` when value is 1."""
    if value == 1:
        np.divide(t, denom, out=scratch)
    else:
        np.multiply(t, value, out=scratch)
        np.divide(scratch, denom, out=scratch)
    np.add(out, scratch, out=out)


def _add_(out, x, alpha, scratch=None):
    """``out.add_(x, alpha=alpha)``: out + alpha * x. (torch fuses the two into one rounding
    where the CPU has FMA; numpy rounds the product first, a difference of at most one ulp.)
    ``scratch`` may be ``x`` when x is not needed afterwards."""
    if alpha == 1:
        np.add(out, x, out=out)
        return
    if scratch is None:
        scratch = np.empty_like(x)
    np.multiply(x, alpha, out=scratch)
    np.add(out, scratch, out=out)
