#!/usr/bin/env python3
"""attribution_accuracy_torch.py - how much of the peak mlmem attributes to the
right category on training programs this project did not write the
allocation of: a PyTorch CPU training script (bench/torch_attribution.py,
Debian's python3-torch) and a C++ training loop with std::vector per tensor
(tests/e2e/e2e_cxx_train.cpp).

Neither is annotated when measured: mlmem sees PyTorch's c10 allocator
(posix_memalign, 64-byte aligned) under libtorch and interpreter frames, and
the C++ program's operator new under main.

Ground truth:
- C++: the program counts the bytes of every vector it allocates, per
  category, and writes the split at its own peak (--truth). Compared: the
  sites whose stack goes through the program's own binary (zlib's and
  libstdc++'s internal buffers are not in the truth).
- PyTorch: the script is run a second time with --annotate: it tags every
  tensor storage it knows right after its birth (parameters, each gradient
  as the engine stores it, optimizer state, dataset and batch, tensors saved
  for backward) through mlmem's annotation API, so mlmem's annotated bytes
  at that run's peak are exact; tensor storage nobody tagged is a
  temporary. Compared: tensor storage only (sites through c10::alloc_cpu),
  in both runs. The two runs allocate the same tensors; "seen bytes" shows
  the tensor bytes at each run's peak (equal: the peaks are the same
  instant of the step). The script's own --truth (sizes from
  numel() * element_size()) must match the annotated weights, optimizer
  state and data exactly (checked here).

    right = sum over categories of min(mlmem[c], truth[c])
    accuracy = right / sum(truth)

Usage: attribution_accuracy_torch.py [--build DIR] [--only cxx|torch|all]
           [--quick] [--min PCT] [--python EXE] [--keep DIR] [-v]
Exit status: 1 when a configuration falls below --min (default 95),
77 when --only torch and no python3 can import torch.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

CATS = ["weights", "gradients", "optimizer_state", "activations", "data",
        "temporaries", "other"]
HERE = os.path.dirname(os.path.abspath(__file__))

CXX_CONFIGS = [
    ("c++ adam batch 128", ["--batch", "128"]),
    ("c++ adam hidden 512 batch 32", ["--hidden", "512", "--batch", "32", "--steps", "30"]),
]
TORCH_CONFIGS = [
    ("torch adam set_to_none", []),
    ("torch momentum set_to_none", ["--optimizer", "momentum"]),
    ("torch adam keep grads", ["--keep-grads"]),
    ("torch adam batch 1024", ["--batch", "1024", "--steps", "30"]),
]
SKIP = 77


def find_torch_python(explicit):
    cands = [explicit] if explicit else [sys.executable, "/usr/bin/python3", "python3"]
    for exe in cands:
        try:
            r = subprocess.run([exe, "-c", "import torch"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, timeout=120)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if r.returncode == 0:
            return exe
    return None


def mlmem_run(build, report, cmd):
    full = [os.path.join(build, "bin", "mlmem"), "run", "-q", "--no-trace", "--json", report,
            "--"] + cmd
    subprocess.run(full, check=True, stdout=subprocess.DEVNULL)
    with open(report) as f:
        return json.load(f)


def by_category(rep, keep):
    got = {c: 0 for c in CATS}
    for s in rep["sites"]:
        if keep(s) and s.get("category") in got:
            got[s["category"]] += s["live_bytes_at_peak"]
    return got


def score(got, truth):
    total = sum(truth.values())
    right = sum(min(got[c], truth[c]) for c in CATS)
    return 100.0 * right / total if total else 100.0


def measure_cxx(build, work, name, args):
    tag = name.replace(" ", "_").replace("+", "x")
    gt_path = os.path.join(work, tag + ".truth.json")
    exe = os.path.join(build, "bin", "e2e", "e2e_cxx_train")
    rep = mlmem_run(build, os.path.join(work, tag + ".mlmem.json"),
                    [exe, "--truth", gt_path] + args)
    with open(gt_path) as f:
        truth = json.load(f)["peak"]["bytes"]
    truth = {c: truth.get(c, 0) for c in CATS}
    got = by_category(rep, lambda s: any((fr.get("module") or "").endswith("/e2e_cxx_train")
                                         for fr in s["frames"]))
    return got, truth, rep, None


def is_tensor(site):
    return any((f.get("function") or "").startswith("c10::alloc_cpu") for f in site["frames"])


def measure_torch(build, work, name, args, python, quick):
    tag = name.replace(" ", "_")
    script = os.path.join(HERE, "torch_attribution.py")
    steps = [] if "--steps" in args else ["--steps", "30" if quick else "60"]
    gt_path = os.path.join(work, tag + ".truth.json")
    ann = mlmem_run(build, os.path.join(work, tag + ".annotated.json"),
                    [python, script, "--annotate", "--truth", gt_path] + steps + args)
    rep = mlmem_run(build, os.path.join(work, tag + ".mlmem.json"),
                    [python, script] + steps + args)
    truth = {c: ann["categories"][c]["bytes_at_peak_by_evidence"]["annotation"] for c in CATS}
    # A block born at the peak instant is tagged just after it (a gradient
    # is stored in .grad after the kernel that made it returns): its bytes
    # are unannotated at the peak. A site (one stack) whose tagged blocks
    # all have one category makes nothing else in this script: its
    # untagged bytes at the peak take that category.
    for s in ann["sites"]:
        if (is_tensor(s) and s.get("evidence_kind") == "annotation"
                and s.get("evidence") == "annotation" and s["category"] in truth):
            truth[s["category"]] += s.get("unannotated_bytes_at_peak", 0)
    # The same when most of such a site's bytes at the peak are that one
    # block: a backward-pass site holding untagged bytes of exactly one
    # parameter's size while some gradients are still untagged.
    with open(gt_path) as f:
        sizes = json.load(f)
    missing = sizes["gradients"] - truth["gradients"]
    for s in ann["sites"]:
        u = s.get("unannotated_bytes_at_peak", 0)
        if (is_tensor(s) and s.get("evidence_kind") != "annotation" and 0 < u <= missing
                and u in sizes["parameter_bytes"]
                and any((f.get("function") or "").startswith("torch::autograd::Engine::")
                        for f in s["frames"])):
            truth["gradients"] += u
            missing -= u
    tensor_total = sum(s["live_bytes_at_peak"] for s in ann["sites"] if is_tensor(s))
    truth["temporaries"] += tensor_total - sum(truth.values())
    problems = []
    for c in ("weights", "optimizer_state"):
        if truth[c] != sizes[c]:
            problems.append("annotated %s %d != %d from tensor sizes" % (c, truth[c], sizes[c]))
    if truth["data"] not in (sizes["data"], sizes["data"] + sizes["batch_bytes"]):
        problems.append("annotated data %d != %d (+ batch %d) from tensor sizes"
                        % (truth["data"], sizes["data"], sizes["batch_bytes"]))
    got = by_category(rep, is_tensor)
    return got, truth, rep, "; ".join(problems) or None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.environ.get("MLMEM_BUILD_DIR", "build"))
    ap.add_argument("--only", default="all", choices=["all", "cxx", "torch"])
    ap.add_argument("--quick", action="store_true", help="one configuration each, fewer steps")
    ap.add_argument("--min", type=float, default=95.0)
    ap.add_argument("--python", default=None, help="a python3 that can import torch")
    ap.add_argument("--keep", default=None, help="keep reports in this directory")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args()
    work = a.keep or tempfile.mkdtemp(prefix="mlmem-attr-x-")
    os.makedirs(work, exist_ok=True)

    runs = []
    if a.only in ("all", "cxx"):
        for name, args in CXX_CONFIGS[:1] if a.quick else CXX_CONFIGS:
            runs.append((name, lambda n=name, g=args: measure_cxx(a.build, work, n, g)))
    if a.only in ("all", "torch"):
        python = find_torch_python(a.python)
        if not python:
            print("attribution_accuracy_torch: no python3 here can import torch "
                  "(Debian: apt-get install python3-torch); PyTorch part skipped")
            if a.only == "torch":
                return SKIP
        else:
            for name, args in TORCH_CONFIGS[:1] if a.quick else TORCH_CONFIGS:
                runs.append((name, lambda n=name, g=args: measure_torch(a.build, work, n, g,
                                                                        python, a.quick)))
    failed = False
    print("%-30s %9s %12s %12s %s" % ("program", "accuracy", "truth bytes", "seen bytes",
                                      "steps"))
    for name, fn in runs:
        got, truth, rep, problem = fn()
        acc = score(got, truth)
        ok = acc >= a.min - 1e-9 and not problem
        failed |= not ok
        st = rep.get("steps", {})
        print("%-30s %8.2f%% %12d %12d %s %s%s" % (
            name, acc, sum(truth.values()), sum(got.values()), st.get("source"),
            st.get("count"), "" if acc >= a.min - 1e-9 else "   BELOW %.1f%%" % a.min))
        if problem:
            print("    ground truth inconsistent: " + problem)
        if a.verbose or not ok:
            for c in CATS:
                print("    %-16s mlmem %10d  truth %10d" % (c, got[c], truth[c]))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
