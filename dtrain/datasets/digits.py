"""The 8x8 handwritten digits bundled with dtrain: the test set of the UCI "Optical Recognition of
Handwritten Digits" data (Alpaydin & Kaynak, 1998; CC BY 4.0), 1,797 images of 10 digits, pixels
0..16. Where it comes from and how digits.npz was made: PROVENANCE.md next to this file."""
from importlib import resources

import numpy as np

from ._image_dataset import ImageDataset, image_tensors

_SPLITS = (None, "train", "test")
_MAX_PIXEL = 16


def _digits_arrays(split):
    if split not in _SPLITS:
        raise ValueError(f"split must be None (all 1,797 images), 'train' (1,437) or "
                         f"'test' (360), but got {split!r}")
    with resources.files(__package__).joinpath("digits.npz").open("rb") as f, np.load(f) as z:
        images, labels, test_index = z["images"], z["labels"], z["test_index"]
    if split is None:
        return images, labels
    # NOTE: the split is stored, not drawn at load time, so no numpy version can change it.
    is_test = np.zeros(len(labels), dtype=bool)
    is_test[test_index] = True
    keep = is_test if split == "test" else ~is_test
    return images[keep], labels[keep]


def load_digits(split=None):
    """The digits as ``(images, labels)``: a float32 N x 1 x 8 x 8 tensor scaled to [0, 1] and an
    int64 tensor of digits 0..9. ``split`` is None for all 1,797 images, ``'train'`` for 1,437 or
    ``'test'`` for 360 (36 of each digit); the split is fixed and the same on every machine. The
    tensors are new each call; ``.numpy()`` gives the arrays without a copy.

    >>> images, labels = dtrain.datasets.load_digits("train")
    >>> images.shape, labels.dtype
    (dtrain.Size([1437, 1, 8, 8]), dtrain.int64)
    """
    return image_tensors(*_digits_arrays(split), _MAX_PIXEL)


class Digits(ImageDataset):
    """The bundled digits as a torchvision-style dataset: ``train=True`` gives the 1,437 training
    images, ``train=False`` the 360 test images (the same split as ``load_digits``).
    ``dataset[i]`` is ``(image, label)``, a float32 1 x 8 x 8 tensor in [0, 1] and an int;
    ``.data`` holds the raw uint8 pixels (0..16) and ``.targets`` the int64 labels. Unlike
    torchvision there is no PIL step: ``transform`` receives the tensor.

    >>> train = dtrain.datasets.Digits(train=True)
    >>> image, label = train[0]
    >>> len(train), image.shape
    (1437, dtrain.Size([1, 8, 8]))
    """

    def __init__(self, train=True, transform=None, target_transform=None):
        split = "train" if train else "test"
        super().__init__(*_digits_arrays(split), max_value=_MAX_PIXEL, split=split.capitalize(),
                         transform=transform, target_transform=target_transform)
