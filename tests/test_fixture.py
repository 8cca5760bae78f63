"""Replay tests/fixtures/torch_reference.json (recorded from real torch) against dtrain.

Sections replayed here: grad_fn, inplace, dtype and errors (repr belongs to test_repr.py).
Every key is evaluated exactly as tests/fixtures/make_torch_reference.py does it, with `t`
bound to the library under test: a fresh namespace of base tensors a, b, c, m, v, s, bm, bn, p
(built after manual_seed(0)); keys that compile as an expression are eval'd, others exec'd.
make_torch_reference.py imports torch at module level, so its small evaluator is
re-implemented here instead of imported.

Every test also runs with `t` = torch (skipped without torch, or when the installed torch is not
the version that recorded the fixture): that proves the evaluator reproduces the recording, so
a dtrain failure is a real difference from torch.
"""
import json
import os
import re
import warnings

import pytest

import dtrain
from fixtures.reference_eval import run
from helpers import gname

FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures",
                       "torch_reference.json")
with open(FIXTURE) as _f:
    REF = json.load(_f)


def dtype_name(d):
    return str(d).rsplit(".", 1)[-1]  # "torch.float32" / "dtrain.float32" -> "float32"


EVAL = {
    "grad_fn": lambda t, k: gname(run(t, k)[0]),
    "inplace": lambda t, k: gname(run(t, k)[1]["y"]),
    "dtype": lambda t, k: dtype_name(run(t, k)[0].dtype),
    "errors": lambda t, k: run(t, k) and None,
}


def outcome(t, section, key):
    """What the fixture would record for `key` with library `t`: a value or (type, message)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return EVAL[section](t, key)
        except Exception as e:  # noqa: BLE001 - recording any error is the point
            return (type(e).__name__, str(e))


# --- how dtrain's errors are compared with torch's -------------------------------------------
# Default: same exception type, and dtrain's message equals torch's with "torch" replaced by
# "dtrain". Entries listed below are deliberately compared differently; each says why.

# torch raises AssertionError for CUDA on a CPU build; dtrain is CPU-only by design and raises a
# RuntimeError that says so (the message must mention cpu/CPU).
CUDA_ENTRIES = {"t.zeros(2, device='cuda')"}

# Key parts: the message must match every regex (searched in dtrain's message). Used where
# torch's text carries incidental detail that dtrain words differently but still names the
# same problem (and, where torch gives them, the same sizes/dims).
KEY_PARTS = {
    # torch says "of dimension 2", dtrain "tensor is 2-dimensional, but 3 were indexed"
    "a[0, 0, 0]": [r"too many indices for tensor", r"2"],
    # the problem and the versions are the key; torch's node name ("output 0 of Add") and its
    # anomaly-detection hint are torch internals
    "y = a * 1; z = y * y; y.add_(1); z.sum().backward()": [
        r"^one of the variables needed for gradient computation has been modified by an "
        r"inplace operation", r"\[2, 3\]", r"is at version 1; expected version 0 instead"],
    "y = a.exp(); y.add_(1); y.sum().backward()": [
        r"^one of the variables needed for gradient computation has been modified by an "
        r"inplace operation", r"\[2, 3\]", r"is at version 1; expected version 0 instead"],
    # torch names the dtype by its legacy type name "Long"; dtrain says int64
    "t.tensor([1, 2]).mean()": [
        r"^mean\(\): could not infer output dtype\. Input dtype must be either a floating "
        r"point or complex dtype", r"Long|int64"],
    # ragged nested list: both name a sequence of the wrong length
    "t.tensor([[1, 2], [3]])": [r"sequence", r"length"],
    # unused input: torch names it by index, dtrain says "One of"; the hint is the key
    "t.autograd.grad((a * a).sum(), c)": [
        r"appears to not have been used in the graph\. Set allow_unused=True"],
    # negative size: torch's generic creation message is "Trying to create tensor with
    # negative dimension -1: [-1]" (torch.empty(-1)); zeros has its own wording
    "t.zeros(-1)": [r"non-negative|negative dimension"],
    # torch words these two differently itself ("only ... floating point dtype" for
    # requires_grad_, "Only ... floating point and complex dtype" for the constructors)
    "t.tensor([1, 2]).requires_grad_()": [
        r"(?i)^only Tensors of floating point.* can require gradients"],
    "t.ones(2, dtype=t.int64, requires_grad=True)": [
        r"(?i)^only Tensors of floating point and complex dtype can require gradients"],
    "t.tensor([1, 2], requires_grad=True)": [
        r"(?i)^only Tensors of floating point and complex dtype can require gradients"],
    # boolean mask of the wrong length: both name the mask/boolean index, and sizes 2 and 3
    "a[t.tensor([True, False, True])]": [r"mask|boolean", r"2", r"3"],
    # y[0] = 5 on a leaf: torch reports the view y[0]; dtrain the leaf itself
    "y = t.ones(2, requires_grad=True); y[0] = 5": [
        r"leaf Variable that requires grad is being used in an in-place operation"],
    # matrix @ vector of wrong size: both must name the 3x4 matrix and the mismatch
    "t.mv(m, c)": [r"size mismatch|cannot be multiplied", r"3x4"],
    # bmm with a 2-D second operand: the key is that a 3-D tensor was expected
    "t.bmm(bm, m)": [r"3-?D"],
    # batch dims 5 and 4 do not broadcast
    "bm @ t.randn(4, 3, 4)": [r"must match|broadcast", r"5", r"4"],
    # a str is not valid tensor data: both name the type
    "t.tensor('x')": [r"str"],
    # int @ float vectors: the key is "same dtype"
    "t.tensor([1, 2]) @ t.tensor([1., 2.])": [r"same dtype"],
}


def check_error(t, key, got, expected):
    exp_type, exp_msg = expected
    assert isinstance(got, tuple), f"{key!r}: torch raises {exp_type}({exp_msg!r}), got {got!r}"
    got_type, got_msg = got
    if t is not dtrain:  # replaying with torch itself: must reproduce the recording exactly
        assert (got_type, got_msg) == (exp_type, exp_msg)
        return
    if key in CUDA_ENTRIES:
        assert got_type == "RuntimeError", f"{key!r}: expected RuntimeError, got {got_type}"
        assert "cpu" in got_msg.lower(), f"{key!r}: message should say CPU-only: {got_msg!r}"
        return
    assert got_type == exp_type, (f"{key!r}: torch raises {exp_type}({exp_msg!r}), dtrain "
                                  f"raises {got_type}({got_msg!r})")
    if key in KEY_PARTS:
        for part in KEY_PARTS[key]:
            assert re.search(part, got_msg), (f"{key!r}: message {got_msg!r} lacks {part!r} "
                                              f"(torch: {exp_msg!r})")
    else:
        assert got_msg == exp_msg.replace("torch", "dtrain"), (
            f"{key!r}: message differs\n  torch:  {exp_msg!r}\n  dtrain: {got_msg!r}")


def check(t, section, key):
    expected = REF[section][key]
    got = outcome(t, section, key)
    if section == "errors":
        if expected is None:
            assert got is None, f"{key!r}: torch raises nothing, got {got!r}"
        else:
            check_error(t, key, got, expected)
    elif isinstance(expected, list):  # torch raised for this non-error entry
        check_error(t, key, got, expected)
    else:
        if section == "dtype":
            expected = dtype_name(expected)
        assert got == expected, f"{key!r}: torch gives {expected!r}, got {got!r}"


# --- parametrization ---------------------------------------------------------------------------

def _lib(name):
    if name == "dtrain":
        return dtrain
    torch = pytest.importorskip("torch")
    if torch.__version__ != REF["torch_version"]:
        pytest.skip(f"fixture recorded with torch {REF['torch_version']}, "
                    f"installed {torch.__version__}")
    return torch


@pytest.fixture(params=["dtrain", pytest.param("torch", marks=pytest.mark.torch)])
def t(request):
    return _lib(request.param)


def _params(section):
    return [pytest.param(k, id=f"{i:03d}:{k}") for i, k in enumerate(REF[section])]


@pytest.mark.parametrize("key", _params("grad_fn"))
def test_grad_fn(t, key):
    check(t, "grad_fn", key)


@pytest.mark.parametrize("key", _params("inplace"))
def test_inplace(t, key):
    check(t, "inplace", key)


@pytest.mark.parametrize("key", _params("dtype"))
def test_dtype(t, key):
    check(t, "dtype", key)


@pytest.mark.parametrize("key", _params("errors"))
def test_errors(t, key):
    check(t, "errors", key)


def test_every_key_part_entry_is_a_recorded_error():
    """The overrides above must name real error entries (guards against stale keys)."""
    recorded = {k for sec in ("errors", "dtype") for k, v in REF[sec].items()
                if isinstance(v, list)}
    assert set(KEY_PARTS) <= recorded
    assert CUDA_ENTRIES <= recorded
