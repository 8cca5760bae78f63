import pytest


def pytest_configure(config):
    config.addinivalue_line("markers", "torch: compares against PyTorch (skipped without it)")


@pytest.fixture
def torch():
    """The torch module, or a clean skip where it is not installed."""
    return pytest.importorskip("torch")
