#!/usr/bin/env python
"""All-reduce in a group (seed section 5.1, "3. Collective Communication").

    python examples/dist_all_reduce_group.py

Both ranks make the group [0, 1], each holds a tensor of ones, and ``all_reduce`` with
``ReduceOp.SUM`` leaves the sum in both. Prints, one line per rank (in either order):

    Rank  0  has data  tensor(2.)
    Rank  1  has data  tensor(2.)

The seed's run.py skeleton (dist_run.py) with ``import dtrain`` in place of ``import torch``; the
seed's MASTER_PORT '29500' is only a default here, so that a caller can pick a free port.
"""
import os

import dtrain
import dtrain.distributed as dist
import dtrain.multiprocessing as mp


def run(rank, size):
    """ Simple collective communication. """
    group = dist.new_group([0, 1])
    tensor = dtrain.ones(1)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM, group=group)
    print('Rank ', rank, ' has data ', tensor[0])


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
