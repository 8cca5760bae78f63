"""Adam and AdamW, as torch.optim.Adam and torch.optim.AdamW."""
import numpy as np

from ..tensor import Tensor
from .optimizer import (Optimizer, _addcdiv_, _addcmul_, _advance, _check_flags, _full_like,
                        _grad_for_update, _lerp_, _step_tensor)


class Adam(Optimizer):
    """Adam, as ``torch.optim.Adam``. Each step ``t``, with ``g`` the gradient (negated when
    ``maximize``)::

        g = g + weight_decay * p      (or p = p * (1 - lr * weight_decay) if decoupled)
        m = m.lerp(g, 1 - beta1);  v = beta2 * v + (1 - beta2) * g * g
        v_hat = max(v_hat, v) if amsgrad else v
        p = p - lr / (1 - beta1**t) * m / (sqrt(v_hat) / sqrt(1 - beta2**t) + eps)

    ``state["step"]`` is a 0-d tensor and the bias corrections are Python floats, as in torch.

    >>> opt = dtrain.optim.Adam(model.parameters(), lr=1e-3)
    >>> loss.backward(); opt.step(); opt.zero_grad()
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 amsgrad=False, *, foreach=None, maximize=False, capturable=False,
                 differentiable=False, fused=None, decoupled_weight_decay=False):
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= betas[0] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 0: {betas[0]}")
        if not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 1: {betas[1]}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if not (all(isinstance(b, float) for b in betas[:2])
                or all(isinstance(b, Tensor) for b in betas[:2])):
            raise ValueError("betas must be either both floats or both Tensors")
        defaults = {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay,
                    "amsgrad": amsgrad, "maximize": maximize, "foreach": foreach,
                    "capturable": capturable, "differentiable": differentiable, "fused": fused,
                    "decoupled_weight_decay": decoupled_weight_decay}
        _check_flags(differentiable, fused, capturable)
        super().__init__(params, defaults)

    def _update(self, p, group):
        state = self.state[p]
        if len(state) == 0:
            state["step"] = _step_tensor()
            state["exp_avg"] = _full_like(p)
            state["exp_avg_sq"] = _full_like(p)
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = _full_like(p)
        lr, weight_decay = float(group["lr"]), float(group["weight_decay"])
        beta1, beta2 = (float(b) for b in group["betas"])
        decoupled = group["decoupled_weight_decay"]
        param = p._data
        grad, owned = _grad_for_update(param, p.grad._data, 0 if decoupled else weight_decay,
                                       group["maximize"])
        step = _advance(state["step"])
        if decoupled and weight_decay != 0:
            np.multiply(param, 1 - lr * weight_decay, out=param)

        exp_avg, exp_avg_sq = state["exp_avg"]._data, state["exp_avg_sq"]._data
        denom = np.empty_like(param)  # scratch first, then the denominator
        _lerp_(exp_avg, grad, 1 - beta1, denom)
        np.multiply(exp_avg_sq, beta2, out=exp_avg_sq)
        _addcmul_(exp_avg_sq, grad, 1 - beta2, denom)

        step_size = lr / (1 - beta1 ** step)
        bias_correction2_sqrt = (1 - beta2 ** step) ** 0.5
        second = exp_avg_sq
        if group["amsgrad"]:
            second = state["max_exp_avg_sq"]._data
            np.maximum(second, exp_avg_sq, out=second)
        np.sqrt(second, out=denom)
        np.divide(denom, bias_correction2_sqrt, out=denom)
        np.add(denom, float(group["eps"]), out=denom)
        _addcdiv_(param, exp_avg, denom, -step_size, grad if owned else np.empty_like(param))


class AdamW(Adam):
    """AdamW, as ``torch.optim.AdamW``: Adam with decoupled weight decay, which shrinks the
    parameters (``p = p * (1 - lr * weight_decay)``) instead of adding to the gradient.

    >>> opt = dtrain.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, *, maximize=False, foreach=None, capturable=False,
                 differentiable=False, fused=None):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, foreach=foreach,
                         maximize=maximize, capturable=capturable, differentiable=differentiable,
                         fused=fused, decoupled_weight_decay=True)

    def __setstate__(self, state):
        super().__setstate__(state)
        for group in self.param_groups:  # loading an Adam state_dict keeps AdamW's rule
            group["decoupled_weight_decay"] = True
