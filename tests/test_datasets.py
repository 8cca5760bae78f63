import gzip
import hashlib
import re
import struct
from importlib import resources

import numpy as np
import pytest

import dtrain
from dtrain.datasets import MNIST, Digits, load_digits, read_idx

DIGIT_COUNTS = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]  # as scikit-learn reports
PACKAGE = resources.files("dtrain.datasets")


# --- the bundled digits ---

def test_npz_sha256_matches_provenance():
    recorded = re.search(r"`digits\.npz` sha256: `([0-9a-f]{64})`",
                         PACKAGE.joinpath("PROVENANCE.md").read_text(encoding="utf-8"))
    assert recorded, "PROVENANCE.md must record the sha256 of digits.npz"
    assert hashlib.sha256(PACKAGE.joinpath("digits.npz").read_bytes()).hexdigest() == recorded[1]


def test_npz_contents():
    with PACKAGE.joinpath("digits.npz").open("rb") as f, np.load(f) as z:
        assert sorted(z.files) == ["images", "labels", "test_index"]
        assert z["images"].dtype == np.uint8 and z["images"].shape == (1797, 8, 8)
        assert z["images"].max() == 16
        assert z["labels"].dtype == np.uint8 and z["labels"].shape == (1797,)


@pytest.mark.parametrize("split, n", [(None, 1797), ("train", 1437), ("test", 360)])
def test_load_digits_shapes_and_dtypes(split, n):
    images, labels = load_digits(split)
    assert isinstance(images, dtrain.Tensor) and isinstance(labels, dtrain.Tensor)
    assert tuple(images.shape) == (n, 1, 8, 8) and images.dtype == dtrain.float32
    assert tuple(labels.shape) == (n,) and labels.dtype == dtrain.int64
    x = images.numpy()
    assert x.min() == 0.0 and x.max() == 1.0
    assert np.array_equal(x * 16, np.round(x * 16))  # exactly k/16: nothing but scaling


def test_digit_class_counts():
    _, labels = load_digits()
    assert np.bincount(labels.numpy()).tolist() == DIGIT_COUNTS
    assert len(labels) == sum(DIGIT_COUNTS) == 1797


def rows(images, labels):
    """Each (image, label) as bytes, sorted: the split's contents as a multiset."""
    return sorted(x.tobytes() + bytes([y]) for x, y in zip(images.numpy(), labels.numpy()))


def test_split_is_deterministic_disjoint_and_stratified():
    train, test = load_digits("train"), load_digits("test")
    again = load_digits("train")
    assert all(np.array_equal(a.numpy(), b.numpy()) for a, b in zip(train, again))
    # train and test together are exactly the whole set, each image once
    assert sorted(rows(*train) + rows(*test)) == rows(*load_digits())
    assert np.bincount(test[1].numpy()).tolist() == [36] * 10
    assert np.bincount(train[1].numpy()).tolist() == [n - 36 for n in DIGIT_COUNTS]


def test_split_indices_partition_the_rows():
    with PACKAGE.joinpath("digits.npz").open("rb") as f, np.load(f) as z:
        test_index, labels = z["test_index"], z["labels"]
    assert len(np.unique(test_index)) == 360 and test_index.max() < 1797
    train_index = np.setdiff1d(np.arange(1797), test_index)
    assert len(train_index) == 1437
    assert np.array_equal(load_digits("train")[1].numpy(), labels[train_index])
    assert np.array_equal(load_digits("test")[1].numpy(), labels[test_index])


def test_bad_split():
    with pytest.raises(ValueError, match="split must be None .* but got 'validation'"):
        load_digits("validation")


def test_digits_dataset_matches_bulk_tensors():
    for train, split in ((True, "train"), (False, "test")):
        ds = Digits(train=train)
        images, labels = load_digits(split)
        assert len(ds) == len(labels)
        image, label = ds[5]
        assert type(label) is int and label == labels.numpy()[5]
        assert tuple(image.shape) == (1, 8, 8) and image.dtype == dtrain.float32
        assert np.array_equal(image.numpy(), images.numpy()[5])
        assert np.array_equal(ds[-1][0].numpy(), images.numpy()[-1])
        assert ds.data.dtype == dtrain.uint8 and tuple(ds.data.shape) == (len(ds), 8, 8)
        assert ds.targets.dtype == dtrain.int64
        assert np.array_equal(ds.targets.numpy(), labels.numpy())
        bulk_images, bulk_labels = ds.as_tensors()
        assert np.array_equal(bulk_images.numpy(), images.numpy())
        assert np.array_equal(bulk_labels.numpy(), labels.numpy())
    assert len(ds.classes) == 10 and "Test" in repr(ds)


def test_digits_transforms():
    ds = Digits(transform=lambda x: x * 2, target_transform=lambda y: -y)
    image, label = ds[0]
    assert np.array_equal(image.numpy(), load_digits("train")[0].numpy()[0] * 2)
    assert label == -int(ds.targets.numpy()[0])
    with pytest.raises(TypeError):
        ds[1.5]
    with pytest.raises(IndexError):
        ds[len(ds)]


# --- IDX files and MNIST ---

def write_idx(path, array, type_code=0x08):
    data = struct.pack(f">BBBB{array.ndim}I", 0, 0, type_code, array.ndim, *array.shape)
    data += array.astype(array.dtype.newbyteorder(">")).tobytes()
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(data)
    return path


@pytest.fixture
def mnist_like():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (5, 4, 3), dtype=np.uint8), rng.integers(0, 10, 5, dtype=np.uint8)


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_read_idx_round_trip(tmp_path, mnist_like, suffix):
    images, labels = mnist_like
    got = read_idx(write_idx(tmp_path / f"images{suffix}", images))
    assert got.dtype == np.uint8 and got.shape == (5, 4, 3) and np.array_equal(got, images)
    got = read_idx(str(write_idx(tmp_path / f"labels{suffix}", labels)))
    assert got.dtype == np.uint8 and np.array_equal(got, labels)
    got[0] = 1  # a writable array, not a view of the file's bytes


@pytest.mark.parametrize("dtype, code", [("i1", 0x09), ("i2", 0x0B), ("i4", 0x0C), ("f4", 0x0D),
                                         ("f8", 0x0E)])
def test_read_idx_other_types_in_native_order(tmp_path, dtype, code):
    array = np.arange(-6, 6, dtype=dtype).reshape(3, 4)
    got = read_idx(write_idx(tmp_path / "a", array, code))
    assert got.dtype == np.dtype(dtype) and got.dtype.isnative and np.array_equal(got, array)


def test_read_idx_bad_magic(tmp_path):
    path = tmp_path / "bad"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(16))
    with pytest.raises(ValueError, match=r"not an IDX file: its magic number is 0x89504E47"):
        read_idx(path)
    path.write_bytes(struct.pack(">BBBBI", 0, 0, 0x07, 1, 0))  # unknown type code
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(path)
    path.write_bytes(b"\0\0")
    with pytest.raises(ValueError, match="too short"):
        read_idx(path)


def test_read_idx_truncated(tmp_path, mnist_like):
    path = write_idx(tmp_path / "images", mnist_like[0])
    whole = path.read_bytes()
    path.write_bytes(whole[:-1])
    with pytest.raises(ValueError, match=r"is truncated: .*shape \(5, 4, 3\) of uint8, which "
                                         r"needs 60 data bytes, but it has 59"):
        read_idx(path)
    path.write_bytes(whole[:10])
    with pytest.raises(ValueError, match="is truncated: its header declares 3 dimensions"):
        read_idx(path)
    path.write_bytes(whole + b"\0")
    with pytest.raises(ValueError, match="has trailing bytes"):
        read_idx(path)
    gz = tmp_path / "images.gz"
    gz.write_bytes(gzip.compress(whole)[:-12])
    with pytest.raises(ValueError, match="cannot be decompressed"):
        read_idx(gz)


def test_mnist_reads_plain_gz_and_torchvision_layout(tmp_path, mnist_like):
    images, labels = mnist_like
    write_idx(tmp_path / "train-images-idx3-ubyte", images)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", labels)
    raw = tmp_path / "tv" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    write_idx(raw / "t10k-images-idx3-ubyte.gz", images[:2])
    write_idx(raw / "t10k-labels-idx1-ubyte", labels[:2])

    train = MNIST(tmp_path, train=True)
    assert len(train) == 5 and train.data.dtype == dtrain.uint8
    assert np.array_equal(train.data.numpy(), images)
    assert np.array_equal(train.targets.numpy(), labels) and train.targets.dtype == dtrain.int64
    image, label = train[3]
    assert tuple(image.shape) == (1, 4, 3) and image.dtype == dtrain.float32
    assert np.allclose(image.numpy()[0], images[3] / 255) and label == labels[3]
    bulk, _ = train.as_tensors()
    assert tuple(bulk.shape) == (5, 1, 4, 3)

    test = MNIST(str(tmp_path / "tv"), train=False, download=True)  # present: nothing to fetch
    assert len(test) == 2 and np.array_equal(test.targets.numpy(), labels[:2])


def test_mnist_missing_file_says_no_download(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        MNIST(tmp_path, train=False)
    message = str(info.value)
    assert str(tmp_path / "t10k-images-idx3-ubyte") in message
    assert "dtrain does not download data" in message


def test_mnist_rejects_wrong_contents(tmp_path, mnist_like):
    images, labels = mnist_like
    write_idx(tmp_path / "train-images-idx3-ubyte", images)
    write_idx(tmp_path / "train-labels-idx1-ubyte", labels[:4])
    with pytest.raises(ValueError, match="has 5 images but .* has 4 labels"):
        MNIST(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte", images)
    with pytest.raises(ValueError, match="MNIST labels are 1-D uint8"):
        MNIST(tmp_path)
