#!/usr/bin/env python
"""Blocking point-to-point communication (seed section 5.1, "2. Point-to-Point").

    python examples/dist_p2p_blocking.py

Rank 0 adds 2 to a zero tensor and sends it to rank 1, which receives it into a second tensor
allocated beforehand. Prints, one line per rank (in either order):

    Rank  0  has data  tensor(2.) tensor(0.)
    Rank  1  has data  tensor(0.) tensor(2.)

The seed's text says both processes end up with 1; its code (followed here, and run with torch's
gloo backend to confirm the output above) adds 2, and receives into ``tensor2``, so rank 1's
``tensor`` stays 0 and rank 0's ``tensor2`` is never written.

The seed's run.py skeleton (dist_run.py) with ``import dtrain`` in place of ``import torch``; the
seed's MASTER_PORT '29500' is only a default here, so that a caller can pick a free port.
"""
import os

import dtrain
import dtrain.distributed as dist
import dtrain.multiprocessing as mp


def run(rank, size):
    tensor = dtrain.zeros(1)
    tensor2 = dtrain.zeros(1)
    if rank == 0:
        tensor += 2
        # Send the tensor to process 1
        dist.send(tensor=tensor, dst=1)
    else:
        # Receive tensor from process 0
        dist.recv(tensor=tensor2, src=0)
    print('Rank ', rank, ' has data ', tensor[0], tensor2[0])
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
