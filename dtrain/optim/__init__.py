"""Optimizers and learning-rate schedulers, as ``torch.optim``.

>>> opt = dtrain.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
>>> sched = dtrain.optim.lr_scheduler.StepLR(opt, step_size=10)
>>> loss.backward(); opt.step(); opt.zero_grad(); sched.step()
"""
from . import lr_scheduler
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .optimizer import Optimizer
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adagrad", "RMSprop", "Adam", "AdamW", "lr_scheduler"]
