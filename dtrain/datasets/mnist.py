"""MNIST from IDX files the user already has. dtrain downloads nothing."""
import gzip
import math
import os
import struct
import zlib

import numpy as np

from ._image_dataset import ImageDataset

# IDX type code -> big-endian dtype (http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT")
_IDX_DTYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"),
               0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}

_FILES = {True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
          False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def read_idx(path):
    """The array stored in an IDX file (MNIST's format), gzip-compressed or not, in native byte
    order. Raises ValueError if the header is not IDX or the data does not match its shape.

    >>> labels = dtrain.datasets.read_idx("mnist/t10k-labels-idx1-ubyte.gz")
    >>> labels.shape, labels.dtype
    ((10000,), dtype('uint8'))
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise ValueError(f"{path} is gzip-compressed but cannot be decompressed ({e}); it is "
                             f"probably truncated or corrupt. Fetch the file again.") from None
    if len(raw) < 4:
        raise ValueError(f"{path} is {len(raw)} bytes long, too short for an IDX header; it is "
                         f"truncated or not an IDX file.")
    type_code, ndim = raw[2], raw[3]
    if raw[:2] != b"\0\0" or type_code not in _IDX_DTYPES or ndim == 0:
        raise ValueError(f"{path} is not an IDX file: its magic number is "
                         f"0x{int.from_bytes(raw[:4], 'big'):08X}, but IDX files start with two "
                         f"zero bytes, a type code (0x08, 0x09, 0x0B-0x0E) and a dimension count, "
                         f"e.g. 0x00000803 for MNIST images and 0x00000801 for labels.")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path} is truncated: its header declares {ndim} dimensions, which "
                         f"need {header} header bytes, but the file has {len(raw)}.")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = _IDX_DTYPES[type_code]
    expected, found = math.prod(shape) * dtype.itemsize, len(raw) - header
    if found != expected:
        problem = "is truncated" if found < expected else "has trailing bytes"
        raise ValueError(f"{path} {problem}: its header declares shape {shape} of "
                         f"{dtype.newbyteorder('=').name}, which needs {expected} data bytes, "
                         f"but it has {found}.")
    return np.frombuffer(raw, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def _find(root, name):
    # torchvision keeps its download in root/MNIST/raw; accept that layout too.
    for folder in (root, os.path.join(root, "MNIST", "raw")):
        for candidate in (name, name + ".gz"):
            path = os.path.join(folder, candidate)
            if os.path.isfile(path):
                return path
    raise FileNotFoundError(
        f"MNIST file not found: expected {os.path.join(root, name)} (or {name}.gz, or the same "
        f"under {os.path.join(root, 'MNIST', 'raw')}). dtrain does not download data: copy the "
        f"four MNIST IDX files (train-images-idx3-ubyte, train-labels-idx1-ubyte, "
        f"t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, gzipped or not) into {root}.")


class MNIST(ImageDataset):
    """MNIST read from the IDX files in ``root`` (``train-images-idx3-ubyte`` and
    ``train-labels-idx1-ubyte``, or the ``t10k-`` pair for ``train=False``; ``.gz`` works, and so
    does torchvision's ``root/MNIST/raw`` layout). ``dataset[i]`` is ``(image, label)``, a
    float32 1 x 28 x 28 tensor in [0, 1] and an int; ``.data`` holds the uint8 pixels and
    ``.targets`` the int64 labels; ``as_tensors()`` gives all images at once.

    Unlike torchvision, dtrain never downloads: ``download`` is accepted so torchvision code runs
    unchanged, and a missing file raises FileNotFoundError naming the path expected. There is no
    PIL step: ``transform`` receives the tensor.

    >>> train = dtrain.datasets.MNIST("~/data", train=True)
    >>> images, labels = train.as_tensors()      # 60000 x 1 x 28 x 28 float32, int64
    """

    def __init__(self, root, train=True, transform=None, target_transform=None, download=False):
        root = os.path.expanduser(os.fspath(root))
        image_path, label_path = (_find(root, name) for name in _FILES[bool(train)])
        images, labels = read_idx(image_path), read_idx(label_path)
        if images.dtype != np.uint8 or images.ndim != 3:
            raise ValueError(f"{image_path} holds a {images.ndim}-D {images.dtype} array; MNIST "
                             f"images are 3-D uint8 (N x 28 x 28).")
        if labels.dtype != np.uint8 or labels.ndim != 1:
            raise ValueError(f"{label_path} holds a {labels.ndim}-D {labels.dtype} array; MNIST "
                             f"labels are 1-D uint8.")
        if len(images) != len(labels):
            raise ValueError(f"{image_path} has {len(images)} images but {label_path} has "
                             f"{len(labels)} labels; the two files must come from the same split.")
        super().__init__(images, labels, max_value=255, split="Train" if train else "Test",
                         transform=transform, target_transform=target_transform)
