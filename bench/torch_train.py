#!/usr/bin/python3
"""A plain PyTorch CPU training script on Fashion-MNIST: the PyTorch workload of
the benchmark suite (bench/suite.sh, issue 6).

A small CNN (two conv/ReLU/max-pool blocks, then two linear layers) trained with
AdamW on mini-batches drawn from the training set held in memory, without a
DataLoader; evaluates on the first --test-limit test images and prints the
final loss and accuracy. Written the way such a script is usually written, not
tuned for the profiler: every step builds fresh tensors (batch gather,
normalization, activations, gradients), which is what a heap profiler sees.

    python3 bench/torch_train.py                  # 300 steps, batch 64
    python3 bench/torch_train.py --steps 20       # smoke run
"""
import argparse
import gzip
import time

import numpy as np
import torch
import torch.nn.functional as F


def load_idx(path, offset):
    """The payload of a gzip'ed IDX file, as uint8 (offset: header bytes)."""
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=offset)


def load_split(data_dir, prefix, limit=None):
    images = load_idx(f"{data_dir}/{prefix}-images-idx3-ubyte.gz", 16).reshape(-1, 1, 28, 28)
    labels = load_idx(f"{data_dir}/{prefix}-labels-idx1-ubyte.gz", 8)
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    x = torch.from_numpy(images.copy())
    y = torch.from_numpy(labels.astype(np.int64))
    return x, y


def normalize(x_u8):
    return (x_u8.float() / 255.0 - 0.2860) / 0.3530


class SmallCNN(torch.nn.Module):
    def __init__(self, channels=16, hidden=128):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(1, channels, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(channels, 2 * channels, 3, padding=1)
        self.fc1 = torch.nn.Linear(2 * channels * 7 * 7, hidden)
        self.fc2 = torch.nn.Linear(hidden, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)  # (B, C, 14, 14)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)  # (B, 2C, 7, 7)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        return self.fc2(x)


def evaluate(model, x, y, batch):
    model.eval()
    correct, loss_sum = 0, 0.0
    with torch.no_grad():
        for i in range(0, len(y), batch):
            logits = model(normalize(x[i:i + batch]))
            loss_sum += F.cross_entropy(logits, y[i:i + batch], reduction="sum").item()
            correct += (logits.argmax(1) == y[i:i + batch]).sum().item()
    model.train()
    return loss_sum / len(y), correct / len(y)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--channels", type=int, default=16)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--test-limit", type=int, default=2000)
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    p.add_argument("--log-every", type=int, default=100, help="0: no per-step log")
    p.add_argument("--seed", type=int, default=1337)
    a = p.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    t0 = time.perf_counter()
    x_train, y_train = load_split(a.data_dir, "train")
    x_test, y_test = load_split(a.data_dir, "t10k", a.test_limit)

    model = SmallCNN(a.channels, a.hidden)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr)
    n = len(y_train)
    perm = torch.randperm(n)
    loss = None
    for step in range(a.steps):
        start = (step * a.batch) % n
        if start + a.batch > n:  # next epoch
            perm = torch.randperm(n)
            start = 0
        idx = perm[start:start + a.batch]
        x, y = normalize(x_train[idx]), y_train[idx]
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        if a.log_every and (step + 1) % a.log_every == 0:
            print(f"step {step + 1} loss {loss.item():.4f}", flush=True)

    test_loss, test_acc = evaluate(model, x_test, y_test, 256)
    print(f"final_train_loss {loss.item() if loss is not None else float('nan'):.4f}")
    print(f"test_loss {test_loss:.4f}")
    print(f"test_accuracy {test_acc:.4f}")
    print(f"seconds {time.perf_counter() - t0:.2f} (torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads)")


if __name__ == "__main__":
    main()
