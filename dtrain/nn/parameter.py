"""Parameter and Buffer: tensors that a Module registers when they are assigned to it."""
from ..tensor import Tensor, _rebuild


class Parameter(Tensor):
    """A tensor that is a module's parameter: assigning one to a Module attribute registers it.
    It shares memory with the tensor it is built from and requires grad by default.

    >>> w = dtrain.nn.Parameter(dtrain.randn(3, 4))
    >>> w.requires_grad
    True
    """

    def __new__(cls, data=None, requires_grad=True):
        if data is None:
            from ..creation import empty
            data = empty(0)
        p = cls._make(data._data)
        p.requires_grad = requires_grad
        return p

    def __init__(self, data=None, requires_grad=True):
        pass

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()

    def __reduce__(self):
        return (_rebuild_parameter, (self._data, self._requires_grad))

    def __deepcopy__(self, memo):
        # as torch's: the values and requires_grad, not the gradient
        p = Parameter(Tensor._make(self._data.copy()), self._requires_grad)
        memo[id(self)] = p
        return p


def _rebuild_parameter(arr, requires_grad):
    return Parameter(_rebuild(arr, False), requires_grad)


class _BufferMeta(type):
    def __instancecheck__(cls, instance):
        return isinstance(instance, Tensor) and getattr(instance, "_is_buffer", False)


class Buffer(metaclass=_BufferMeta):
    """Marks a tensor as a buffer: assigning it to a Module attribute registers it, as
    ``register_buffer`` would (``persistent=False`` leaves it out of ``state_dict``). Like
    torch's, it returns a plain Tensor, detached, that remembers it is a buffer.

    >>> self.running_mean = dtrain.nn.Buffer(dtrain.zeros(16))
    """

    def __new__(cls, data=None, *, persistent=True):
        if data is None:
            from ..creation import empty
            data = empty(0)
        t = data.detach().requires_grad_(data.requires_grad)
        t.persistent = persistent
        t._is_buffer = True
        return t
