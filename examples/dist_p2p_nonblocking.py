#!/usr/bin/env python
"""Non-blocking point-to-point communication (seed section 5.1, "2. Point-to-Point").

    python examples/dist_p2p_nonblocking.py

Rank 0 starts sending a tensor holding 1 with ``isend``, rank 1 starts receiving it with
``irecv``; both ``wait()`` on the request before touching the tensor. Prints (the two "started"
lines first on their own rank; the ranks interleave in any order):

    Rank 0 started sending
    Rank 1 started receiving
    Rank  0  has data  tensor(1.)
    Rank  1  has data  tensor(1.)

Do not modify a tensor being sent, nor read one being received, before ``req.wait()`` returns.

The seed's run.py skeleton (dist_run.py) with ``import dtrain`` in place of ``import torch``; the
seed's MASTER_PORT '29500' is only a default here, so that a caller can pick a free port.
"""
import os

import dtrain
import dtrain.distributed as dist
import dtrain.multiprocessing as mp


def run(rank, size):
    tensor = dtrain.zeros(1)
    req = None
    if rank == 0:
        tensor += 1
        # Send the tensor to process 1
        req = dist.isend(tensor=tensor, dst=1)
        print('Rank 0 started sending')
    else:
        # Receive tensor from process 0
        req = dist.irecv(tensor=tensor, src=0)
        print('Rank 1 started receiving')
    req.wait()
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
