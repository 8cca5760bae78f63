"""Tensor: one numpy array plus what autograd needs (requires_grad, grad, grad_fn, versions)."""
import warnings
import weakref

import numpy as np

from . import _dtypes
from ._dtypes import CPU, check_device, from_np, to_dtype
from .autograd import function as _function
from .autograd import grad_mode as _grad_mode


class Size(tuple):
    """A tensor's shape: a tuple that prints like ``torch.Size``.

    >>> dtrain.zeros(2, 3).shape
    dtrain.Size([2, 3])
    """

    def __repr__(self):
        return f"dtrain.Size({list(self)})"

    def numel(self):
        n = 1
        for s in self:
            n *= s
        return n


class RemovableHandle:
    """Returned by hook registration; ``remove()`` unregisters the hook."""

    def __init__(self, hooks, hook):
        self._hooks = weakref.ref(hooks)
        self._hook = hook

    def remove(self):
        hooks = self._hooks()
        if hooks is not None and self._hook in hooks:
            hooks.remove(self._hook)


_TYPE_NAMES = {"float32": "FloatTensor", "float64": "DoubleTensor", "float16": "HalfTensor",
               "int64": "LongTensor", "int32": "IntTensor", "int16": "ShortTensor",
               "int8": "CharTensor", "uint8": "ByteTensor", "bool": "BoolTensor"}


class Tensor:
    """An n-dimensional array with autograd, shaped like ``torch.Tensor``.

    ``Tensor(data)`` builds a float tensor from data and ``Tensor(2, 3)`` an uninitialised one,
    as in torch; prefer ``dtrain.tensor(data)``, which infers the dtype.

    >>> x = dtrain.tensor([[1., 2.], [3., 4.]], requires_grad=True)
    >>> (x * x).sum().backward()
    >>> x.grad
    tensor([[2., 4.],
            [6., 8.]])
    """

    __slots__ = ("_data", "_requires_grad", "grad_fn", "_grad", "_version_counter",
                 "__dict__", "__weakref__")
    # rarely set attributes live in __dict__ and default to these class values
    _base = None
    _hooks = None
    _post_hooks = None
    _accum_node = None
    _retains_grad = False
    _view_version = 0

    __array_ufunc__ = None  # numpy defers to our reflected operators: np.float32(2) * t is a Tensor

    def __init__(self, *args, dtype=None, device=None):
        check_device(device)
        dt = to_dtype(dtype).np if dtype is not None else _dtypes.get_default_dtype().np
        if len(args) == 1 and not isinstance(args[0], (int, np.integer)):
            data = args[0]._data if isinstance(args[0], Tensor) else args[0]
            arr = np.array(data, dtype=dt)
        else:
            shape = args[0] if len(args) == 1 and isinstance(args[0], tuple) else args
            arr = np.empty(tuple(int(s) for s in shape), dtype=dt)
        self._data = arr
        self._requires_grad = False
        self.grad_fn = None
        self._grad = None
        self._version_counter = [0]

    @classmethod
    def _make(cls, arr):
        t = object.__new__(cls)
        t._data = arr if type(arr) is np.ndarray else np.asarray(arr)
        t._requires_grad = False
        t.grad_fn = None
        t._grad = None
        t._version_counter = [0]
        return t

    def __reduce__(self):
        return (_rebuild, (self._data, self._requires_grad))

    # --- metadata ---------------------------------------------------------------------------
    @property
    def shape(self):
        return Size(self._data.shape)

    def size(self, dim=None):
        """The shape, or the length of dim ``dim``. >>> x.size(); x.size(-1)"""
        if dim is None:
            return Size(self._data.shape)
        return self._data.shape[_dim(dim, self._data.ndim)]

    def dim(self):
        """The number of dims (``ndimension`` is an alias). >>> dtrain.zeros(2, 3).dim()"""
        return self._data.ndim

    ndimension = dim

    @property
    def ndim(self):
        return self._data.ndim

    def numel(self):
        """The number of elements (``nelement`` is an alias). >>> dtrain.zeros(2, 3).numel()"""
        return self._data.size

    nelement = numel

    def element_size(self):
        """Bytes per element. >>> dtrain.zeros(1, dtype=dtrain.float64).element_size()"""
        return self._data.itemsize

    @property
    def dtype(self):
        return from_np(self._data.dtype)

    @property
    def device(self):
        return CPU

    is_cuda = False

    def is_floating_point(self):
        """True for float16/32/64 tensors. >>> dtrain.arange(3).is_floating_point()"""
        return self._data.dtype.kind == "f"

    def is_contiguous(self, memory_format=None):
        """True if the elements lie in row-major order without gaps. >>> x.t().is_contiguous()"""
        return self._data.flags.c_contiguous

    def stride(self, dim=None):
        """Steps in elements between neighbours along each dim (or along ``dim``).
        >>> dtrain.zeros(2, 3).stride()"""
        strides = tuple(s // self._data.itemsize for s in self._data.strides)
        return strides if dim is None else strides[_dim(dim, self._data.ndim)]

    def data_ptr(self):
        """The address of the first element. >>> x[1:].data_ptr() > x.data_ptr()"""
        return self._data.ctypes.data

    def type(self, dtype=None):
        """The legacy type name (e.g. "dtrain.FloatTensor"), or ``self.to(dtype)`` given one.
        >>> dtrain.zeros(1).type()"""
        if dtype is None:
            return f"dtrain.{_TYPE_NAMES[self.dtype.name]}"
        return self.to(dtype)

    @property
    def _version(self):
        return self._version_counter[0]

    def __len__(self):
        if self._data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._data.shape[0]

    def __iter__(self):
        if self._data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self._data.shape[0]))

    def __hash__(self):
        return id(self)

    # --- conversion -------------------------------------------------------------------------
    def item(self):
        """The value of a one-element tensor as a Python number. >>> loss.item()"""
        if self._data.size != 1:
            raise RuntimeError(f"a Tensor with {self._data.size} elements cannot be converted "
                               "to Scalar")
        return self._data.item()

    def tolist(self):
        """The data as nested Python lists. >>> dtrain.eye(2).tolist()"""
        return self._data.tolist()

    def numpy(self, force=False):
        """The numpy array itself (no copy: writes show in the tensor); refuses tensors that
        require grad unless ``force``. >>> x.detach().numpy()"""
        if self._requires_grad and not force:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use "
                               "tensor.detach().numpy() instead.")
        return self._data

    def __array__(self, dtype=None, copy=None):
        return self._data if dtype is None else self._data.astype(dtype, copy=False)

    def _scalar(self, kind):
        if self._data.size != 1:
            raise ValueError("only one element tensors can be converted to Python scalars")
        return kind(self._data.reshape(()))

    def __float__(self):
        return self._scalar(float)

    def __int__(self):
        return self._scalar(int)

    def __bool__(self):
        if self._data.size != 1:
            raise RuntimeError("Boolean value of Tensor with more than one value is ambiguous")
        return bool(self._data.reshape(()))

    def __index__(self):
        if self._data.dtype.kind not in "iub" or self._data.size != 1:
            raise TypeError("only integer tensors of a single element can be converted to an "
                            "index")
        return int(self._data.reshape(()))

    # --- autograd ---------------------------------------------------------------------------
    @property
    def requires_grad(self):
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, flag):
        flag = bool(flag)
        if self.grad_fn is not None and not flag:
            raise RuntimeError("you can only change requires_grad flags of leaf variables. If you "
                               "want to use a computed variable in a subgraph that doesn't "
                               "require differentiation use var_no_grad = var.detach().")
        if flag and self._data.dtype.kind != "f":
            raise RuntimeError("only Tensors of floating point and complex dtype can require "
                               f"gradients (got {self.dtype})")
        self._requires_grad = flag

    def requires_grad_(self, requires_grad=True):
        """Set ``requires_grad`` in place; returns self. >>> w = dtrain.zeros(3).requires_grad_()"""
        self.requires_grad = requires_grad
        return self

    @property
    def grad(self):
        if self._grad is None and self.grad_fn is not None and not self._retains_grad:
            warnings.warn("The .grad attribute of a Tensor that is not a leaf Tensor is being "
                          "accessed. Its .grad attribute won't be populated during "
                          "autograd.backward(). If you indeed want the .grad field to be "
                          "populated for a non-leaf Tensor, use .retain_grad() on the non-leaf "
                          "Tensor. If you access the non-leaf Tensor by mistake, make sure you "
                          "access the leaf Tensor instead.", UserWarning, stacklevel=2)
        return self._grad

    @grad.setter
    def grad(self, value):
        if value is not None:
            if not isinstance(value, Tensor):
                raise TypeError(f"assigned grad expected to be a Tensor or None but got "
                                f"{type(value).__name__}")
            if value._data.shape != self._data.shape:
                raise RuntimeError(f"assigned grad has data of a different size: "
                                   f"{Size(value._data.shape)} vs {Size(self._data.shape)}")
            if value._data.dtype != self._data.dtype:
                raise RuntimeError(f"assigned grad has data of a different type: "
                                   f"{value.dtype} vs {self.dtype}")
        self._grad = value

    @property
    def is_leaf(self):
        return self.grad_fn is None

    @property
    def retains_grad(self):
        return self._retains_grad

    @property
    def data(self):
        """This tensor's storage without autograd: changes to it are not tracked."""
        return Tensor._make(self._data)

    @data.setter
    def data(self, value):
        self._data = value._data if isinstance(value, Tensor) else np.asarray(value)

    def _grad_node(self):
        fn = self.grad_fn
        if fn is not None:
            if self._base is not None and self._view_version != self._version_counter[0]:
                from .ops.views import refresh
                fn = refresh(self)  # the base changed in place since this view was made
            return fn
        node = self._accum_node
        if node is None:
            node = self._accum_node = _function.AccumulateGrad(self)
        return node

    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
        """Accumulate d(self)/d(leaf) into each leaf's ``.grad``. ``self`` must be a scalar
        unless ``gradient`` (of self's shape) is given.

        >>> loss.backward()
        """
        from . import autograd
        autograd.backward(self, gradient, retain_graph, create_graph, inputs)

    def detach(self):
        """A tensor sharing this one's storage (and version counter) but outside the graph.
        >>> y.detach().numpy()"""
        t = Tensor._make(self._data)
        t._version_counter = self._version_counter
        return t

    def detach_(self):
        """Take this tensor out of the graph, in place (it becomes a leaf). >>> h.detach_()"""
        if self._base is not None and self._base._requires_grad:
            raise RuntimeError("Can't detach views in-place. Use detach() instead.")
        self.grad_fn = None
        self._requires_grad = False
        return self

    def retain_grad(self):
        """Keep ``.grad`` for this non-leaf tensor during backward.
        >>> h = x * 2; h.retain_grad(); h.sum().backward(); h.grad"""
        if not self._requires_grad:
            raise RuntimeError("can't retain_grad on Tensor that has requires_grad=False")
        if self.grad_fn is None or self._retains_grad:
            return
        ref = weakref.ref(self)

        def store(grad):
            t = ref()
            if t is not None:
                if t._grad is None:
                    t._grad = Tensor._make(np.array(grad._data, copy=True))
                else:
                    t._grad._data += grad._data
        self._node_hooks().append(store)
        self._retains_grad = True

    def _node_hooks(self):
        fn = self.grad_fn
        if fn._pre_hooks is None:
            fn._pre_hooks = _HookList()
        return fn._pre_hooks

    def register_hook(self, hook):
        """Call ``hook(grad)`` when this tensor's gradient is computed; a returned tensor
        replaces the gradient. Returns a handle with ``remove()``.

        >>> h = x.register_hook(lambda g: g * 2)
        """
        if not self._requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        if self.grad_fn is None:
            if self._hooks is None:
                self._hooks = _HookList()
            hooks = self._hooks
        else:
            hooks = self._node_hooks()
        hooks.append(hook)
        return RemovableHandle(hooks, hook)

    def register_post_accumulate_grad_hook(self, hook):
        """Call ``hook(tensor)`` after a leaf's ``.grad`` has been updated in backward.
        DDP uses it to start communication while backward goes on.

        >>> h = param.register_post_accumulate_grad_hook(lambda p: print(p.grad.norm()))
        """
        if self.grad_fn is not None:
            raise RuntimeError("post accumulate grad hooks cannot be registered on non-leaf "
                               "tensors")
        if not self._requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        if self._post_hooks is None:
            self._post_hooks = _HookList()
        self._post_hooks.append(hook)
        return RemovableHandle(self._post_hooks, hook)

    # --- in place ---------------------------------------------------------------------------
    def _check_inplace(self):
        """torch's rules for writing into a tensor; call before any in-place change."""
        if _grad_mode._state.enabled and self._requires_grad:
            if self.grad_fn is None:
                raise RuntimeError("a leaf Variable that requires grad is being used in an "
                                   "in-place operation.")
        if not self._data.flags.writeable:
            raise RuntimeError("unsupported operation: more than one element of the written-to "
                               "tensor refers to a single memory location. Please clone() the "
                               "tensor before performing the operation.")

    def _assign(self, result):
        """Write an out-of-place ``result`` into self, in place; adopt its graph node."""
        if self._base is not None and result.grad_fn is not None:
            from .ops.views import assign_to_view
            return assign_to_view(self, result)
        self._check_inplace()
        arr = result._data
        if _dtypes._category(arr.dtype) > _dtypes._category(self._data.dtype):
            raise RuntimeError(f"result type {from_np(arr.dtype)} can't be cast to the desired "
                               f"output type {self.dtype}")
        fn = result.grad_fn
        if fn is not None and fn._saved:
            # the node may have saved our old values: keep them, since we overwrite them now
            fn._saved = tuple(a.copy() if a is self._data else a for a in fn._saved)
            fn._saved_meta = [m for m in fn._saved_meta if m[0] is not self._version_counter]
        np.copyto(self._data, arr, casting="unsafe")
        self._version_counter[0] += 1
        if fn is not None:
            self.grad_fn = fn
            self._requires_grad = True
        return self

    def _bump(self):
        self._version_counter[0] += 1
        return self

    def __repr__(self):
        from ._repr import tensor_repr
        return tensor_repr(self)

    __str__ = __repr__


class _HookList(list):
    """A list that can be weakly referenced, so a handle does not keep hooks alive."""


def _rebuild(arr, requires_grad):
    t = Tensor._make(arr)
    t._requires_grad = requires_grad
    return t


def _dim(dim, ndim):
    """Normalise a possibly negative dim, raising torch's IndexError when out of range."""
    n = max(ndim, 1)
    if not -n <= dim < n:
        raise IndexError(f"Dimension out of range (expected to be in range of [{-n}, {n - 1}], "
                         f"but got {dim})")
    return dim + n if dim < 0 else dim


_function._Tensor = Tensor
