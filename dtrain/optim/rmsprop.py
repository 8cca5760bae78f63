"""RMSprop: steps scaled by a running average of squared gradients, as torch.optim.RMSprop."""
import numpy as np

from .optimizer import (Optimizer, _add_, _addcdiv_, _addcmul_, _advance, _check_flags,
                        _full_like, _grad_for_update, _lerp_, _step_tensor)


class RMSprop(Optimizer):
    """RMSprop, as ``torch.optim.RMSprop``. Each step, with ``g`` the gradient (negated when
    ``maximize``)::

        g = g + weight_decay * p
        v = alpha * v + (1 - alpha) * g * g
        avg = sqrt(v - m * m) + eps, with m = m.lerp(g, 1 - alpha), if centered
        avg = sqrt(v) + eps                                          otherwise
        b = momentum * b + g / avg;  p = p - lr * b                 if momentum > 0
        p = p - lr * g / avg                                         otherwise

    >>> opt = dtrain.optim.RMSprop(model.parameters(), lr=0.01, momentum=0.9)
    >>> loss.backward(); opt.step(); opt.zero_grad()
    """

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0,
                 centered=False, capturable=False, foreach=None, maximize=False,
                 differentiable=False):
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= momentum:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if not 0.0 <= alpha:
            raise ValueError(f"Invalid alpha value: {alpha}")
        defaults = {"lr": lr, "momentum": momentum, "alpha": alpha, "eps": eps,
                    "centered": centered, "weight_decay": weight_decay, "capturable": capturable,
                    "foreach": foreach, "maximize": maximize, "differentiable": differentiable}
        _check_flags(differentiable, capturable=capturable)
        super().__init__(params, defaults)

    def _update(self, p, group):
        momentum = float(group["momentum"])
        state = self.state[p]
        if len(state) == 0:
            state["step"] = _step_tensor()
            state["square_avg"] = _full_like(p)
            if momentum > 0:
                state["momentum_buffer"] = _full_like(p)
            if group["centered"]:
                state["grad_avg"] = _full_like(p)
        _advance(state["step"])
        param = p._data
        grad, owned = _grad_for_update(param, p.grad._data, float(group["weight_decay"]),
                                       group["maximize"])
        alpha = float(group["alpha"])
        square_avg = state["square_avg"]._data
        avg = np.empty_like(param)  # scratch first, then the denominator
        np.multiply(square_avg, alpha, out=square_avg)
        _addcmul_(square_avg, grad, 1 - alpha, avg)
        if group["centered"]:
            grad_avg = state["grad_avg"]._data
            _lerp_(grad_avg, grad, 1 - alpha, avg)
            # torch's square_avg.addcmul(grad_avg, grad_avg, value=-1): (-m) * m is -(m * m)
            np.multiply(grad_avg, grad_avg, out=avg)
            np.subtract(square_avg, avg, out=avg)
            np.sqrt(avg, out=avg)
        else:
            np.sqrt(square_avg, out=avg)
        np.add(avg, float(group["eps"]), out=avg)
        lr = float(group["lr"])
        if momentum > 0:
            buf = state["momentum_buffer"]._data
            np.multiply(buf, momentum, out=buf)
            _addcdiv_(buf, grad, avg, 1, avg)
            _add_(param, buf, -lr, avg)
        else:
            _addcdiv_(param, grad, avg, -lr, grad if owned else np.empty_like(param))
