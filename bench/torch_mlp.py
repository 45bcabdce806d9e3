#!/usr/bin/python3
"""PyTorch CPU twin of mlmem-train's default step, for bench/trainer_vs_torch.sh.

Same model (784-W-...-W-10 MLP, ReLU), same batch, same optimizer (AdamW, lr
1e-3, no weight decay), same data (Fashion-MNIST, normalized the same way).
Times forward + backward + optimizer step per batch, batch gather included
(as mlmem-train's step includes it), and prints the median in milliseconds.
"""
import argparse
import gzip
import statistics
import time

import numpy as np
import torch


def load(path, offset):
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=offset)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--width", type=int, default=512)
    p.add_argument("--depth", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--optimizer", default="adamw", choices=["adamw", "sgd", "momentum"])
    p.add_argument("--seed", type=int, default=1337)
    a = p.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    n = a.steps * a.batch
    images = load(f"{a.data_dir}/train-images-idx3-ubyte.gz", 16)[: n * 784]
    labels = load(f"{a.data_dir}/train-labels-idx1-ubyte.gz", 8)[:n]
    x_all = torch.from_numpy(images.reshape(-1, 784).copy())
    y_all = torch.from_numpy(labels.astype(np.int64))

    layers, d = [], 784
    for _ in range(a.depth):
        layers += [torch.nn.Linear(d, a.width), torch.nn.ReLU()]
        d = a.width
    layers.append(torch.nn.Linear(d, 10))
    model = torch.nn.Sequential(*layers)
    if a.optimizer == "adamw":
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
    elif a.optimizer == "momentum":
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loss_fn = torch.nn.CrossEntropyLoss()
    perm = torch.randperm(n)

    times = []
    for s in range(a.steps):
        t0 = time.perf_counter()
        idx = perm[s * a.batch:(s + 1) * a.batch]
        x = (x_all[idx].float() / 255.0 - 0.2860) / 0.3530
        y = y_all[idx]
        opt.zero_grad(set_to_none=False)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        times.append((time.perf_counter() - t0) * 1e3)
    print(f"torch_version {torch.__version__}")
    print(f"torch_threads {torch.get_num_threads()}")
    print(f"median_ms {statistics.median(times[1:]):.4f}")
    print(f"final_loss {loss.item():.4f}")


if __name__ == "__main__":
    main()
