#!/usr/bin/env python
"""PyTorch's tutorial "Getting Started with Distributed Data Parallel", on dtrain.

    python examples/ddp_tutorial.py

The code of pytorch/tutorials intermediate_source/ddp_tutorial.rst (``setup``, ``cleanup``,
``ToyModel``, ``demo_basic``, ``demo_checkpoint`` and ``run_demo``) with ``torch`` mapped to
``dtrain``, running on the CPU. Every change is marked with a "dtrain:" comment:

- no GPUs: each process is one CPU replica, so ``.to(rank)`` and ``device_ids=[rank]`` are
  left out, the world size is 2 instead of the GPU count, and ``map_location`` maps to "cpu";
- the tutorial's MASTER_PORT '12355' is only a default (``os.environ.setdefault``), so that a
  caller can pick a free port;
- ``demo_model_parallel`` is left out: it needs two devices per process.

Prints, in some order:

    Running basic DDP example on rank 0.
    Running basic DDP example on rank 1.
    Running DDP checkpoint example on rank 0.
    Running DDP checkpoint example on rank 1.
"""
import os
import sys  # noqa: F401 - imported (and unused) in the tutorial too
import tempfile
import dtrain
import dtrain.distributed as dist
import dtrain.nn as nn
import dtrain.optim as optim
import dtrain.multiprocessing as mp

from dtrain.nn.parallel import DistributedDataParallel as DDP


def setup(rank, world_size):
    os.environ['MASTER_ADDR'] = 'localhost'
    # dtrain: the tutorial sets os.environ['MASTER_PORT'] = '12355'; a default here
    os.environ.setdefault('MASTER_PORT', '12355')

    # initialize the process group
    dist.init_process_group("gloo", rank=rank, world_size=world_size)


def cleanup():
    dist.destroy_process_group()


class ToyModel(nn.Module):
    def __init__(self):
        super(ToyModel, self).__init__()
        self.net1 = nn.Linear(10, 10)
        self.relu = nn.ReLU()
        self.net2 = nn.Linear(10, 5)

    def forward(self, x):
        return self.net2(self.relu(self.net1(x)))


def demo_basic(rank, world_size):
    print(f"Running basic DDP example on rank {rank}.")
    setup(rank, world_size)

    # dtrain: the CPU only; the tutorial moves the model to GPU `rank` (.to(rank)) and passes
    # device_ids=[rank]
    model = ToyModel()
    ddp_model = DDP(model)

    loss_fn = nn.MSELoss()
    optimizer = optim.SGD(ddp_model.parameters(), lr=0.001)

    optimizer.zero_grad()
    outputs = ddp_model(dtrain.randn(20, 10))
    labels = dtrain.randn(20, 5)  # dtrain: the tutorial adds .to(rank)
    loss_fn(outputs, labels).backward()
    optimizer.step()

    cleanup()


def demo_checkpoint(rank, world_size):
    print(f"Running DDP checkpoint example on rank {rank}.")
    setup(rank, world_size)

    model = ToyModel()  # dtrain: the tutorial adds .to(rank)
    ddp_model = DDP(model)  # dtrain: the tutorial passes device_ids=[rank]

    CHECKPOINT_PATH = tempfile.gettempdir() + "/model.checkpoint"
    if rank == 0:
        # All processes should see same parameters as they all start from same
        # random parameters and gradients are synchronized in backward passes.
        # Therefore, saving it in one process is sufficient.
        dtrain.save(ddp_model.state_dict(), CHECKPOINT_PATH)

    # Use a barrier() to make sure that process 1 loads the model after process
    # 0 saves it.
    dist.barrier()
    # configure map_location properly
    # dtrain: the tutorial maps {'cuda:0': 'cuda:%d' % rank}; the checkpoint is on the CPU
    map_location = {'cpu': 'cpu'}
    ddp_model.load_state_dict(
        dtrain.load(CHECKPOINT_PATH, map_location=map_location))

    loss_fn = nn.MSELoss()
    optimizer = optim.SGD(ddp_model.parameters(), lr=0.001)

    optimizer.zero_grad()
    outputs = ddp_model(dtrain.randn(20, 10))
    labels = dtrain.randn(20, 5)  # dtrain: the tutorial adds .to(rank)

    loss_fn(outputs, labels).backward()
    optimizer.step()

    # Not necessary to use a dist.barrier() to guard the file deletion below
    # as the AllReduce ops in the backward pass of DDP already served as
    # a synchronization.

    if rank == 0:
        os.remove(CHECKPOINT_PATH)

    cleanup()


def run_demo(demo_fn, world_size):
    mp.spawn(demo_fn,
             args=(world_size,),
             nprocs=world_size,
             join=True)


if __name__ == "__main__":
    # dtrain: the tutorial takes world_size = torch.cuda.device_count() and asserts >= 2 GPUs;
    # here two CPU processes
    world_size = 2
    run_demo(demo_basic, world_size)
    run_demo(demo_checkpoint, world_size)
