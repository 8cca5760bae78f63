"""Adagrad: per-element learning rates from the sum of squared gradients, as torch.optim.Adagrad."""
import numpy as np

from .optimizer import (Optimizer, _addcdiv_, _addcmul_, _advance, _check_flags, _full_like,
                        _grad_for_update, _step_tensor)


class Adagrad(Optimizer):
    """Adagrad, as ``torch.optim.Adagrad``. Each step ``t``, with ``g`` the gradient (negated
    when ``maximize``)::

        g = g + weight_decay * p
        clr = lr / (1 + (t - 1) * lr_decay)
        sum = sum + g * g                       (sum starts at initial_accumulator_value)
        p = p - clr * g / (sqrt(sum) + eps)

    As in torch, the state of every parameter is created at construction.

    >>> opt = dtrain.optim.Adagrad(model.parameters(), lr=0.01)
    >>> loss.backward(); opt.step(); opt.zero_grad()
    """

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0,
                 eps=1e-10, foreach=None, *, maximize=False, differentiable=False, fused=None):
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= lr_decay:
            raise ValueError(f"Invalid lr_decay value: {lr_decay}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if not 0.0 <= initial_accumulator_value:
            raise ValueError("Invalid initial_accumulator_value value: "
                             f"{initial_accumulator_value}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        defaults = {"lr": lr, "lr_decay": lr_decay, "eps": eps, "weight_decay": weight_decay,
                    "initial_accumulator_value": initial_accumulator_value, "foreach": foreach,
                    "maximize": maximize, "differentiable": differentiable, "fused": fused}
        _check_flags(differentiable, fused)
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                self._init_state(p, initial_accumulator_value)

    def _init_state(self, p, initial_accumulator_value):
        state = self.state[p]
        state["step"] = _step_tensor()
        state["sum"] = _full_like(p, initial_accumulator_value)

    def _update(self, p, group):
        state = self.state[p]
        if len(state) == 0:  # added by add_param_group; torch uses the default's value here
            self._init_state(p, self.defaults["initial_accumulator_value"])
        step = _advance(state["step"])
        param = p._data
        grad, owned = _grad_for_update(param, p.grad._data, float(group["weight_decay"]),
                                       group["maximize"])
        clr = float(group["lr"]) / (1 + (step - 1) * float(group["lr_decay"]))
        total = state["sum"]._data
        std = np.empty_like(param)
        _addcmul_(total, grad, 1, std)
        np.sqrt(total, out=std)
        np.add(std, float(group["eps"]), out=std)
        _addcdiv_(param, grad, std, -clr, grad if owned else np.empty_like(param))
