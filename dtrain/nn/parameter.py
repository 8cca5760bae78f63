"""Parameter: a Tensor that a Module registers as one of its weights."""
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
        p = Parameter(Tensor._make(self._data.copy()), self._requires_grad)
        if self._grad is not None:
            p._grad = Tensor._make(self._grad._data.copy())
        memo[id(self)] = p
        return p


def _rebuild_parameter(arr, requires_grad):
    return Parameter(_rebuild(arr, False), requires_grad)
