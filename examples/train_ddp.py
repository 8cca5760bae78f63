"""Data-parallel training with DistributedDataParallel: the main job.

    dtrain-run --nprocs 4 examples/train_ddp.py [--epochs 20] [--batch-size 8] [--lr 0.003]
        [--model cnn|mlp] [--data digits|mnist:DIR] [--checkpoint PATH] [--resume]

Each rank trains on its own share of the data (DistributedSampler); DDP averages gradients
during backward, so every rank holds the same model, the one a single process would train on
the global batch. Rank 0 prints per-epoch loss, test accuracy, samples/s and the share of step
time spent waiting on communication, and saves a checkpoint every epoch. With --resume (or
after dtrain-run restarts the job) training continues from the last checkpoint: model,
optimizer, schedule and data order.
"""
import argparse
import os
import time

import dtrain
import dtrain.distributed as dist
import dtrain.nn as nn
import dtrain.nn.functional as F
from dtrain.nn.parallel import DistributedDataParallel as DDP
from dtrain.utils.data import DataLoader, DistributedSampler, TensorDataset


class CNN(nn.Module):
    """conv16 -> conv32 -> maxpool -> fc64 -> fc10 for 1 x S x S images (S = 8 or 28)."""

    def __init__(self, size):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.fc1 = nn.Linear(32 * (size // 2) ** 2, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc2(F.relu(self.fc1(dtrain.flatten(x, 1))))


def make_model(kind, size):
    if kind == "cnn":
        return CNN(size)
    return nn.Sequential(nn.Flatten(), nn.Linear(size * size, 128), nn.ReLU(),
                         nn.Linear(128, 10))


def load_data(spec):
    """(train images, train labels, test images, test labels) as float32 N x 1 x S x S."""
    if spec == "digits":
        return (*dtrain.datasets.load_digits("train"), *dtrain.datasets.load_digits("test"))
    if spec.startswith("mnist:"):
        root = spec[len("mnist:"):]
        train = dtrain.datasets.MNIST(root, train=True)
        test = dtrain.datasets.MNIST(root, train=False)
        return (*train.as_tensors(), *test.as_tensors())
    raise SystemExit(f"--data must be 'digits' or 'mnist:DIR', got {spec!r}")


def evaluate(model, images, labels):
    model.eval()
    with dtrain.no_grad():
        correct = (model(images).argmax(1) == labels).sum().item()
    model.train()
    return correct / len(labels)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=8, help="per rank")
    p.add_argument("--lr", type=float, default=0.003)
    p.add_argument("--model", choices=["cnn", "mlp"], default="cnn")
    p.add_argument("--data", default="digits", help="digits (bundled) or mnist:DIR")
    p.add_argument("--checkpoint", default="ddp_checkpoint.dtrain")
    p.add_argument("--resume", action="store_true", help="continue from --checkpoint")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    dtrain.manual_seed(args.seed)
    train_x, train_y, test_x, test_y = load_data(args.data)
    dataset = TensorDataset(train_x, train_y)
    sampler = DistributedSampler(dataset, seed=args.seed)
    loader = DataLoader(dataset, batch_size=args.batch_size, sampler=sampler)
    model = DDP(make_model(args.model, train_x.shape[-1]))
    optimizer = dtrain.optim.Adam(model.parameters(), lr=args.lr)
    schedule = dtrain.optim.lr_scheduler.CosineAnnealingLR(optimizer, args.epochs * len(loader))

    start_epoch = 0
    restarted = int(os.environ.get("DTRAIN_RESTART_COUNT", "0")) > 0
    if (args.resume or restarted) and os.path.exists(args.checkpoint):
        state = dtrain.load(args.checkpoint)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        start_epoch = state["epoch"]
        if rank == 0:
            print(f"resumed from {args.checkpoint} after epoch {start_epoch}", flush=True)

    if rank == 0:
        print(f"training a {args.model} with DDP on {world} ranks, {len(dataset)} images, "
              f"batch {args.batch_size} per rank ({args.batch_size * world} global)", flush=True)
    accuracy = None
    for epoch in range(start_epoch, args.epochs):
        sampler.set_epoch(epoch)  # a new shuffle each epoch, the same on every rank
        wait_before, total, seen = model.comm_wait_seconds, 0.0, 0
        start = time.perf_counter()
        for images, labels in loader:
            optimizer.zero_grad()
            loss = F.cross_entropy(model(images), labels, label_smoothing=0.1)
            loss.backward()  # gradients are averaged across ranks here
            optimizer.step()
            schedule.step()
            total += loss.item() * len(labels)
            seen += len(labels)
        elapsed = time.perf_counter() - start
        waited = model.comm_wait_seconds - wait_before
        if rank == 0:
            accuracy = evaluate(model.module, test_x, test_y)
            print(f"epoch {epoch + 1:2d}  loss {total / seen:.4f}  test accuracy {accuracy:.2%}  "
                  f"{seen * world / elapsed:,.0f} samples/s  "
                  f"waiting on communication {waited / elapsed:.0%}", flush=True)
            dtrain.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                         "schedule": schedule.state_dict(), "epoch": epoch + 1},
                        args.checkpoint)
    if rank == 0:
        print(f"saved {args.checkpoint}", flush=True)
    dist.destroy_process_group()
    return accuracy


if __name__ == "__main__":
    main()
