"""The code of the seed blog post "Basic of Pytorch" (shared/seed/000_a925350ab61c94e8.txt),
sections 1 (Tensor) and 2 (Autograd), run with `torch` replaced by the library under test.

Snippets are kept verbatim below and exec'd after replacing the word "torch" with the library's
module name. Every test also runs with torch itself (skipped when it is not installed), which
shows what the snippet really does in torch. Where a snippet is broken in torch (a typo such as
`x.tranpose`, `x.device()` called as a function, `z.backward()` on a non-scalar, a CUDA device
on a CPU build, `torchvision` never imported), the test asserts that the library fails the same
way (same exception type), and a second test runs what the snippet evidently meant.
"""
import importlib
import warnings

import numpy as np
import pytest

import dtrain
from helpers import dname, gname, nonleaf_grad, npy, run


def cuda_error(lib):
    """torch's CPU build raises AssertionError("Torch not compiled with CUDA enabled"); dtrain
    is CPU-only by design and raises a RuntimeError that says so."""
    if lib is dtrain:
        return RuntimeError
    if lib.cuda.is_available():
        pytest.skip("this torch has CUDA")
    return AssertionError


# === 1.1 Tensor 자료형 =============================================================================

SNIPPET_1_1 = """\
# CPU tensor
torch.x
# GPU tensor
torch.cuda.x
"""


def test_1_1_pseudo_code_attributes_do_not_exist(lib):
    # `torch.x` / `torch.cuda.x` are placeholders ("x" stands for a type name): AttributeError
    with pytest.raises(AttributeError):
        run(SNIPPET_1_1, lib)
    with pytest.raises(AttributeError):
        run("torch.cuda.x", lib)


def test_1_1_default_tensor_type_is_float(lib):
    # "default tensor : torch.FloatTensor"
    x = lib.tensor([1., 2.])
    assert x.type() == f"{lib.__name__}.FloatTensor"
    assert dname(x.dtype) == "float32"
    assert x.device.type == "cpu"
    assert x.double().type() == f"{lib.__name__}.DoubleTensor"
    assert lib.tensor([1]).type() == f"{lib.__name__}.LongTensor"


# === 1.2 torch.tensor ============================================================================

SNIPPET_1_2 = """\
device = torch.device(’cuda’)
x = torch.tensor([[1,2,3],[4,5,6]], dtype=torch.int32, device=device)

# tensor의 dtype이나 device를 바꾸는 방법
y = torch.as_tensor(x, dtype=torch.half, device='cpu')
y = x.to(device, dtype=torch.float64)

# etc
## change device
x.cpu(); x.device()

## change dtype
x.half(); x.float(); x.double()
"""


def test_1_2_snippet_as_printed_is_a_syntax_error(lib):
    # the post uses typographic quotes in torch.device(’cuda’): not Python, in any library
    with pytest.raises(SyntaxError):
        run(SNIPPET_1_2, lib)


def test_1_2_snippet_on_cuda_fails_as_in_torch(lib):
    # with the quotes fixed, torch.device('cuda') itself is fine, but creating a tensor on it
    # fails on a CPU-only build (torch: AssertionError; dtrain: RuntimeError, CPU-only)
    fixed = SNIPPET_1_2.replace("’", "'")
    with pytest.raises(cuda_error(lib)) as info:
        run(fixed, lib)
    if lib is dtrain:
        assert "cpu" in str(info.value).lower()
    device = lib.device("cuda")
    assert device.type == "cuda"
    x = lib.tensor([[1, 2, 3], [4, 5, 6]], dtype=lib.int32)
    with pytest.raises(cuda_error(lib)):
        x.to(device, dtype=lib.float64)


def test_1_2_x_device_is_not_callable(lib):
    # `x.device()`: device is an attribute in torch, so calling it is a TypeError
    fixed = SNIPPET_1_2.replace("’cuda’", "'cpu'")
    with pytest.raises(TypeError, match="not callable"):
        run(fixed, lib)


def test_1_2_snippet_on_cpu(lib):
    # what the snippet means, on the CPU and without the x.device() call
    fixed = SNIPPET_1_2.replace("’cuda’", "'cpu'").replace("x.cpu(); x.device()",
                                                          "x.cpu(); x.device")
    ns = run(fixed + "h, f, d = x.half(), x.float(), x.double()\n"
             "y1 = torch.as_tensor(x, dtype=torch.half, device='cpu')\n", lib)
    x, y, y1 = ns["x"], ns["y"], ns["y1"]
    data = [[1, 2, 3], [4, 5, 6]]
    assert dname(x.dtype) == "int32" and x.tolist() == data and x.device.type == "cpu"
    assert dname(y1.dtype) == "float16" and y1.tolist() == data
    assert dname(y.dtype) == "float64" and y.tolist() == data
    assert x.cpu() is x and x.device == lib.device("cpu")
    assert [dname(ns[k].dtype) for k in "hfd"] == ["float16", "float32", "float64"]
    assert dname(x.dtype) == "int32"  # the conversions return new tensors


def test_1_2_tensor_arguments(lib):
    # data / dtype (inferred when not given) / device / requires_grad (default False) /
    # pin_memory
    assert dname(lib.tensor([[1, 2], [3, 4]]).dtype) == "int64"
    assert dname(lib.tensor([[1., 2], [3, 4]]).dtype) == "float32"
    assert dname(lib.tensor(np.array([1., 2.])).dtype) == "float64"
    assert dname(lib.tensor([1, 2], dtype=lib.float64).dtype) == "float64"
    assert lib.tensor([1.], device="cpu").device.type == "cpu"
    assert lib.tensor([1.]).requires_grad is False
    assert lib.tensor([1.], requires_grad=True).requires_grad is True
    assert lib.tensor([1.], pin_memory=False).tolist() == [1.]


def test_1_2_underscore_means_in_place(lib):
    # "언더바가 있다면 : in_place / 언더바가 없다면 : 새로운 tensor 리턴"
    x = lib.tensor([1., 2.])
    y = x.add(1)
    assert y is not x and x.tolist() == [1., 2.] and y.tolist() == [2., 3.]
    assert x.add_(1) is x and x.tolist() == [2., 3.]
    assert x.mul_(2) is x and x.tolist() == [4., 6.]
    x.zero_()
    assert x.tolist() == [0., 0.]
    z = lib.tensor([-1., 2.])
    assert z.abs().tolist() == [1., 2.] and z.tolist() == [-1., 2.]
    z.abs_()
    assert z.tolist() == [1., 2.]


# === 1.3 Copy Tensor =============================================================================

@pytest.mark.filterwarnings("ignore:To copy construct from a tensor")
def test_1_3_new_tensor_copies(lib):
    # tensor.new_tensor(x): a tensor equal to x, not sharing memory, outside the graph
    base = lib.zeros(1, dtype=lib.float64)
    x = lib.tensor([1., 2., 3.], requires_grad=True)
    n = base.new_tensor(x)
    assert n.tolist() == [1., 2., 3.] and not n.requires_grad and n.grad_fn is None
    n[0] = 10
    assert x.tolist() == [1., 2., 3.]


def test_1_3_detach_shares_storage(lib):
    # detach(): no gradient flows; the storage is shared, so changing it changes the original
    x = lib.tensor([1., 2., 3.], requires_grad=True)
    d = x.detach()
    assert not d.requires_grad and d.grad_fn is None
    d[1] = 20
    assert x.tolist() == [1., 20., 3.]
    y = x * 2
    (y.detach() * 5 + y).sum().backward()
    assert x.grad.tolist() == [2., 2., 2.]  # the detached branch contributes nothing


def test_1_3_clone_copies(lib):
    # clone(): a copy of the contents (still in the graph)
    x = lib.tensor([1., 2.], requires_grad=True)
    c = x.clone()
    assert gname(c) == "CloneBackward0" and c.tolist() == [1., 2.]
    (c * 3).sum().backward()
    assert x.grad.tolist() == [3., 3.]
    p = lib.tensor([1., 2.])
    q = p.clone()
    q[0] = 9
    assert p.tolist() == [1., 2.]


@pytest.mark.filterwarnings("ignore:To copy construct from a tensor")
def test_1_3_clone_detach_is_independent_like_new_tensor(lib):
    # clone().detach(): nothing done to the result affects the original; same as new_tensor
    x = lib.tensor([1., 2.], requires_grad=True)
    cd = x.clone().detach()
    assert not cd.requires_grad and cd.grad_fn is None and cd.is_leaf
    cd.add_(100)
    assert x.tolist() == [1., 2.]
    nt = x.new_tensor(x)
    assert nt.tolist() == x.clone().detach().tolist()
    assert dname(nt.dtype) == dname(cd.dtype) and nt.requires_grad == cd.requires_grad


# === 1.4 tensor shape 다루기 ========================================================================

def test_1_4_views_share_memory(lib):
    # narrow(), view(), expand(), transpose() change metadata only: same memory
    x = lib.arange(6.).reshape(2, 3)
    x.narrow(1, 1, 2)[0, 0] = -1
    assert x[0, 1].item() == -1
    x.view(3, 2)[2, 1] = -2
    assert x[1, 2].item() == -2
    x.transpose(0, 1)[0, 1] = -3
    assert x[1, 0].item() == -3
    c = lib.tensor([1., 2.])
    e = c.expand(3, 2)
    c[0] = 7
    assert e[:, 0].tolist() == [7., 7., 7.]


def test_1_4_contiguous(lib):
    # a transposed tensor is not contiguous in memory; .contiguous() makes it so, and then
    # view() works where it raised before
    x = lib.arange(6.).reshape(2, 3)
    t = x.transpose(0, 1)
    assert x.is_contiguous() and not t.is_contiguous()
    with pytest.raises(RuntimeError, match="view size is not compatible with input tensor's "
                                           "size and stride"):
        t.view(6)
    c = t.contiguous()
    assert c.is_contiguous() and c.view(6).tolist() == [0., 3., 1., 4., 2., 5.]


def test_1_4_squeeze_unsqueeze(lib):
    # squeeze(): drop all size-1 dims, or only the one given; unsqueeze(i): add one at i
    x = lib.zeros(1, 3, 1, 2)
    assert tuple(x.squeeze().shape) == (3, 2)
    assert tuple(x.squeeze(2).shape) == (1, 3, 2)
    assert tuple(x.squeeze(1).shape) == (1, 3, 1, 2)
    y = lib.zeros(3, 2)
    assert tuple(y.unsqueeze(0).shape) == (1, 3, 2)
    assert tuple(y.unsqueeze(1).shape) == (3, 1, 2)
    assert tuple(y.unsqueeze(-1).shape) == (3, 2, 1)


def test_1_4_view_and_reshape(lib):
    # `x.view(1,2,3) x.reshape(1,2,3)`: view always shares memory and needs contiguity;
    # reshape returns a view when it can and a copy otherwise
    x = lib.arange(6.)
    v, r = x.view(1, 2, 3), x.reshape(1, 2, 3)
    assert tuple(v.shape) == tuple(r.shape) == (1, 2, 3)
    v[0, 0, 0] = 10
    assert x[0].item() == 10 and r[0, 0, 0].item() == 10
    t = x.reshape(2, 3).t()
    r2 = t.reshape(1, 2, 3)
    r2[0, 0, 0] = -5
    assert t[0, 0].item() == 10  # copied
    with pytest.raises(RuntimeError):
        t.view(1, 2, 3)


SNIPPET_1_4 = """\
x = torch.rand(16, 32, 3)
y = x.tranpose(0, 2) # 0<->2 차원변경
z = x.permute(2, 1, 0) # 0->2, 1->1, 2->0으로 차원변경
"""


def test_1_4_tranpose_typo_raises_attribute_error(lib):
    # `x.tranpose` is a typo for transpose: AttributeError in torch
    with pytest.raises(AttributeError, match="tranpose"):
        run(SNIPPET_1_4, lib)


def test_1_4_transpose_permute(lib):
    ns = run(SNIPPET_1_4.replace("tranpose", "transpose"), lib)
    x, y, z = ns["x"], ns["y"], ns["z"]
    a = npy(x)
    assert tuple(x.shape) == (16, 32, 3)
    assert tuple(y.shape) == (3, 32, 16) and tuple(z.shape) == (3, 32, 16)
    np.testing.assert_array_equal(npy(y), a.transpose(2, 1, 0))
    np.testing.assert_array_equal(npy(z), a.transpose(2, 1, 0))
    w = x.permute(1, 2, 0)  # a general permutation: 0->2, 1->0, 2->1
    assert tuple(w.shape) == (32, 3, 16)
    np.testing.assert_array_equal(npy(w), a.transpose(1, 2, 0))
    with pytest.raises(Exception):  # transpose takes exactly two dims
        x.transpose(0, 1, 2)


# === 1.5 chunk ===================================================================================

SNIPPET_1_5 = """\
import torch
x = torch.rand(4,512,512)
x_1,x_2 = torch.chunk(x,2,dim=0) # x_1.shape = (2,512,512)
"""


def test_1_5_chunk(lib):
    ns = run(SNIPPET_1_5, lib)
    x, x_1, x_2 = ns["x"], ns["x_1"], ns["x_2"]
    assert tuple(x_1.shape) == (2, 512, 512) and tuple(x_2.shape) == (2, 512, 512)
    a = npy(x)
    np.testing.assert_array_equal(npy(x_1), a[:2])
    np.testing.assert_array_equal(npy(x_2), a[2:])


# === 2.1 Autograd 사용 방법 ==========================================================================

def test_2_1_conditions_for_gradients(lib):
    # requires_grad must be True, and backward starts from a scalar; then read .grad
    x = lib.tensor([1., 2., 3.], requires_grad=True)
    (x * x).sum().backward()
    assert x.grad.tolist() == [2., 4., 6.]
    with pytest.raises(RuntimeError, match="does not require grad"):
        (lib.tensor([1., 2.]) * 2).sum().backward()
    with pytest.raises(RuntimeError, match="grad can be implicitly created only for scalar "
                                           "outputs"):
        (x * x).backward()


def test_2_1_mean_vs_sum_loss(lib):
    # "Q. .mean() .sum() 무슨 차이?": both give a scalar; mean's gradients are 1/numel of sum's
    x = lib.tensor([[1., 2.], [3., 4.]], requires_grad=True)
    (x * x).sum().backward()
    g_sum = npy(x.grad)
    x.grad = None
    (x * x).mean().backward()
    np.testing.assert_allclose(npy(x.grad), g_sum / 4)


# === 2.3 Autograd 살펴보기 ==========================================================================

SNIPPET_2_3_A = """\
x = torch.ones(2, 2, requires_grad=True)
y = x + 2
"""


def test_2_3_requires_grad_and_grad_fn(lib):
    ns = run(SNIPPET_2_3_A, lib)
    x, y = ns["x"], ns["y"]
    assert x.requires_grad is True and x.grad_fn is None
    assert y.requires_grad is True and gname(y) == "AddBackward0"
    assert "grad_fn=<AddBackward0>" in repr(y)
    assert y.tolist() == [[3., 3.], [3., 3.]]
    assert gname(x * 2) == "MulBackward0"   # 곱 계산시
    assert gname(x - 2) == "SubBackward0"   # 빼기 계산시
    assert gname(x / 2) == "DivBackward0"   # 나누기 계산시
    assert gname(y * y) == "MulBackward0"
    assert gname(y - x) == "SubBackward0"
    assert gname(y / x) == "DivBackward0"


SNIPPET_2_3_B = """\
x = torch.ones(2, 2, requires_grad=True)
y = x + 2
z = y * y
z.backward()

print(z.grad) # None

print(y.grad) # None
"""


def test_2_3_backward_on_non_scalar_raises(lib):
    # z is 2x2, so z.backward() without a gradient fails in torch, before the prints
    with pytest.raises(RuntimeError, match="grad can be implicitly created only for scalar "
                                           "outputs"):
        run(SNIPPET_2_3_B, lib)


def test_2_3_grad_only_on_leaves(lib, capsys):
    # what the snippet means: a scalar backward; .grad exists only for the leaf x, the
    # intermediates y and z have grad_fn but no grad
    fixed = SNIPPET_2_3_B.replace("z.backward()", "z.sum().backward()")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ns = run(fixed, lib)
    assert capsys.readouterr().out == "None\nNone\n"
    x, y, z = ns["x"], ns["y"], ns["z"]
    assert nonleaf_grad(z) is None and nonleaf_grad(y) is None
    assert x.grad.tolist() == [[6., 6.], [6., 6.]]  # d(sum((x+2)^2))/dx = 2(x+2)
    assert gname(z) == "MulBackward0" and gname(y) == "AddBackward0"
    assert z.tolist() == [[9., 9.], [9., 9.]]


def test_2_3_backward_with_gradient_argument(lib):
    # the non-scalar z can backward when given its gradient explicitly
    ns = run(SNIPPET_2_3_B.replace("z.backward()", "z.backward(torch.ones(2, 2))")
             .replace("print(z.grad) # None", "").replace("print(y.grad) # None", ""), lib)
    assert ns["x"].grad.tolist() == [[6., 6.], [6., 6.]]


# === 2.4 graph에서 parameter 제외하기 =================================================================

SNIPPET_2_4 = """\
from torch import nn, optim

model = torchvision.models.resnet18(pretrained=True)

# 1. requires_grad
for param in model.parameters():
    param.requires_grad = False

# 2. torch.no_grad()
with torch.no_grad():
	 z = model(x)
"""  # noqa: W191,E101 - the tab is the post's


def test_2_4_imports_nn_and_optim(lib):
    # the snippet's first line works in torch: the library must provide nn and optim
    ns = run(SNIPPET_2_4.splitlines()[0], lib)
    assert ns["nn"] is importlib.import_module(f"{lib.__name__}.nn")
    assert ns["optim"] is importlib.import_module(f"{lib.__name__}.optim")


def test_2_4_torchvision_is_not_defined(lib):
    # the snippet never imports torchvision (and this workplace has no weights to download):
    # NameError in torch. Run from the line after the import, so only that is tested here.
    rest = "\n".join(SNIPPET_2_4.splitlines()[1:])
    with pytest.raises(NameError, match="torchvision"):
        run(rest, lib)


def _two_models(lib):
    """A tiny stand-in for "model A feeds model B": two linear maps made of plain tensors."""
    lib.manual_seed(0)
    wa = lib.randn(3, 4, requires_grad=True)
    wb = lib.randn(4, 2, requires_grad=True)
    x = lib.randn(5, 3)
    return wa, wb, x


def test_2_4_frozen_parameters_still_pass_gradients(lib):
    # requires_grad = False on model B's parameters: B is not updated (no .grad), but the
    # gradient still flows through B back to model A
    wa, wb, x = _two_models(lib)
    for param in [wb]:
        param.requires_grad = False
    out = (x @ wa).tanh() @ wb
    assert out.requires_grad
    out.sum().backward()
    assert wb.grad is None
    assert wa.grad is not None and np.abs(npy(wa.grad)).sum() > 0


def test_2_4_no_grad_blocks_gradients(lib):
    # with torch.no_grad(): nothing is recorded, so nothing reaches model A
    wa, wb, x = _two_models(lib)
    with lib.no_grad():
        z = (x @ wa).tanh() @ wb
    assert not z.requires_grad and z.grad_fn is None
    with pytest.raises(RuntimeError, match="does not require grad"):
        z.sum().backward()
    assert wa.grad is None and wb.grad is None


def test_2_4_detach_cuts_the_graph(lib):
    # {tensor}.detach(): no gradient goes back past the detached logit (e.g. D's fake input)
    wa, wb, x = _two_models(lib)
    logit = (x @ wa).tanh()
    out = logit.detach() @ wb
    out.sum().backward()
    assert wa.grad is None and wb.grad is not None
