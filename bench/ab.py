#!/usr/bin/env python3
"""bench/ab.py - an A/B loop: runs each command N times, alternating them
round by round, and prints for each its median wall time, that median over
the first command's, and the median of the per-round ratios (each run over
the first command's run of the same round), with a 95% confidence interval for
that median. The machines this runs on drift between fast and slow spells of
seconds; the per-round ratio pairs runs that saw the same spell, which the
medians of whole columns do not.

    bench/ab.py ROUNDS 'CMD1' 'CMD2' ...
    bench/ab.py 31 'build/bench/alloc_storm 400 1' \\
                   'build/bin/mlmem run -q -- build/bench/alloc_storm 400 1'

Each command runs through the shell, its output discarded; one that fails
stops the loop. Wall time by time.perf_counter around the whole command,
the shell's start included (about 1 ms here): compare commands, not
absolute times. The docs' tenth round lists the sets this produced.

The interval is distribution-free (order statistics of the per-round ratios,
binomial with p = 1/2): it assumes only that rounds are independent, which a
slow spell lasting several rounds breaks, so read it as a floor on the
uncertainty. Six rounds or more give one; fewer print "-"."""
import math
import statistics
import subprocess
import sys
import time


def median_interval(values, coverage=0.95):
    """The widest pair of order statistics (x_k, x_(n-k+1)) whose chance of
    holding the population median is at least 'coverage', or None."""
    ordered = sorted(values)
    n = len(ordered)
    below = 0.0  # P(Binomial(n, 1/2) < k), as k rises
    best = None
    for k in range(1, n // 2 + 1):
        below += math.comb(n, k - 1) / 2 ** n
        if 1 - 2 * below < coverage:
            break
        best = (ordered[k - 1], ordered[n - k])
    return best


def main():
    if len(sys.argv) < 3 or not sys.argv[1].isdigit():
        sys.exit(__doc__)
    rounds = int(sys.argv[1])
    cmds = sys.argv[2:]
    times = [[] for _ in cmds]
    for _ in range(rounds):
        for k, cmd in enumerate(cmds):
            start = time.perf_counter()
            subprocess.run(cmd, shell=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, check=True)
            times[k].append(time.perf_counter() - start)
    base = statistics.median(times[0])
    for k, cmd in enumerate(cmds):
        median = statistics.median(times[k])
        ratios = [a / b for a, b in zip(times[k], times[0])]
        interval = median_interval(ratios)
        shown = f"[{interval[0]:.3f}, {interval[1]:.3f}]" if interval else "-"
        print(f"{median:8.4f} s  {median / base:5.2f}x  per round {statistics.median(ratios):5.3f}x "
              f"95% {shown}  min {min(times[k]):.4f}  {cmd}")


if __name__ == "__main__":
    main()
