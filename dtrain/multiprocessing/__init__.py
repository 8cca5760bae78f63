"""dtrain.multiprocessing: the standard :mod:`multiprocessing` API plus ``spawn``, as in torch.

``import dtrain.multiprocessing as mp`` gives everything ``multiprocessing`` exports
(``mp.Process``, ``mp.Queue``, ``mp.Pipe``, ``mp.get_context``, ...), exactly as
``torch.multiprocessing`` does, plus :func:`spawn` and :func:`start_processes`, which start N
processes running ``fn(i, *args)``, watch them, and turn the first failure into an exception
that carries the child's traceback.

Where we differ from torch: ``fn`` and ``args`` travel to the children with cloudpickle, not
plain pickle, so lambdas, closures, and functions defined in ``__main__`` (a script, ``python -c``
or a notebook) work; torch's spawn needs ``fn`` to be importable by name. Multiprocessing objects
(``Queue``, ``SimpleQueue``, ``Lock``, ``Event``, ``Pipe`` ends) may still be passed in ``args``
when they come from ``mp.get_context("spawn")``, as in torch.

>>> import dtrain.multiprocessing as mp
>>> ctx = mp.get_context("spawn")
>>> results = ctx.SimpleQueue()
>>> mp.spawn(lambda i, q: q.put(i * i), args=(results,), nprocs=2)  # doctest: +SKIP
>>> sorted(results.get() for _ in range(2))  # doctest: +SKIP
[0, 1]
"""
import multiprocessing
from multiprocessing import *  # noqa: F401,F403  (the standard API, as torch.multiprocessing)

from .spawn import (ProcessContext, ProcessException, ProcessExitedException,
                    ProcessRaisedException, spawn, start_processes)

__all__ = multiprocessing.__all__ + [
    "ProcessContext", "ProcessException", "ProcessExitedException", "ProcessRaisedException",
    "spawn", "start_processes",
]
