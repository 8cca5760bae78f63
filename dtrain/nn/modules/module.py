"""Module: the base of every layer and model; registers parameters, buffers and submodules."""
import numpy as np

from ... import _dtypes, timeline
from ...autograd.grad_mode import no_grad
from ...tensor import RemovableHandle, Tensor, _HookList
from ..parameter import Buffer, Parameter
from .state import StateDictMixin


class _Hook:
    """A registered forward (pre-)hook and how to call it."""

    __slots__ = ("fn", "with_kwargs")

    def __init__(self, fn, with_kwargs):
        self.fn, self.with_kwargs = fn, with_kwargs


def _add_hook(hooks, fn, prepend, with_kwargs):
    hook = _Hook(fn, with_kwargs)
    hooks.insert(0, hook) if prepend else hooks.append(hook)
    return RemovableHandle(hooks, hook)


class Module(StateDictMixin):
    """Base class for layers and models, as ``torch.nn.Module``. Assigning a Parameter, a
    Module or (through ``register_buffer``) a Tensor to an attribute registers it.

    >>> class Net(dtrain.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.fc = dtrain.nn.Linear(4, 2)
    ...     def forward(self, x):
    ...         return self.fc(x)
    """

    _version = 1  # saved in state_dict metadata; a subclass bumps it when its state changes

    def __init__(self, *args, **kwargs):
        if kwargs:
            raise TypeError(f"{type(self).__name__}.__init__() got an unexpected keyword "
                            f"argument '{next(iter(kwargs))}'")
        if args:
            raise TypeError(f"{type(self).__name__}.__init__() takes 1 positional argument but "
                            f"{len(args) + 1} were given")
        set_ = object.__setattr__
        set_(self, "training", True)
        set_(self, "_parameters", {})
        set_(self, "_buffers", {})
        set_(self, "_non_persistent_buffers_set", set())
        set_(self, "_modules", {})
        set_(self, "_forward_pre_hooks", _HookList())
        set_(self, "_forward_hooks", _HookList())

    def forward(self, *args, **kwargs):
        """The computation; subclasses define it, and ``module(x)`` calls it through the hooks.
        >>> def forward(self, x): return self.fc(x).relu()"""
        raise NotImplementedError(f'Module [{type(self).__name__}] is missing the required '
                                  '"forward" function')

    def __call__(self, *args, **kwargs):
        if timeline.recorder is not None and not timeline.recorder.forwarding:
            return timeline.recorder.forward(self, args, kwargs)  # calls us back, as "forward"
        for hook in list(self._forward_pre_hooks):
            if hook.with_kwargs:
                result = hook.fn(self, args, kwargs)
                if result is not None:
                    if not (isinstance(result, tuple) and len(result) == 2):
                        raise RuntimeError("forward pre-hook must return None or a tuple of "
                                           f"(new_args, new_kwargs), but got {result}.")
                    args, kwargs = result
            else:
                result = hook.fn(self, args)
                if result is not None:
                    args = result if isinstance(result, tuple) else (result,)
        out = self.forward(*args, **kwargs)
        for hook in list(self._forward_hooks):
            result = hook.fn(self, args, kwargs, out) if hook.with_kwargs else \
                hook.fn(self, args, out)
            if result is not None:
                out = result
        return out

    def register_forward_pre_hook(self, hook, *, prepend=False, with_kwargs=False):
        """Call ``hook(module, args)`` before forward; it may return replacement args. With
        ``with_kwargs=True``: ``hook(module, args, kwargs)`` -> None or (args, kwargs).

        >>> handle = model.register_forward_pre_hook(lambda m, args: print(args[0].shape))
        """
        return _add_hook(self._forward_pre_hooks, hook, prepend, with_kwargs)

    def register_forward_hook(self, hook, *, prepend=False, with_kwargs=False):
        """Call ``hook(module, args, output)`` after forward; it may return a new output. With
        ``with_kwargs=True``: ``hook(module, args, kwargs, output)``.

        >>> handle = model.fc.register_forward_hook(lambda m, args, out: feats.append(out))
        """
        return _add_hook(self._forward_hooks, hook, prepend, with_kwargs)

    # --- registration -----------------------------------------------------------------------
    def __setattr__(self, name, value):
        def remove_from(*stores):
            for store in stores:
                if isinstance(store, dict):
                    store.pop(name, None)
                else:
                    store.discard(name)

        params = self.__dict__.get("_parameters")
        if isinstance(value, Parameter):
            if params is None:
                raise AttributeError("cannot assign parameters before Module.__init__() call")
            # NOTE: not removed from _parameters, so a replaced parameter keeps its place
            remove_from(self.__dict__, self._buffers, self._modules,
                        self._non_persistent_buffers_set)
            self.register_parameter(name, value)
        elif params is not None and name in params:
            if value is not None:
                raise TypeError(f"cannot assign '{_typename(value)}' as parameter '{name}' "
                                "(dtrain.nn.Parameter or None expected)")
            self.register_parameter(name, value)
        elif isinstance(value, Module):
            if params is None:
                raise AttributeError("cannot assign module before Module.__init__() call")
            remove_from(self.__dict__, self._parameters, self._buffers,
                        self._non_persistent_buffers_set)
            self._modules[name] = value
        elif params is not None and name in self._modules:
            if value is not None:
                raise TypeError(f"cannot assign '{_typename(value)}' as child module '{name}' "
                                "(dtrain.nn.Module or None expected)")
            self._modules[name] = value
        elif params is not None and (isinstance(value, Buffer) or name in self._buffers):
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign '{_typename(value)}' as buffer '{name}' "
                                "(dtrain.nn.Buffer, dtrain.Tensor or None expected)")
            persistent = value.persistent if isinstance(value, Buffer) else \
                name not in self._non_persistent_buffers_set
            self.register_buffer(name, value, persistent)
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name):
        d = self.__dict__
        for store in ("_parameters", "_buffers", "_modules"):
            found = d.get(store)
            if found is not None and name in found:
                return found[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name):
        if name in self._parameters:
            del self._parameters[name]
        elif name in self._buffers:
            del self._buffers[name]
            self._non_persistent_buffers_set.discard(name)
        elif name in self._modules:
            del self._modules[name]
        else:
            object.__delattr__(self, name)

    def _check_name(self, name, kind, store):
        if not isinstance(name, str):
            raise TypeError(f"{kind} name should be a string. Got {_typename(name)}")
        if "." in name:
            raise KeyError(f'{kind} name can\'t contain "."')
        if name == "":
            raise KeyError(f'{kind} name can\'t be empty string ""')
        if hasattr(self, name) and name not in store:
            raise KeyError(f"attribute '{name}' already exists")

    def register_parameter(self, name, param):
        """Add ``param`` (a Parameter or None) as parameter ``name``.

        >>> self.register_parameter("scale", nn.Parameter(dtrain.ones(1)))
        """
        if "_parameters" not in self.__dict__:
            raise AttributeError("cannot assign parameter before Module.__init__() call")
        self._check_name(name, "parameter", self._parameters)
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"cannot assign '{_typename(param)}' object to parameter '{name}' "
                            "(dtrain.nn.Parameter or None required)")
        self._parameters[name] = param

    def register_buffer(self, name, tensor, persistent=True):
        """Add a tensor that is state but not a parameter (e.g. BatchNorm's running mean).
        Non-persistent buffers are left out of ``state_dict``.

        >>> self.register_buffer("running_mean", dtrain.zeros(16))
        """
        if "_buffers" not in self.__dict__:
            raise AttributeError("cannot assign buffer before Module.__init__() call")
        self._check_name(name, "buffer", self._buffers)
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"cannot assign '{_typename(tensor)}' object to buffer '{name}' "
                            "(dtrain Tensor or None required)")
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent_buffers_set.discard(name)
        else:
            self._non_persistent_buffers_set.add(name)

    def add_module(self, name, module):
        """Add a child module (or None) as attribute ``name``.

        >>> self.add_module("fc", nn.Linear(4, 2))
        """
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{_typename(module)} is not a Module subclass")
        if not isinstance(name, str):
            raise TypeError(f"module name should be a string. Got {_typename(name)}")
        if hasattr(self, name) and name not in self._modules:
            raise KeyError(f"attribute '{name}' already exists")
        if "." in name:
            raise KeyError(f'module name can\'t contain ".", got: {name}')
        if name == "":
            raise KeyError('module name can\'t be empty string ""')
        self._modules[name] = module

    register_module = add_module

    def get_submodule(self, target):
        """The submodule at a dotted path such as ``"layer1.0"``. >>> model.get_submodule("0")"""
        mod = self
        for item in target.split(".") if target else ():
            if not hasattr(mod, item):
                raise AttributeError(f"{type(mod).__name__} has no attribute `{item}`")
            mod = getattr(mod, item)
            if not isinstance(mod, Module):
                raise AttributeError(f"`{item}` is not an nn.Module")
        return mod

    def _owner(self, target):
        """(the submodule that holds the last name of a dotted path, that name), checked."""
        module_path, _, name = target.rpartition(".")
        mod = self.get_submodule(module_path)
        if not hasattr(mod, name):
            raise AttributeError(f"{type(mod).__name__} has no attribute `{name}`")
        return mod, name

    def get_parameter(self, target):
        """The Parameter at a dotted path such as ``"layer1.0.weight"``.
        >>> model.get_parameter("0.weight")"""
        mod, name = self._owner(target)
        param = getattr(mod, name)
        if not isinstance(param, Parameter):
            raise AttributeError(f"`{name}` is not an nn.Parameter")
        return param

    def get_buffer(self, target):
        """The buffer at a dotted path such as ``"bn.running_mean"``.
        >>> model.get_buffer("bn.running_mean")"""
        mod, name = self._owner(target)
        if name not in mod._buffers:
            raise AttributeError(f"`{name}` is not a buffer")
        return getattr(mod, name)

    # --- traversal --------------------------------------------------------------------------
    def named_modules(self, memo=None, prefix="", remove_duplicate=True):
        """Yield (dotted name, module) for this module and every descendant, once each.
        >>> [name for name, _ in model.named_modules()]"""
        if memo is None:
            memo = set()
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, child in self._modules.items():
            if child is not None:
                sub = f"{prefix}.{name}" if prefix else name
                yield from child.named_modules(memo, sub, remove_duplicate)

    def modules(self):
        """Yield this module and every descendant, once each.
        >>> n_linear = sum(isinstance(m, nn.Linear) for m in model.modules())"""
        for _, m in self.named_modules():
            yield m

    def named_children(self):
        """Yield (name, module) for each direct child, once each.
        >>> for name, child in model.named_children(): print(name)"""
        seen = set()
        for name, child in self._modules.items():
            if child is not None and id(child) not in seen:
                seen.add(id(child))
                yield name, child

    def children(self):
        """Yield each direct child module, once. >>> list(model.children())"""
        for _, m in self.named_children():
            yield m

    def _named_members(self, store, prefix, recurse, remove_duplicate=True):
        seen = set()
        mods = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) if recurse \
            else [(prefix, self)]
        for mod_prefix, mod in mods:
            for name, value in getattr(mod, store).items():
                if value is None or id(value) in seen:
                    continue
                if remove_duplicate:
                    seen.add(id(value))
                yield (f"{mod_prefix}.{name}" if mod_prefix else name), value

    def named_parameters(self, prefix="", recurse=True, remove_duplicate=True):
        """Yield (dotted name, Parameter), e.g. ``("layer1.0.weight", ...)``.
        >>> {name: p.shape for name, p in model.named_parameters()}"""
        return self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse=True):
        """Yield every parameter once (shared ones are not repeated).
        >>> opt = dtrain.optim.SGD(model.parameters(), lr=0.1)"""
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix="", recurse=True, remove_duplicate=True):
        """Yield (dotted name, buffer), e.g. ``("bn.running_mean", ...)``.
        >>> [name for name, _ in model.named_buffers()]"""
        return self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse=True):
        """Yield every buffer once. >>> n = sum(b.numel() for b in model.buffers())"""
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    # --- modes and conversion ---------------------------------------------------------------
    def train(self, mode=True):
        """Set training mode (Dropout drops, BatchNorm uses batch statistics) on this module
        and, through their own ``train``, on its children.

        >>> model.train()
        """
        if not isinstance(mode, bool):
            raise ValueError("training mode is expected to be boolean")
        self.training = mode
        for module in self.children():
            module.train(mode)
        return self

    def eval(self):
        """Set evaluation mode; same as ``train(False)``. >>> model.eval()"""
        return self.train(False)

    def requires_grad_(self, requires_grad=True):
        """Set ``requires_grad`` on every parameter; returns self.
        >>> backbone.requires_grad_(False)   # freeze it"""
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none=True):
        """Reset every parameter's gradient (to None by default, as in torch).
        >>> model.zero_grad()"""
        for p in self.parameters():
            if p.grad is not None:
                if set_to_none:
                    p.grad = None
                else:
                    p.grad.detach_()
                    p.grad.zero_()

    def apply(self, fn):
        """Call ``fn(module)`` on every submodule (children first) and on self; returns self.
        >>> model.apply(lambda m: print(type(m).__name__))"""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    def _apply(self, convert):
        """Convert every parameter's and buffer's storage in place, keeping the objects (and
        the gradients' objects, as torch's ``param.data = ...``)."""
        with no_grad():
            for m in self.modules():
                for store in (m._parameters, m._buffers):
                    for t in store.values():
                        if t is not None:
                            t.data = convert(t)
                            if t._grad is not None:
                                t._grad.data = convert(t._grad)
        return self

    def to(self, *args, **kwargs):
        """Cast floating-point parameters and buffers to a dtype (the device must be "cpu"), in
        place; returns self. >>> model.to(dtrain.float64)"""
        dtype = kwargs.pop("dtype", None)
        _dtypes.check_device(kwargs.pop("device", None))
        kwargs.pop("non_blocking", None)
        for a in args:
            if isinstance(a, Tensor):
                dtype = a.dtype
            elif isinstance(a, (_dtypes.dtype, np.dtype, type)):
                dtype = a
            else:
                _dtypes.check_device(a)
        if dtype is None:
            return self
        dtype = _dtypes.to_dtype(dtype)
        if not dtype.is_floating_point:
            raise TypeError(f"nn.Module.to only accepts floating point or complex dtypes, but got "
                            f"desired dtype={dtype}")
        return self._apply(lambda t: t.to(dtype) if t.is_floating_point() else t)

    def float(self):
        """``self.to(dtrain.float32)``. >>> model.float()"""
        return self.to(_dtypes.float32)

    def double(self):
        """``self.to(dtrain.float64)``. >>> model.double()"""
        return self.to(_dtypes.float64)

    def half(self):
        """``self.to(dtrain.float16)``. >>> model.half()"""
        return self.to(_dtypes.float16)

    def cpu(self):
        """``self``: dtrain modules always live on the CPU. >>> model.cpu()"""
        return self

    def cuda(self, device=None):
        """Raises RuntimeError: dtrain runs on the CPU only. >>> model.cuda()  # RuntimeError"""
        _dtypes.check_device("cuda")

    # --- printing -----------------------------------------------------------------------------
    def extra_repr(self):
        """Text shown inside this module's repr; subclasses override it.
        >>> def extra_repr(self): return f"in_features={self.in_features}"
        """
        return ""

    def __repr__(self):
        lines = []
        extra = self.extra_repr()
        if extra:
            lines = extra.split("\n")
        for name, child in self._modules.items():
            text = repr(child).replace("\n", "\n  ")
            lines.append(f"({name}): {text}")
        main = type(self).__name__ + "("
        if lines:
            if len(lines) == 1 and not self._modules:
                main += lines[0]
            else:
                main += "\n  " + "\n  ".join(lines) + "\n"
        return main + ")"

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(self._parameters) | set(self._buffers)
                      | set(self._modules))


def _typename(value):
    if isinstance(value, Tensor):
        return value.type()
    return type(value).__module__ + "." + type(value).__qualname__ \
        if type(value).__module__ != "builtins" else type(value).__name__
