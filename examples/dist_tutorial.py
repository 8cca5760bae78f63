#!/usr/bin/env python
"""The code of PyTorch's tutorial "Writing Distributed Applications with PyTorch" (Séb Arnold,
pytorch/tutorials, intermediate_source/dist_tuto.rst, as of commit 9e3b079: the version that
starts its processes with the "spawn" method), with torch replaced by dtrain.

    python examples/dist_tutorial.py [SECTION ...] [--size N]

SECTION is one of p2p, ip2p, all_reduce, train, ring (all of them, in this order, by default);
N processes (2 by default; p2p and ip2p need 2) run each section's ``run`` in one process group.
Each section prints what the tutorial's version prints:

    p2p         Rank  0  has data  tensor(1.)           (and the same for every rank)
    ip2p        Rank 0 started sending / Rank 1 started receiving, then as p2p
    all_reduce  Rank  0  has data  tensor(2.)           (the size of the group [0, 1])
    train       Rank  0 , epoch  0 :  2.29...           (ten epochs, the loss falling)
    ring        Rank  0  ring allreduce  tensor([3., 3., 3.])   (and all_reduce agreeing)

The tutorial's code is kept as it is, apart from these deviations, each marked "DEVIATION" below:

- one script for every snippet: the tutorial has one ``run`` per snippet; here each is named after
  its section (run_p2p, ...) and the ``run`` that init_process calls runs the chosen ones, with a
  barrier between sections. ``p2p`` and ``ip2p`` need exactly 2 processes, as in the tutorial
  (rank 0 sends to rank 1 only), so with --size other than 2 they are left out;
- MASTER_PORT defaults to the tutorial's '29500' instead of being set to it, so that a caller can
  pick a free port; the number of processes can be given with --size;
- the training section uses dtrain's bundled 8x8 digits (``dtrain.datasets.Digits``) instead of
  downloading MNIST, and a small fully connected Net in place of the MNIST example's CNN (which
  the tutorial does not show). With the tutorial's lr=0.01 and only 12 steps per epoch on 718
  digits per rank, the loss falls slowly: from about 2.29 to 2.17 in ten epochs;
- ``bsz = 128 / float(size)`` is a float, which torch's DataLoader (and ours) refuse with
  "batch_size should be a positive integer value"; we use ``128 // size`` as the tutorial's
  companion repository (seba-1511/dist_tuto.pth) does;
- after training each rank prints a checksum of its weights: averaging the gradients must keep
  every replica identical, and this line shows it;
- the ring allreduce has no ``run`` in the tutorial; run_ring compares it with dist.all_reduce.
"""
import argparse
import os
from math import ceil
from random import Random

import dtrain
import dtrain.distributed as dist
import dtrain.multiprocessing as mp
import dtrain.nn as nn
import dtrain.nn.functional as F
import dtrain.optim as optim
from dtrain.datasets import Digits  # DEVIATION: torchvision's datasets.MNIST and transforms


# --- Point-to-Point Communication --------------------------------------------------------------

"""Blocking point-to-point communication."""

def run_p2p(rank, size):  # DEVIATION: the tutorial's name is run
    tensor = dtrain.zeros(1)
    if rank == 0:
        tensor += 1
        # Send the tensor to process 1
        dist.send(tensor=tensor, dst=1)
    else:
        # Receive tensor from process 0
        dist.recv(tensor=tensor, src=0)
    print('Rank ', rank, ' has data ', tensor[0])


"""Non-blocking point-to-point communication."""

def run_ip2p(rank, size):  # DEVIATION: the tutorial's name is run
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


# --- Collective Communication ------------------------------------------------------------------

""" All-Reduce example."""
def run_all_reduce(rank, size):  # DEVIATION: the tutorial's name is run
    """ Simple collective communication. """
    group = dist.new_group([0, 1])
    # DEVIATION: with more than 2 processes, ranks 2.. are not in the group and skip it
    if group is dist.GroupMember.NON_GROUP_MEMBER:
        return
    tensor = dtrain.ones(1)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM, group=group)
    print('Rank ', rank, ' has data ', tensor[0])


# --- Distributed Training ----------------------------------------------------------------------

""" Dataset partitioning helper """
class Partition(object):

    def __init__(self, data, index):
        self.data = data
        self.index = index

    def __len__(self):
        return len(self.index)

    def __getitem__(self, index):
        data_idx = self.index[index]
        return self.data[data_idx]


class DataPartitioner(object):

    def __init__(self, data, sizes=[0.7, 0.2, 0.1], seed=1234):
        self.data = data
        self.partitions = []
        rng = Random()
        rng.seed(seed)
        data_len = len(data)
        indexes = [x for x in range(0, data_len)]
        rng.shuffle(indexes)

        for frac in sizes:
            part_len = int(frac * data_len)
            self.partitions.append(indexes[0:part_len])
            indexes = indexes[part_len:]

    def use(self, partition):
        return Partition(self.data, self.partitions[partition])


class Net(nn.Module):
    """ DEVIATION: the MNIST example's Net is a CNN for 28x28 images (conv 5x5 twice, Dropout2d,
    fc 320-50-10); here its fully connected part, fc 64-50-10 with dropout, for 8x8 images. """

    def __init__(self):
        super(Net, self).__init__()
        self.fc1 = nn.Linear(64, 50)
        self.fc2 = nn.Linear(50, 10)

    def forward(self, x):
        x = x.view(-1, 64)
        x = F.relu(self.fc1(x))
        x = F.dropout(x, training=self.training)
        x = self.fc2(x)
        return F.log_softmax(x, dim=1)


""" Partitioning MNIST """
def partition_dataset():
    dataset = Digits(train=True)  # DEVIATION: datasets.MNIST('./data', ..., download=True, ...)
    size = dist.get_world_size()
    bsz = 128 // size  # DEVIATION: the tutorial's 128 / float(size) is refused by DataLoader
    partition_sizes = [1.0 / size for _ in range(size)]
    partition = DataPartitioner(dataset, partition_sizes)
    partition = partition.use(dist.get_rank())
    train_set = dtrain.utils.data.DataLoader(partition,
                                             batch_size=bsz,
                                             shuffle=True)
    return train_set, bsz


""" Distributed Synchronous SGD Example """
def run_train(rank, size):  # DEVIATION: the tutorial's name is run
    dtrain.manual_seed(1234)
    train_set, bsz = partition_dataset()
    model = Net()
    optimizer = optim.SGD(model.parameters(),
                          lr=0.01, momentum=0.5)

    num_batches = ceil(len(train_set.dataset) / float(bsz))
    for epoch in range(10):
        epoch_loss = 0.0
        for data, target in train_set:
            optimizer.zero_grad()
            output = model(data)
            loss = F.nll_loss(output, target)
            epoch_loss += loss.item()
            loss.backward()
            average_gradients(model)
            optimizer.step()
        print('Rank ', dist.get_rank(), ', epoch ',
              epoch, ': ', epoch_loss / num_batches)
    # DEVIATION: not in the tutorial; equal on every rank when the replicas stayed identical
    checksum = sum(float((p.detach().double() ** 2).sum()) for p in model.parameters())
    print('Rank ', dist.get_rank(), ' weights checksum ', repr(checksum))


""" Gradient averaging. """
def average_gradients(model):
    size = float(dist.get_world_size())
    for param in model.parameters():
        dist.all_reduce(param.grad.data, op=dist.ReduceOp.SUM)
        param.grad.data /= size


# --- Our Own Ring-Allreduce --------------------------------------------------------------------

""" Implementation of a ring-reduce with addition. """
def allreduce(send, recv):
   rank = dist.get_rank()
   size = dist.get_world_size()
   send_buff = send.clone()
   recv_buff = send.clone()
   accum = send.clone()

   left = ((rank - 1) + size) % size
   right = (rank + 1) % size

   for i in range(size - 1):
       if i % 2 == 0:
           # Send send_buff
           send_req = dist.isend(send_buff, right)
           dist.recv(recv_buff, left)
           accum[:] += recv_buff[:]
       else:
           # Send recv_buff
           send_req = dist.isend(recv_buff, right)
           dist.recv(send_buff, left)
           accum[:] += send_buff[:]
       send_req.wait()
   recv[:] = accum[:]


def run_ring(rank, size):
    """ DEVIATION: not in the tutorial, which shows allreduce without calling it. """
    send = dtrain.ones(3) * (rank + 1)
    recv = dtrain.zeros(3)
    allreduce(send, recv)
    print('Rank ', rank, ' ring allreduce ', recv)
    expected = send.clone()
    dist.all_reduce(expected, op=dist.ReduceOp.SUM)
    print('Rank ', rank, ' dist.all_reduce ', expected)


# --- Setup -------------------------------------------------------------------------------------

SECTIONS = {"p2p": run_p2p, "ip2p": run_ip2p, "all_reduce": run_all_reduce,
            "train": run_train, "ring": run_ring}


def run(rank, size, sections=tuple(SECTIONS)):
    """ DEVIATION: runs the chosen sections' run functions, one after the other. """
    for name in sections:
        SECTIONS[name](rank, size)
        dist.barrier()


def init_process(rank, size, fn, backend='gloo', sections=tuple(SECTIONS)):
    """ Initialize the distributed environment. """
    os.environ['MASTER_ADDR'] = '127.0.0.1'
    # DEVIATION: the tutorial sets MASTER_PORT to '29500'; a default here, so tests pick a port
    os.environ.setdefault('MASTER_PORT', '29500')
    dist.init_process_group(backend, rank=rank, world_size=size)
    fn(rank, size, sections)  # DEVIATION: the tutorial calls fn(rank, size)


def parse_args(argv=None):
    """ DEVIATION: the tutorial has no command line. """
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("sections", nargs="*", metavar="SECTION",
                   help=f"one of {', '.join(SECTIONS)} (default: all of them)")
    p.add_argument("--size", type=int, default=2, help="number of processes (default: 2)")
    args = p.parse_args(argv)
    unknown = [s for s in args.sections if s not in SECTIONS]
    if unknown:
        p.error(f"unknown section {unknown[0]!r}: choose from {', '.join(SECTIONS)}")
    two_only = [s for s in args.sections if s in ("p2p", "ip2p")]
    if two_only and args.size != 2:
        p.error(f"section {two_only[0]!r} needs --size 2: rank 0 sends to rank 1 only")
    args.sections = tuple(args.sections or [s for s in SECTIONS
                                            if args.size == 2 or s not in ("p2p", "ip2p")])
    return args


if __name__ == "__main__":
    args = parse_args()
    size = args.size  # the tutorial: size = 2
    processes = []
    mp.set_start_method("spawn")
    for rank in range(size):
        p = mp.Process(target=init_process, args=(rank, size, run),
                       kwargs=dict(sections=args.sections))
        p.start()
        processes.append(p)

    for p in processes:
        p.join()
