#!/usr/bin/env python
"""Every reduce op of the seed (section 5.1, "3. Collective Communication") with both
``all_reduce`` and ``reduce``.

    python examples/dist_reduce_ops.py

Rank 0 holds [2., 4.] and rank 1 holds [3., 1.], so each op shows that reductions work element
by element. ``all_reduce`` leaves the result on every rank; ``reduce`` only on ``dst``, which
takes turns here (the other rank's tensor is scratch space afterwards, as in torch, so it is not
printed). Prints these lines, each rank's in this order, the two ranks interleaved:

    Rank 0 all_reduce SUM: tensor([5., 5.])
    Rank 0 all_reduce PRODUCT: tensor([6., 4.])
    Rank 0 all_reduce MAX: tensor([3., 4.])
    Rank 0 all_reduce MIN: tensor([2., 1.])
    Rank 0 reduce SUM to rank 0: tensor([5., 5.])
    Rank 0 reduce MAX to rank 0: tensor([3., 4.])
    (and for rank 1 the same all_reduce lines, then:)
    Rank 1 reduce PRODUCT to rank 1: tensor([6., 4.])
    Rank 1 reduce MIN to rank 1: tensor([2., 1.])

The seed lists the ops as SUM / PRODUCT / MAX / ``Min``; the name is ``ReduceOp.MIN``, in torch
and here.

The seed's run.py skeleton (dist_run.py) with ``import dtrain`` in place of ``import torch``; the
seed's MASTER_PORT '29500' is only a default here, so that a caller can pick a free port.
"""
import os

import dtrain
import dtrain.distributed as dist
import dtrain.multiprocessing as mp

OPS = [dist.ReduceOp.SUM, dist.ReduceOp.PRODUCT, dist.ReduceOp.MAX, dist.ReduceOp.MIN]
NAMES = ["SUM", "PRODUCT", "MAX", "MIN"]


def start(rank):
    return dtrain.tensor([2. + rank, 4. - 3. * rank])


def run(rank, size):
    for op, name in zip(OPS, NAMES):
        tensor = start(rank)
        dist.all_reduce(tensor, op=op)
        print(f"Rank {rank} all_reduce {name}: {tensor}")
    for i, (op, name) in enumerate(zip(OPS, NAMES)):
        dst = i % size
        tensor = start(rank)
        dist.reduce(tensor, dst=dst, op=op)
        if rank == dst:
            print(f"Rank {rank} reduce {name} to rank {dst}: {tensor}")


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
