"""Data-parallel training with DistributedDataParallel: the main job.

    dtrain-run --nprocs 4 examples/train_ddp.py [--epochs 20] [--batch-size 8] [--lr 0.003]
        [--model cnn|mlp] [--data digits|mnist:DIR] [--dtype float32|float64] [--seed 0]
        [--checkpoint PATH] [--resume] [--plot curves.png]

Each rank trains on its own share of the data (DistributedSampler); DDP averages gradients
during backward, so every rank holds the same model, the one a single process would train on
the global batch. Rank 0 prints per-epoch loss, test accuracy, samples/s and the share of step
time spent waiting on communication (with a tqdm bar during the epoch when tqdm is installed
and stderr is a terminal), saves a checkpoint every epoch, and with --plot draws the loss and
accuracy curves (needs matplotlib: pip install "dtrain[plot]").

Checkpoint and restart. The checkpoint holds model, optimizer, schedule, the epochs done and
the curves so far; dtrain.save writes it atomically, so a worker killed mid-save leaves the
previous one. With --resume, or when `dtrain-run --max-restarts N` restarts the job after a
failure (the workers then see DTRAIN_RESTART_COUNT > 0), every rank loads it and training goes
on from the next epoch. An epoch depends only on the checkpoint, the seed and the epoch number
(data order: sampler.set_epoch; randomness: reseeded per epoch), so a run killed and restarted
ends with the same parameters, bit for bit, as one never interrupted (tests/test_restart.py
checks it in float64). A fresh start (first attempt, no --resume) first removes an old file at
--checkpoint, so that a restart never resumes another run's checkpoint.

Testing aid: DTRAIN_EXAMPLE_KILL_AT="RANK:STEP" makes rank RANK SIGKILL itself just before its
training step STEP (counted from 0 over the whole run), on the first attempt only.
"""
import argparse
import os
import signal
import time

import dtrain
import dtrain.distributed as dist
import dtrain.nn as nn
import dtrain.nn.functional as F
from dtrain.nn.parallel import DistributedDataParallel as DDP
from dtrain.utils.data import DataLoader, DistributedSampler, TensorDataset

from example_tools import check_plotting, plot_curves, progress  # beside this file


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


def load_data(spec, dtype):
    """(train images, train labels, test images, test labels); images N x 1 x S x S."""
    if spec == "digits":
        data = (*dtrain.datasets.load_digits("train"), *dtrain.datasets.load_digits("test"))
    elif spec.startswith("mnist:"):
        root = spec[len("mnist:"):]
        train = dtrain.datasets.MNIST(root, train=True)
        test = dtrain.datasets.MNIST(root, train=False)
        data = (*train.as_tensors(), *test.as_tensors())
    else:
        raise SystemExit(f"--data must be 'digits' or 'mnist:DIR', got {spec!r}")
    train_x, train_y, test_x, test_y = data
    return train_x.to(dtype), train_y, test_x.to(dtype), test_y


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
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--checkpoint", default="ddp_checkpoint.dtrain")
    p.add_argument("--resume", action="store_true", help="continue from --checkpoint")
    p.add_argument("--plot", metavar="PNG", help="write loss and accuracy curves here")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def restore(args, rank, model, optimizer, schedule):
    """Load --checkpoint when resuming or restarted; returns (start epoch, history)."""
    restarted = int(os.environ.get("DTRAIN_RESTART_COUNT", "0")) > 0
    if not (args.resume or restarted):
        if rank == 0 and os.path.exists(args.checkpoint):
            os.remove(args.checkpoint)  # another run's: a restart must not resume it
            print(f"removed the old {args.checkpoint} (--resume continues from it)", flush=True)
        return 0, {"loss": [], "accuracy": []}
    if not os.path.exists(args.checkpoint):  # killed before the first save: start afresh
        return 0, {"loss": [], "accuracy": []}
    state = dtrain.load(args.checkpoint)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    schedule.load_state_dict(state["schedule"])
    if rank == 0:
        print(f"resumed from {args.checkpoint} after epoch {state['epoch']}", flush=True)
    return state["epoch"], state.get("history", {"loss": [], "accuracy": []})


def kill_step(rank):
    """The step at which DTRAIN_EXAMPLE_KILL_AT says this rank dies (first attempt only)."""
    target = os.environ.get("DTRAIN_EXAMPLE_KILL_AT")
    if not target or int(os.environ.get("DTRAIN_RESTART_COUNT", "0")) > 0:
        return None
    victim, step = map(int, target.split(":"))
    return step if victim == rank else None


def main(argv=None):
    args = parse_args(argv)
    if args.plot:
        check_plotting()
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    dtype = getattr(dtrain, args.dtype)
    dtrain.manual_seed(args.seed)
    train_x, train_y, test_x, test_y = load_data(args.data, dtype)
    dataset = TensorDataset(train_x, train_y)
    sampler = DistributedSampler(dataset, seed=args.seed)
    loader = DataLoader(dataset, batch_size=args.batch_size, sampler=sampler)
    model = DDP(make_model(args.model, train_x.shape[-1]).to(dtype))
    optimizer = dtrain.optim.Adam(model.parameters(), lr=args.lr)
    schedule = dtrain.optim.lr_scheduler.CosineAnnealingLR(optimizer, args.epochs * len(loader))
    start_epoch, history = restore(args, rank, model, optimizer, schedule)
    die_at = kill_step(rank)

    if rank == 0:
        print(f"training a {args.model} with DDP on {world} ranks, {len(dataset)} images, "
              f"batch {args.batch_size} per rank ({args.batch_size * world} global)", flush=True)
    accuracy = None
    for epoch in range(start_epoch, args.epochs):
        sampler.set_epoch(epoch)  # a new shuffle each epoch, the same on every rank
        dtrain.manual_seed(args.seed * 100_000 + epoch)  # randomness (dropout...) per epoch too
        wait_before, total, seen = model.comm_wait_seconds, 0.0, 0
        start = time.perf_counter()
        batches = progress(loader, f"epoch {epoch + 1}", show=rank == 0)
        for step, (images, labels) in enumerate(batches, epoch * len(loader)):
            if step == die_at:
                os.kill(os.getpid(), signal.SIGKILL)  # the testing aid: die without cleanup
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
            history["loss"].append(total / seen)
            history["accuracy"].append(accuracy)
            print(f"epoch {epoch + 1:2d}  loss {total / seen:.4f}  test accuracy {accuracy:.2%}  "
                  f"{seen * world / elapsed:,.0f} samples/s  "
                  f"waiting on communication {waited / elapsed:.0%}", flush=True)
            dtrain.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                         "schedule": schedule.state_dict(), "epoch": epoch + 1,
                         "history": history}, args.checkpoint)
    if rank == 0:
        print(f"saved {args.checkpoint}", flush=True)
        if args.plot:
            plot_curves(history, args.plot)
            print(f"plotted {args.plot}", flush=True)
    dist.destroy_process_group()
    return accuracy


if __name__ == "__main__":
    main()
