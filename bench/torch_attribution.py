#!/usr/bin/env python3
"""torch_attribution.py - a small PyTorch CPU training run that knows its own
ground truth, for measuring mlmem's attribution on a program nobody on this
project wrote the allocator of (bench/attribution_accuracy_torch.py).

An MLP (784 -> hidden -> ... -> 10) trained on Fashion-MNIST with Adam or SGD
with momentum. Gradients are released every step
(optimizer.zero_grad(set_to_none=True), PyTorch's default from 2.0 on), so
PyTorch allocates them again in every backward pass. The dataset is held in
memory as float32 tensors; each batch is gathered with X[idx] (a copy).

--truth FILE writes what the program knows from tensor sizes
(numel() * element_size()): the bytes of the parameters, of their gradients,
of the optimizer state and of the dataset tensors, and the batch size.

--annotate tells mlmem (through ctypes, include/mlmem/annotate.h) the
category of every tensor storage the program knows, right after the tensor
is born, with mlmem_tag(storage, category): parameters (weights), each
gradient as the engine stores it in .grad (an AccumulateGrad post-hook:
gradients), the optimizer state (optimizer_state; tagged as Adam's update
starts, or when SGD has created its momentum buffers), the dataset and each
batch (data) and every tensor autograd saves for the backward pass
(saved_tensors_hooks: activations). Tensor storage nobody tagged is a
temporary. No regions are used, so annotated bytes are tensor storage and
nothing else. The annotated run allocates the same tensors as the plain one.

Usage: torch_attribution.py [--steps N] [--batch B] [--hidden H] [--layers L]
         [--samples N] [--optimizer adam|momentum] [--keep-grads]
         [--threads T] [--truth FILE] [--annotate]
"""
import argparse
import ctypes
import gzip
import json
import os
import sys
import time

import torch
import torch.nn as nn

DATA_DIR = os.environ.get("FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist")

# include/mlmem/annotate.h
CAT = {"other": 0, "weights": 1, "gradients": 2, "optimizer_state": 3,
       "activations": 4, "data": 5, "temporaries": 6}


class Annotator:
    """mlmem_tag through ctypes; no operation without the shim."""

    def __init__(self, enabled):
        self.fn = None
        self.kept = set()      # storages of the dataset, parameters, optimizer state
        self.batch = set()     # storages of the current batch
        self.tags = 0
        if not enabled:
            return
        try:
            lib = ctypes.CDLL(None)
            fn = lib.mlmem_annotate_tag
        except (OSError, AttributeError):
            print("torch_attribution: --annotate without mlmem's shim: no tags",
                  file=sys.stderr)
            return
        fn.argtypes = [ctypes.c_void_p, ctypes.c_int]
        fn.restype = None
        self.fn = fn

    @staticmethod
    def base(t):
        # The start of the storage is the start of the c10 block.
        return t.storage().data_ptr()

    def tag(self, t, cat, keep=None):
        """Tags the storage of 't'; keep: a set to remember its address in."""
        if self.fn is None or t is None:
            return
        p = self.base(t)
        if not p:
            return
        if keep is not None:
            keep.add(p)
        self.fn(ctypes.c_void_p(p), CAT[cat])
        self.tags += 1


def read_idx(name, count, item_bytes, header):
    """The first 'count' items of a gz IDX file, as a uint8 tensor."""
    with gzip.open(os.path.join(DATA_DIR, name), "rb") as f:
        raw = f.read(header + count * item_bytes)
    buf = bytearray(raw[header:])
    del raw
    return torch.frombuffer(buf, dtype=torch.uint8), buf


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--hidden", type=int, default=1024)
    ap.add_argument("--layers", type=int, default=2, help="hidden layers")
    ap.add_argument("--samples", type=int, default=10000)
    ap.add_argument("--optimizer", default="adam", choices=["adam", "momentum"])
    ap.add_argument("--keep-grads", action="store_true",
                    help="zero_grad(set_to_none=False): gradients allocated once")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--truth", default=None)
    ap.add_argument("--annotate", action="store_true")
    a = ap.parse_args()

    torch.manual_seed(0)
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    ann = Annotator(a.annotate)

    # The dataset, resident, float32 in [0, 1], labels int64.
    u8, buf = read_idx("train-images-idx3-ubyte.gz", a.samples, 784, 16)
    X = u8.view(a.samples, 784).to(torch.float32).div_(255.0)
    del u8, buf
    l8, buf = read_idx("train-labels-idx1-ubyte.gz", a.samples, 1, 8)
    Y = l8.to(torch.int64)
    del l8, buf
    ann.tag(X, "data", ann.kept)
    ann.tag(Y, "data", ann.kept)

    layers = []
    width = 784
    for _ in range(a.layers):
        layers += [nn.Linear(width, a.hidden), nn.ReLU()]
        width = a.hidden
    layers.append(nn.Linear(width, 10))
    model = nn.Sequential(*layers)
    params = list(model.parameters())
    for p in params:
        ann.tag(p, "weights", ann.kept)

    if a.optimizer == "adam":
        opt = torch.optim.Adam(params, lr=1e-3)
    else:
        opt = torch.optim.SGD(params, lr=0.05, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()

    if ann.fn is not None:
        # Gradients: tagged as the engine stores them in .grad.
        accs = []
        for p in params:
            acc = p.expand_as(p).grad_fn.next_functions[0][0]
            acc.register_hook(lambda gi, go, p=p: ann.tag(p.grad, "gradients"))
            accs.append(acc)  # the node must stay alive
        # Optimizer state: Adam creates it before its update function runs;
        # SGD creates its momentum buffers inside it.
        import torch.optim.adam as adam_mod
        import torch.optim.sgd as sgd_mod
        adam_fn, sgd_fn = adam_mod.adam, sgd_mod.sgd

        def adam_tagged(params_, grads, exp_avgs, exp_avg_sqs, max_sqs, steps, *args, **kw):
            for t in list(exp_avgs) + list(exp_avg_sqs) + list(max_sqs) + list(steps):
                ann.tag(t, "optimizer_state", ann.kept)
            return adam_fn(params_, grads, exp_avgs, exp_avg_sqs, max_sqs, steps, *args, **kw)

        def sgd_tagged(params_, grads, bufs, *args, **kw):
            r = sgd_fn(params_, grads, bufs, *args, **kw)
            for t in bufs:
                ann.tag(t, "optimizer_state", ann.kept)
            return r

        adam_mod.adam, sgd_mod.sgd = adam_tagged, sgd_tagged

        def pack(t):
            # Saved for the backward pass: an activation, unless it is a
            # parameter (a view of one) or the batch itself.
            p = ann.base(t)
            if p not in ann.kept and p not in ann.batch:
                ann.tag(t, "activations")
            return t
        saved_hooks = torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t)
    else:
        saved_hooks = None

    t_start = time.time()
    perm = torch.randperm(a.samples)
    nb = a.samples // a.batch
    losses = []
    for step in range(a.steps):
        i = step % nb
        if i == 0 and step:
            perm = torch.randperm(a.samples)
        opt.zero_grad(set_to_none=not a.keep_grads)
        idx = perm[i * a.batch:(i + 1) * a.batch]
        xb, yb = X[idx], Y[idx]
        ann.batch = set()
        ann.tag(xb, "data", ann.batch)
        ann.tag(yb, "data", ann.batch)
        if saved_hooks is not None:
            with saved_hooks:
                loss = loss_fn(model(xb), yb)
        else:
            loss = loss_fn(model(xb), yb)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        del xb, yb, idx, loss
    elapsed = time.time() - t_start

    elt = lambda t: t.numel() * t.element_size()
    state = [t for s in opt.state.values() for t in s.values() if torch.is_tensor(t)]
    truth = {
        "weights": sum(elt(p) for p in params),
        "gradients": sum(elt(p) for p in params),
        "optimizer_state": sum(elt(t) for t in state),
        "data": elt(X) + elt(Y),
        "batch_bytes": a.batch * 784 * 4 + a.batch * 8,
        "parameters": len(params),
        "parameter_bytes": sorted(elt(p) for p in params),
        "optimizer_state_tensors": len(state),
        "steps": a.steps,
        "gradients_reallocated": not a.keep_grads,
        "optimizer": a.optimizer,
        "tags": ann.tags,
        "train_seconds": elapsed,
        "loss_first": losses[0],
        "loss_last": sum(losses[-10:]) / len(losses[-10:]),
        "torch": torch.__version__,
    }
    if a.truth:
        with open(a.truth, "w") as f:
            json.dump(truth, f, indent=1)
    print("steps %d loss %.3f -> %.3f in %.2f s; weights %d, optimizer state %d, data %d bytes"
          % (a.steps, truth["loss_first"], truth["loss_last"], elapsed, truth["weights"],
             truth["optimizer_state"], truth["data"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
