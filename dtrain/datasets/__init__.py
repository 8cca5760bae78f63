"""Datasets for examples and tests, shaped like torchvision's.

``load_digits`` and ``Digits`` give the 8x8 handwritten digits that ship inside dtrain (UCI
"Optical Recognition of Handwritten Digits", Alpaydin & Kaynak 1998, CC BY 4.0; see
PROVENANCE.md next to this file): 1,797 images of 10 digits, with a fixed 1,437 / 360
train/test split that is the same on every machine. ``MNIST`` and ``read_idx`` read MNIST's IDX
files if you have them; dtrain never downloads anything.

Whole tensors at once, the fast path for a small set:

>>> import dtrain, dtrain.datasets
>>> images, labels = dtrain.datasets.load_digits("train")
>>> images.shape, images.dtype, labels.shape, labels.dtype
(dtrain.Size([1437, 1, 8, 8]), dtrain.float32, dtrain.Size([1437]), dtrain.int64)

Or a dataset indexed item by item, as a DataLoader expects:

>>> test = dtrain.datasets.Digits(train=False)
>>> image, label = test[0]
>>> len(test), image.shape, type(label)
(360, dtrain.Size([1, 8, 8]), <class 'int'>)
>>> test.data.dtype, test.targets.dtype             # raw pixels 0..16, labels
(dtrain.uint8, dtrain.int64)
"""
from .digits import Digits, load_digits
from .mnist import MNIST, read_idx

__all__ = ["Digits", "MNIST", "load_digits", "read_idx"]
