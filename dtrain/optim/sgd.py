"""SGD: stochastic gradient descent with optional momentum, as torch.optim.SGD."""
import numpy as np

from ..tensor import Tensor
from .optimizer import Optimizer, _add_, _check_flags, _grad_for_update


class SGD(Optimizer):
    """Stochastic gradient descent, optionally with (Nesterov) momentum, as ``torch.optim.SGD``.

    Each step, with ``g`` the gradient (negated when ``maximize``)::

        g = g + weight_decay * p
        b = g                                        on the first step
        b = momentum * b + (1 - dampening) * g       after it
        g = g + momentum * b if nesterov else b      (only when momentum != 0)
        p = p - lr * g

    ``foreach`` is accepted and ignored: dtrain always runs torch's single-tensor loop.

    >>> opt = dtrain.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    >>> loss.backward(); opt.step(); opt.zero_grad()
    """

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0,
                 nesterov=False, *, maximize=False, foreach=None, differentiable=False,
                 fused=None):
        if lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if momentum < 0.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        defaults = {"lr": lr, "momentum": momentum, "dampening": dampening,
                    "weight_decay": weight_decay, "nesterov": nesterov, "maximize": maximize,
                    "foreach": foreach, "differentiable": differentiable, "fused": fused}
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        _check_flags(differentiable, fused)
        super().__init__(params, defaults)

    def _update(self, p, group):
        param = p._data
        grad, owned = _grad_for_update(param, p.grad._data, float(group["weight_decay"]),
                                       group["maximize"])
        momentum = float(group["momentum"])
        if momentum != 0:
            nesterov = group["nesterov"]
            state = self.state[p]
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = grad if owned else grad.copy()
                state["momentum_buffer"] = Tensor._make(buf)
            else:
                buf = buf._data
                np.multiply(buf, momentum, out=buf)
                _add_(buf, grad, 1 - float(group["dampening"]),
                      grad if owned and not nesterov else None)
            if nesterov:
                # grad + momentum * buf, into a new array: grad may be the buffer itself
                ahead = np.multiply(buf, momentum, out=np.empty_like(buf))
                grad, owned = np.add(ahead, grad, out=ahead), True
            else:
                grad, owned = buf, False
        _add_(param, grad, -float(group["lr"]), grad if owned else None)
