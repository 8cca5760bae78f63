"""DistributedDataParallel: averages gradients across ranks during backward.

Parameters are grouped into buckets in reverse registration order (the order their gradients
become ready), the first one small so communication starts early. A post-accumulate-grad hook
marks each parameter ready; a full bucket is all-reduced asynchronously while backward goes
on: its float gradients where they are, as one concatenation (collectives.all_reduce takes a
list), else copied into the bucket's flat buffer. A callback at the end of backward waits for
every bucket (and copies buffers back), so ``optimizer.step()`` right after sees the averages.
"""
import functools
import logging
import time
from contextlib import contextmanager

import numpy as np

from ... import distributed as dist
from ... import timeline
from ...distributed import collectives
from ...autograd import engine
from ...distributed import debug
from ...autograd.grad_mode import no_grad
from ..modules.module import Module

FIRST_BUCKET_BYTES = 1024 * 1024


class _Bucket:
    """Parameters whose gradients travel together in one flat buffer."""

    def __init__(self, params, names):
        self.params, self.names = params, names
        self.dtype = params[0]._data.dtype
        sizes = [p._data.size for p in params]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
        self.size = int(self.offsets[-1])
        self.nbytes = self.size * self.dtype.itemsize
        self.pending = len(params)
        self.work = None
        self.in_place = False  # this pass reduces the gradients where they are
        self.full = False
        self.globally_used = None  # with find_unused_parameters: which params some rank used
        self.ready_ns = None  # when it was launched, while the DETAIL log or the timeline is on

    @functools.cached_property
    def buffer(self):
        """The flat buffer, made when first needed (gradients reduced in place need none)."""
        return np.zeros(self.size, dtype=self.dtype)

    def view(self, i):
        return self.buffer[self.offsets[i]:self.offsets[i + 1]].reshape(self.params[i]._data.shape)


class DistributedDataParallel(Module):
    """Wrap a module so that backward averages its gradients over the process group.

    >>> model = DistributedDataParallel(Net())
    >>> loss_fn(model(x), y).backward()   # gradients are averaged across ranks here
    >>> optimizer.step()

    At construction every rank must hold the same parameter names, shapes and dtypes (checked),
    and rank 0's parameters and buffers are copied to all. ``no_sync()`` skips communication
    for gradient accumulation. A parameter that gets no gradient in a backward pass is an
    error naming it, unless ``find_unused_parameters=True``. Unlike torch, ``state_dict()``
    has the bare module's keys (no "module." prefix), so checkpoints load into either.
    """

    def __init__(self, module, device_ids=None, output_device=None, dim=0,
                 broadcast_buffers=True, process_group=None, bucket_cap_mb=25,
                 find_unused_parameters=False, check_reduction=False,
                 gradient_as_bucket_view=False, static_graph=False):
        super().__init__()
        if device_ids not in (None, [], ["cpu"]) or output_device not in (None, "cpu"):
            raise ValueError("dtrain runs on the CPU only: leave device_ids and output_device "
                             "unset")
        self.module = module
        self.process_group = process_group
        self.broadcast_buffers = broadcast_buffers
        self.find_unused_parameters = find_unused_parameters
        self.gradient_as_bucket_view = gradient_as_bucket_view
        self.require_backward_grad_sync = True
        self._pg = dist.resolve(process_group)
        self._world = self._pg.size()
        self._root = self._pg.ranks[0]
        named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        self._check_same_model(module)
        self._sync_module_state(module)
        self._buckets = self._make_buckets(named[::-1], bucket_cap_mb * 1024 * 1024)
        self._where = {}
        for b in self._buckets:
            for i, p in enumerate(b.params):
                self._where[id(p)] = (b, i)
                p.register_post_accumulate_grad_hook(self._grad_ready)
        self._sync_this_pass = True
        self._reset()
        self.comm_wait_seconds = 0.0  # time spent blocked on communication, cumulative
        if debug.get_debug_level() is not debug.DebugLevel.OFF:
            sizes = [b.nbytes for b in self._buckets]
            debug.log(self._pg.ranks[self._pg.me],
                      f"DistributedDataParallel: {_count(len(named), 'parameter')} in "
                      f"{_count(len(sizes), 'bucket')} of {sizes} bytes, group {self._pg.id}")

    # --- construction -------------------------------------------------------------------------
    def _check_same_model(self, module):
        mine = [(n, tuple(p.shape), p.dtype.name) for n, p in module.named_parameters()]
        everyone = [None] * self._world
        dist.all_gather_object(everyone, mine, group=self.process_group)
        ref = everyone[0]
        for r, theirs in enumerate(everyone):
            if theirs == ref:
                continue
            diffs = _describe_differences(ref, theirs)
            raise ValueError(f"DistributedDataParallel: the model on rank {self._pg.ranks[r]} "
                             f"differs from rank {self._root}'s: {'; '.join(diffs)}. Every rank "
                             "must build the same model.")

    def _sync_module_state(self, module):
        """Copy rank 0's parameters (and buffers, with broadcast_buffers) to every rank, one
        broadcast per dtype."""
        tensors = list(module.parameters())
        if self.broadcast_buffers:
            tensors += list(module.buffers())
        with no_grad():
            _broadcast_coalesced(tensors, self._root, self.process_group)

    def _make_buckets(self, named, cap):
        buckets, current, names, size = [], [], [], 0
        limit = min(FIRST_BUCKET_BYTES, cap)
        for name, p in named:
            nbytes = p._data.nbytes
            if current and (size + nbytes > limit or p._data.dtype != current[0]._data.dtype):
                buckets.append(_Bucket(current, names))
                current, names, size, limit = [], [], 0, cap
            current.append(p)
            names.append(name)
            size += nbytes
        if current:
            buckets.append(_Bucket(current, names))
        return buckets

    # --- forward ------------------------------------------------------------------------------
    def forward(self, *inputs, **kwargs):
        if self.broadcast_buffers and self.training:
            buffers = list(self.module.buffers())
            if buffers:
                with no_grad():
                    _broadcast_coalesced(buffers, self._root, self.process_group)
        # as in torch, whether this pass synchronizes is decided here, at forward
        self._sync_this_pass = self.require_backward_grad_sync
        self._reset()
        return self.module(*inputs, **kwargs)

    def _reset(self):
        """Forget the previous pass (even one that raised before its end-of-backward)."""
        for bucket in self._buckets:
            bucket.pending, bucket.work, bucket.full = len(bucket.params), None, False
            bucket.globally_used = None
        self._next_bucket = 0
        self._pass_started = False
        self._used = set()

    @contextmanager
    def no_sync(self):
        """Accumulate gradients locally; the first backward after the block reduces them all.

        >>> with model.no_sync():
        ...     loss_fn(model(x1), y1).backward()
        >>> loss_fn(model(x2), y2).backward()   # reduces the sum of both
        """
        previous = self.require_backward_grad_sync
        self.require_backward_grad_sync = False
        try:
            yield
        finally:
            self.require_backward_grad_sync = previous

    # --- backward -----------------------------------------------------------------------------
    def _grad_ready(self, param):
        if not self._sync_this_pass or id(param) not in self._where:
            return
        if not self._pass_started:
            self._pass_started = True
            engine.queue_callback(self._finish_backward)
        self._used.add(id(param))
        bucket, i = self._where[id(param)]
        grad = param._grad
        if self.gradient_as_bucket_view and grad is not None and grad._data.base is not \
                bucket.buffer and grad._data.dtype == bucket.dtype:
            # the gradient becomes its bucket view now, not when backward ends: the array
            # backward just made is freed at once, for the next one to reuse (benchmarks.memory)
            view = bucket.view(i)
            np.copyto(view, grad._data)
            param._grad = _tensor(view)
        bucket.pending -= 1
        if bucket.pending == 0 and not self.find_unused_parameters:
            bucket.full = True
            # launch in bucket order only: the order gradients become ready can differ between
            # ranks, and the k-th all_reduce of every rank must carry the same bucket
            while self._next_bucket < len(self._buckets) and \
                    self._buckets[self._next_bucket].full:
                self._launch(self._buckets[self._next_bucket])
                self._next_bucket += 1

    def _launch(self, bucket):
        if debug.detail or timeline.recorder is not None:
            bucket.ready_ns = time.time_ns()
        grads = [None if p._grad is None else p._grad._data for p in bucket.params]
        bucket.in_place = self._reducible_in_place(bucket, grads)
        if bucket.in_place:
            # floats are averaged by the all_reduce itself (chunk by chunk, while in cache)
            bucket.work = self._pg.run("all_reduce", collectives.all_reduce,
                                       ([g.reshape(-1) for g in grads], collectives.AVG),
                                       bucket.dtype, (bucket.size,), op=collectives.AVG,
                                       async_op=True)
            return
        for i, grad in enumerate(grads):
            view = bucket.view(i)
            if grad is None:
                view[...] = 0
            elif grad is not view:
                np.copyto(view, grad)
        op = dist.ReduceOp.AVG if bucket.dtype.kind == "f" else dist.ReduceOp.SUM
        bucket.work = dist.all_reduce(bucket.buffer, op=op, group=self.process_group,
                                      async_op=True)

    def _reducible_in_place(self, bucket, grads):
        """Whether the bucket's gradients can be all-reduced where they are: floats, each its
        own contiguous, writable array (no copy into the buffer and back). Not with
        gradient_as_bucket_view, whose gradients are to end as views of the buffer."""
        if self.gradient_as_bucket_view or bucket.dtype.kind != "f":
            return False
        if any(g is None or g.dtype != bucket.dtype or not g.flags.c_contiguous
               or not g.flags.writeable for g in grads):
            return False
        return len({g.__array_interface__["data"][0] for g in grads}) == len(grads)

    def _finish_backward(self):
        try:
            if self.find_unused_parameters:
                self._reduce_with_unused()
            else:
                self._check_all_used()
            start = time.perf_counter()
            for bucket in self._buckets:
                if bucket.work is not None:
                    bucket.work.wait()
            waited = time.perf_counter() - start
            self.comm_wait_seconds += waited
            if debug.detail or timeline.recorder is not None:
                self._report_buckets(waited)
            for bucket in self._buckets:
                self._write_back(bucket)
        finally:
            self._reset()

    def _report_buckets(self, waited):
        """Each bucket, from launch to its all_reduce's end, on the timeline and in the DETAIL
        log; and how long the end of backward waited for them."""
        rank = self._pg.ranks[self._pg.me]
        for i, bucket in enumerate(self._buckets):
            watch = bucket.work._watch if bucket.work is not None else None
            if watch is None or bucket.ready_ns is None:
                continue  # not launched this pass, or launched before the log was turned on
            args = {"bucket": i, "params": len(bucket.params), "bytes": bucket.nbytes,
                    "seq": watch.seq}
            if timeline.recorder is not None:
                timeline.recorder.add(f"DDP bucket {i}", timeline.COMM, bucket.ready_ns,
                                      watch.end_ns, args)
            if debug.detail:
                debug.log(rank, f"DDP bucket {i} ({_count(len(bucket.params), 'param')}, "
                                f"{bucket.nbytes} bytes): launched to reduced in "
                                f"{(watch.end_ns - bucket.ready_ns) / 1e6:.3f} ms, all_reduce "
                                f"#{watch.seq} {(watch.end_ns - watch.start_ns) / 1e6:.3f} ms",
                          logging.DEBUG)
        if debug.detail:
            launched = sum(b.work is not None for b in self._buckets)
            debug.log(rank, f"DDP backward: waited {waited * 1e3:.3f} ms for "
                            f"{_count(launched, 'bucket')} at its end", logging.DEBUG)

    def _check_all_used(self):
        missing = [name for b in self._buckets for p, name in zip(b.params, b.names)
                   if id(p) not in self._used]
        if missing:
            raise RuntimeError(
                f"DistributedDataParallel: parameters {missing} got no gradient in this backward "
                f"pass (rank {self._pg.ranks[self._pg.me]}). If they are unused on purpose, "
                "wrap the model with find_unused_parameters=True; otherwise make sure every "
                "parameter takes part in computing the loss.")

    def _reduce_with_unused(self):
        """Agree on which parameters some rank used; reduce those (zeros where unused here)."""
        used = np.array([id(p) in self._used for b in self._buckets for p in b.params],
                        dtype=np.int64)
        dist.all_reduce(used, group=self.process_group)
        k = 0
        for bucket in self._buckets:
            flags = used[k:k + len(bucket.params)]
            k += len(bucket.params)
            bucket.globally_used = flags > 0
            self._launch(bucket)

    def _write_back(self, bucket):
        if bucket.work is None:
            return
        if bucket.in_place:
            for p in bucket.params:
                p._grad._bump()
            return
        if bucket.dtype.kind != "f":  # floats came averaged (ReduceOp.AVG)
            np.floor_divide(bucket.buffer, self._world, out=bucket.buffer)
        used = bucket.globally_used
        for i, p in enumerate(bucket.params):
            if used is not None and not used[i]:
                continue  # unused on every rank: the gradient stays as it was (None)
            view = bucket.view(i)
            if p._grad is None:
                p._grad = _tensor(view.copy() if not self.gradient_as_bucket_view else view)
            elif self.gradient_as_bucket_view and p._grad._data is not view:
                p._grad = _tensor(view)
            elif p._grad._data is not view:
                np.copyto(p._grad._data, view)
            p._grad._bump()

    # --- pass-through -------------------------------------------------------------------------
    def state_dict(self, *args, **kwargs):
        return self.module.state_dict(*args, **kwargs)

    def load_state_dict(self, state_dict, strict=True, assign=False):
        return self.module.load_state_dict(state_dict, strict=strict, assign=assign)

    def extra_repr(self):
        return ""


def _count(n, noun):
    return f"{n} {noun}{'s' * (n != 1)}"


def _tensor(array):
    from ...tensor import Tensor
    return Tensor._make(array)


def _broadcast_coalesced(tensors, src, group):
    """Broadcast many tensors with one message per dtype."""
    by_dtype = {}
    for t in tensors:
        by_dtype.setdefault(t._data.dtype, []).append(t)
    for dtype in sorted(by_dtype, key=str):
        ts = by_dtype[dtype]
        flat = np.concatenate([t._data.reshape(-1) for t in ts]) if ts else None
        dist.broadcast(flat, src, group=group)
        offset = 0
        for t in ts:
            n = t._data.size
            np.copyto(t._data, flat[offset:offset + n].reshape(t._data.shape))
            t._bump()
            offset += n


def _describe_differences(ref, theirs):
    ref_map, their_map = {n: (s, d) for n, s, d in ref}, {n: (s, d) for n, s, d in theirs}
    diffs = [f"missing {n}" for n in ref_map if n not in their_map]
    diffs += [f"extra {n}" for n in their_map if n not in ref_map]
    for n, (s, d) in their_map.items():
        if n in ref_map and ref_map[n] != (s, d):
            diffs.append(f"{n} is {list(s)} {d} instead of {list(ref_map[n][0])} "
                         f"{ref_map[n][1]}")
    if not diffs:
        diffs.append("the parameters are registered in a different order")
    return diffs
