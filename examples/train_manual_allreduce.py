"""Distributed SGD by hand: all_reduce each gradient after backward, no DDP.

    dtrain-run --nprocs 2 examples/train_manual_allreduce.py [--epochs 10]

This is the "average_gradients" training loop of PyTorch's tutorial "Writing Distributed
Applications with PyTorch", with torch replaced by dtrain, on the bundled digits. Each rank
trains on its partition of the data; after backward every gradient is summed over the ranks
and divided by the world size, so all replicas take the same step.
"""
import argparse

import dtrain
import dtrain.distributed as dist
import dtrain.nn as nn
import dtrain.nn.functional as F
import dtrain.optim as optim
from dtrain.utils.data import DataLoader, DistributedSampler, TensorDataset


def average_gradients(model):
    """Gradient averaging (the tutorial's function, unchanged apart from the name torch)."""
    size = float(dist.get_world_size())
    for param in model.parameters():
        dist.all_reduce(param.grad.data, op=dist.ReduceOp.SUM)
        param.grad.data /= size


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=32, help="per rank")
    args = p.parse_args(argv)

    dist.init_process_group("gloo")
    rank = dist.get_rank()
    dtrain.manual_seed(1234)  # the same initial model on every rank, as the tutorial relies on
    images, labels = dtrain.datasets.load_digits("train")
    dataset = TensorDataset(images, labels)
    sampler = DistributedSampler(dataset, shuffle=True)
    train_set = DataLoader(dataset, batch_size=args.batch_size, sampler=sampler)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    optimizer = optim.SGD(model.parameters(), lr=0.05, momentum=0.5)
    for epoch in range(args.epochs):
        sampler.set_epoch(epoch)
        epoch_loss = 0.0
        for data, target in train_set:
            optimizer.zero_grad()
            output = model(data)
            loss = F.cross_entropy(output, target)
            epoch_loss += loss.item()
            loss.backward()
            average_gradients(model)
            optimizer.step()
        print(f"Rank {rank}, epoch {epoch}: {epoch_loss / len(train_set):.4f}", flush=True)
    test_x, test_y = dtrain.datasets.load_digits("test")
    with dtrain.no_grad():
        accuracy = (model(test_x).argmax(1) == test_y).float().mean().item()
    # every replica took the same steps: they agree on the test accuracy
    print(f"Rank {rank}: test accuracy {accuracy:.2%}", flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
