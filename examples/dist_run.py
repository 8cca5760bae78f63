#!/usr/bin/env python
"""run.py: the skeleton of every distributed example (seed section 5.1, "1. Setup").

    python examples/dist_run.py

Starts two processes with ``mp.Process``; each sets up the distributed environment, joins the
process group and calls ``run(rank, size)``, which does nothing yet. It prints nothing (a rank
that fails prints its traceback; as in the seed, the parent does not check the exit codes). The
other dist_*.py examples keep this skeleton and fill in ``run``.

As in the seed, with ``import dtrain`` in place of ``import torch``. One change: the seed sets
MASTER_PORT to '29500'; we only default to it, so that a caller (the tests) can pick a free port.
"""
import os

import dtrain  # noqa: F401  (the seed imports torch here; run() will use it)
import dtrain.distributed as dist
import dtrain.multiprocessing as mp


def run(rank, size):
    """ Distributed function to be implemented later. """
    pass


def init_process(rank, size, fn, backend='gloo'):
    """ Initialize the distributed environment. """
    os.environ['MASTER_ADDR'] = '127.0.0.1'
    # the seed: os.environ['MASTER_PORT'] = '29500'; a default here, so tests can pick a port
    os.environ.setdefault('MASTER_PORT', '29500')
    dist.init_process_group(backend, rank=rank, world_size=size)
    fn(rank, size)


if __name__ == "__main__":
    size = 2
    processes = []
    for rank in range(size):
        p = mp.Process(target=init_process, args=(rank, size, run))
        p.start()
        processes.append(p)
    # wait until the other processes are done
    for p in processes:
        p.join()
