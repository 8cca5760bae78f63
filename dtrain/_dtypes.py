"""dtypes, devices, and torch's type-promotion rules on top of numpy."""
import numpy as np


class dtype:
    """A tensor element type, named and compared like ``torch.dtype``.

    >>> dtrain.float32.is_floating_point
    True
    """

    __slots__ = ("name", "np", "itemsize", "is_floating_point", "is_signed", "_category")

    def __init__(self, name, np_dtype, category):
        self.name = name
        self.np = np.dtype(np_dtype)
        self.itemsize = self.np.itemsize
        self.is_floating_point = category == 2
        self.is_signed = self.np.kind in "fi"
        self._category = category  # 0 bool, 1 integer, 2 floating

    def __repr__(self):
        return f"dtrain.{self.name}"

    def __reduce__(self):
        return (_by_name, (self.name,))


bool_ = dtype("bool", np.bool_, 0)
uint8 = dtype("uint8", np.uint8, 1)
int8 = dtype("int8", np.int8, 1)
int16 = dtype("int16", np.int16, 1)
int32 = dtype("int32", np.int32, 1)
int64 = dtype("int64", np.int64, 1)
float16 = dtype("float16", np.float16, 2)
float32 = dtype("float32", np.float32, 2)
float64 = dtype("float64", np.float64, 2)

ALL = (bool_, uint8, int8, int16, int32, int64, float16, float32, float64)
_FROM_NP = {d.np: d for d in ALL}
_NAMES = {d.name: d for d in ALL}


def _by_name(name):
    return _NAMES[name]


_default_float = float32


def set_default_dtype(d):
    """Set the dtype that Python floats and ``rand``/``zeros`` produce (float32 unless changed).

    >>> dtrain.set_default_dtype(dtrain.float64)
    """
    global _default_float
    d = to_dtype(d)
    if not d.is_floating_point:
        raise TypeError(f"only floating-point types are supported as the default type, got {d}")
    _default_float = d


def get_default_dtype():
    """The default floating dtype (float32 unless changed by ``set_default_dtype``).

    >>> dtrain.get_default_dtype()
    dtrain.float32
    """
    return _default_float


def to_dtype(d):
    """Accept a dtrain dtype, a numpy dtype, or a dtype name; return the dtrain dtype."""
    if isinstance(d, dtype):
        return d
    if d is float:
        return _default_float
    if d is int:
        return int64
    if d is bool:
        return bool_
    if isinstance(d, str) and d in _NAMES:
        return _NAMES[d]
    try:
        found = _FROM_NP.get(np.dtype(d))
    except TypeError:
        found = None
    if found is None:
        raise TypeError(f"dtype {d!r} is not supported by dtrain; use one of "
                        f"{', '.join(x.name for x in ALL)}")
    return found


def from_np(np_dtype):
    """The dtrain dtype of a numpy array's dtype, with a clear error for unsupported ones."""
    d = _FROM_NP.get(np_dtype)
    if d is None:
        raise TypeError(f"can't convert np.ndarray of type numpy.{np_dtype}. The only supported "
                        f"types are: {', '.join(x.name for x in ALL)}.")
    return d


# --- type promotion ------------------------------------------------------------------------
# torch ranks operands: tensors with dims > zero-dim tensors > Python scalars. A lower-ranked
# operand only changes the result when its category (bool < int < float) is higher.

def _promote_pair(a, b):
    """Promote two numpy dtypes the way torch.promote_types does: across categories the higher
    category's dtype wins (numpy would widen int64 + float16 to float64; torch keeps float16)."""
    ca, cb = _category(a), _category(b)
    if ca != cb:
        return a if ca > cb else b
    return np.promote_types(a, b)


_pair_cache = {}


def result_type(dims, zerodims, scalar_cat):
    """Result numpy dtype from dtypes of dimensioned tensors, of 0-d tensors, and the highest
    category of Python scalars (-1 if none)."""
    key = (dims, zerodims, scalar_cat)
    hit = _pair_cache.get(key)
    if hit is not None:
        return hit
    out = None
    for group in (dims, zerodims):
        if not group:
            continue
        g = group[0]
        for d in group[1:]:
            g = _promote_pair(g, d)
        if out is None:
            out = g
        elif _category(g) > _category(out):
            out = g
    if scalar_cat >= 0 and (out is None or scalar_cat > _category(out)):
        out = (np.dtype(np.bool_), np.dtype(np.int64), _default_float.np)[scalar_cat]
    _pair_cache[key] = out
    return out


def _category(np_dtype):
    k = np_dtype.kind
    return 0 if k == "b" else 2 if k == "f" else 1


def scalar_category(x):
    if isinstance(x, (bool, np.bool_)):
        return 0
    if isinstance(x, (int, np.integer)):
        return 1
    if isinstance(x, (float, np.floating)):
        return 2
    raise TypeError(f"expected a Tensor or a Python number, got {type(x).__name__}")


def is_float(np_dtype):
    return np_dtype.kind == "f"


class device:
    """A device, named like ``torch.device``. dtrain runs on the CPU only.

    >>> dtrain.device("cpu")
    device(type='cpu')
    """

    __slots__ = ("type", "index")

    def __init__(self, type="cpu", index=None):
        if isinstance(type, device):
            type, index = type.type, type.index
        type = str(type)
        if ":" in type:
            type, idx = type.split(":", 1)
            index = int(idx)
        self.type = type
        self.index = index

    def __eq__(self, other):
        if isinstance(other, str):
            other = device(other)
        return isinstance(other, device) and (self.type, self.index) == (other.type, other.index)

    def __hash__(self):
        return hash((self.type, self.index))

    def __repr__(self):
        if self.index is None:
            return f"device(type='{self.type}')"
        return f"device(type='{self.type}', index={self.index})"

    def __str__(self):
        return self.type if self.index is None else f"{self.type}:{self.index}"


CPU = device("cpu")


def check_device(d):
    """Return the cpu device, or raise a clear error for any other device."""
    if d is None:
        return CPU
    d = d if isinstance(d, device) else device(d)
    if d.type != "cpu":
        raise RuntimeError(f"dtrain runs on the CPU only, so device '{d}' is not available. "
                           "Use device='cpu' or leave the device out.")
    return CPU
