import pytest


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
