"""Named (values, indices) results of max/min/sort/topk along a dim, printed like torch's."""
from collections import namedtuple


def _make(name):
    base = namedtuple(name, ["values", "indices"])

    def __repr__(self):
        return f"dtrain.return_types.{name}(\nvalues={self.values!r},\nindices={self.indices!r})"
    return type(name, (base,), {"__slots__": (), "__repr__": __repr__,
                                "__module__": "dtrain.return_types"})


max = _make("max")
min = _make("min")
sort = _make("sort")
topk = _make("topk")
