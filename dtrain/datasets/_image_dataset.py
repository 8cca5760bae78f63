import operator

import numpy as np

from ..creation import from_numpy

DIGIT_CLASSES = ["0 - zero", "1 - one", "2 - two", "3 - three", "4 - four", "5 - five",
                 "6 - six", "7 - seven", "8 - eight", "9 - nine"]


def image_tensors(images, labels, max_value):
    """uint8 N x H x W images and integer labels as (float32 N x 1 x H x W tensor in [0, 1],
    int64 tensor), both new arrays."""
    images = images[:, None].astype(np.float32)
    images /= max_value
    return from_numpy(images), from_numpy(labels.astype(np.int64))


class ImageDataset:
    """Grayscale images and integer labels held in memory, indexed like a torchvision dataset.

    ``data`` is the raw uint8 images (N x H x W) and ``targets`` the int64 labels (N), both as
    tensors sharing memory with the arrays given. ``dataset[i]`` is ``(image, label)``: a float32
    1 x H x W tensor scaled to [0, 1] (what torchvision's ``ToTensor`` would give) and a Python
    int, each passed through ``transform`` / ``target_transform`` when given.
    """

    classes = DIGIT_CLASSES

    def __init__(self, images, labels, max_value, split, transform=None, target_transform=None):
        self._images = images
        self._labels = labels.astype(np.int64, copy=False)
        self._max_value = max_value
        self._split = split
        self.data = from_numpy(self._images)
        self.targets = from_numpy(self._labels)
        self.transform = transform
        self.target_transform = target_transform

    def __len__(self):
        return len(self._labels)

    def __getitem__(self, index):
        index = operator.index(index)
        image = from_numpy(self._images[index][None].astype(np.float32) / self._max_value)
        target = int(self._labels[index])
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return image, target

    def as_tensors(self):
        """All images at once as a float32 N x 1 x H x W tensor in [0, 1], and the int64
        labels: the fast path for training on the whole set without per-item indexing. The
        transforms are not applied.

        >>> images, labels = dtrain.datasets.Digits(train=True).as_tensors()
        """
        return image_tensors(self._images, self._labels, self._max_value)

    def __repr__(self):
        return (f"Dataset {type(self).__name__}\n"
                f"    Number of datapoints: {len(self)}\n"
                f"    Split: {self._split}")
