import os
import shutil
import tempfile

import pytest

# torch's optimizers load its compiler, which makes a cache directory in /tmp: keep it in a
# directory of ours and remove it at the end, so the suite leaves nothing behind
_TORCH_CACHE = tempfile.mkdtemp(prefix="dtrain-tests-torch-")
os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", _TORCH_CACHE)


_pytest_tmp = []


def pytest_unconfigure(config):
    shutil.rmtree(_TORCH_CACHE, ignore_errors=True)
    for base in _pytest_tmp:
        shutil.rmtree(base, ignore_errors=True)
        for link in base.parent.glob("*-current"):  # pytest's symlink to the newest run
            link.unlink(missing_ok=True)
        try:
            base.parent.rmdir()  # pytest-of-<user>, if nothing else is in it
        except OSError:
            pass


@pytest.fixture(scope="session", autouse=True)
def _remove_pytest_tmp(tmp_path_factory):
    """Remove pytest's temporary directories when the run ends, not three runs later."""
    _pytest_tmp.append(tmp_path_factory.getbasetemp())


def pytest_configure(config):
    config.addinivalue_line("markers", "torch: compares against PyTorch (skipped without it)")


@pytest.fixture
def torch():
    """The torch module, or a clean skip where it is not installed."""
    return pytest.importorskip("torch")


@pytest.fixture(params=["dtrain", pytest.param("torch", marks=pytest.mark.torch)])
def lib(request):
    """The library under test: dtrain, then torch (skipped without it), so that each
    behaviour test also proves it encodes torch's behaviour."""
    if request.param == "dtrain":
        import dtrain
        return dtrain
    return pytest.importorskip("torch")


@pytest.fixture
def shared_memory_on(monkeypatch):
    """For tests of the same-host path: on, whatever the environment says (a test that wants
    it off passes DTRAIN_SHM=0 to its ranks)."""
    monkeypatch.setenv("DTRAIN_SHM", "1")
