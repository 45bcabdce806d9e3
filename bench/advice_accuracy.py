#!/usr/bin/env python3
"""advice_accuracy.py - do mlmem's recommendations deliver the peak they
predict on the reference trainer?

Profiles `mlmem-train` (small: 4000 training samples, one epoch, one
thread) with `mlmem run --json`, takes each recommendation of the report
that carries mlmem-train flags and changes this run's peak (compression is
for deployment and churn saves page faults, not bytes: both are skipped),
reruns the trainer with those flags added, and compares the measured peak
with the predicted one:

    error = (measured - predicted) / measured

It also compares the saving (baseline peak minus the peak): the process's
peak includes buffers no change touches (OpenBLAS's), which make the peak's
error look small, so the saving's error is the stricter figure.

Each applied recommendation is also checked through `mlmem diff` of the two
traces: its changes must equal the two reports' differences exactly (the
peak, every category at the peak, and the changed sites' contributions,
which add up to the peak's change), its nearest prediction must be at
least as near the measured peak as the applied recommendation's, and
`mlmem diff` of the two JSON reports must say the same.

Usage: advice_accuracy.py [--build DIR] [--bound PCT] [--keep DIR] [-- EXTRA TRAINER ARGS]
Exit status 1 when any |error| exceeds the bound (default 10%).
"""
import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile

BASE = ["--limit-train", "4000", "--limit-test", "500", "--epochs", "1",
        "--log-every", "0", "--threads", "1", "--layout", "per-tensor",
        "--depth", "8"]


def profile(build, work, tag, args):
    rep = os.path.join(work, tag + ".json")
    cmd = [os.path.join(build, "bin", "mlmem"), "run", "-q", "-o", os.path.join(work, tag + ".zst"),
           "--json", rep, "--", os.path.join(build, "bin", "mlmem-train")] + args
    # One OpenBLAS thread from the start: otherwise its thread pool may get
    # a second 128 MiB buffer in some runs and not others, which no
    # recommendation is about.
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, env=env)
    with open(rep) as f:
        return json.load(f)


def mlmem_diff(build, work, tag, ext, out):
    """`mlmem diff` of the baseline's and run 'tag''s files ending in 'ext'
    (".zst": the traces, ".json": the reports), as parsed JSON."""
    out = os.path.join(work, out)
    subprocess.run([os.path.join(build, "bin", "mlmem"), "diff",
                    os.path.join(work, "baseline" + ext), os.path.join(work, tag + ext),
                    "--json", out], check=True, stdout=subprocess.DEVNULL)
    with open(out) as f:
        return json.load(f)


def check_diff(build, work, tag, base, new, rec):
    """`mlmem diff` of the baseline's and this run's traces against their
    reports. Returns a list of what disagrees."""
    d = mlmem_diff(build, work, tag, ".zst", tag + ".diff.json")
    bad = []
    # The same diff from the two JSON reports: reports keep what a diff needs.
    dr = mlmem_diff(build, work, tag, ".json", tag + ".diff-reports.json")
    for k in ("change", "categories", "nearest_prediction", "sites_comparable", "sites"):
        if k == "change":
            same = all(dr[k][f] == d[k][f] for f in ("peak_bytes", "total_allocations",
                                                        "leaked_bytes", "temporary_allocations"))
        else:
            same = dr[k] == d[k]
        if not same:
            bad.append("the reports' diff differs from the traces' in %s" % k)
    want = new["summary"]["peak_bytes"] - base["summary"]["peak_bytes"]
    if d["change"]["peak_bytes"] != want:
        bad.append("peak change %d, reports say %d" % (d["change"]["peak_bytes"], want))
    for cd in d["categories"]:
        w = new["categories"][cd["name"]]["bytes_at_peak"] - \
            base["categories"][cd["name"]]["bytes_at_peak"]
        if cd["change"] != w:
            bad.append("%s change %d, reports say %d" % (cd["name"], cd["change"], w))
    if not d["sites_comparable"]:
        bad.append("sites not comparable")
    elif len(d["sites"]) < 1000 and sum(s["change_at_peak"] for s in d["sites"]) != want:
        bad.append("site changes add up to %d, not %d" % (
            sum(s["change_at_peak"] for s in d["sites"]), want))
    near = d["nearest_prediction"]
    measured = new["summary"]["peak_bytes"]
    if want < 0:
        if near is None:
            bad.append("no nearest prediction")
        elif abs(near["error"]) > abs(rec["predicted_peak_bytes"] - measured):
            bad.append("nearest prediction (%s) farther than the applied one" % near["kind"])
    return bad


def mib(b):
    return b / (1024.0 * 1024.0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--bound", type=float, default=10.0)
    ap.add_argument("--keep")
    ap.add_argument("extra", nargs="*", help="more trainer flags (after --)")
    o = ap.parse_args()
    work = o.keep or tempfile.mkdtemp(prefix="advice_accuracy.")
    os.makedirs(work, exist_ok=True)
    base_args = BASE + o.extra
    base = profile(o.build, work, "baseline", base_args)
    peak = base["summary"]["peak_bytes"]
    print("mlmem-train " + " ".join(base_args))
    print("baseline peak %.2f MiB" % mib(peak))
    print("%-44s %-20s %10s %10s %8s %9s %9s %8s" % (
        "recommendation", "flags", "predicted", "measured", "error",
        "saving", "measured", "error"))
    worst = 0.0
    rows = 0
    diff_ok = True
    for i, rec in enumerate(base["recommendations"]):
        if not rec.get("flags") or rec.get("deployment_only") or rec["kind"] == "churn":
            continue
        r = profile(o.build, work, "rec%d" % i, base_args + shlex.split(rec["flags"]))
        measured = r["summary"]["peak_bytes"]
        pred = rec["predicted_peak_bytes"]
        err = 100.0 * (measured - pred) / measured
        worst = max(worst, abs(err))
        rows += 1
        ps, ms = peak - pred, peak - measured
        serr = 100.0 * (ms - ps) / ms if ms else float("inf")
        print("%-44s %-20s %8.2f M %8.2f M %+7.2f%% %7.2f M %7.2f M %+7.1f%%" % (
            rec["title"][:44], rec["flags"], mib(pred), mib(measured), err,
            mib(ps), mib(ms), serr))
        for b in check_diff(o.build, work, "rec%d" % i, base, r, rec):
            print("  mlmem diff: " + b)
            diff_ok = False
    print("worst |error| %.2f%% over %d recommendations (bound %.0f%%)" % (worst, rows, o.bound))

    # `mlmem advise` on the same report: the plan for a budget 10% under the
    # peak names flags, and one at a tenth of the peak falls short.
    ok = True
    mlmem = os.path.join(o.build, "bin", "mlmem")
    rep = os.path.join(work, "baseline.json")
    for budget, want in ((peak * 9 // 10, "within the budget"), (peak // 10, "No combination fits")):
        out = subprocess.run([mlmem, "advise", rep, "--budget", str(budget)], check=True,
                             capture_output=True, text=True).stdout
        plan = out[out.find("Plan for a budget"):]
        print(plan.rstrip())
        if want not in plan:
            print("advise: expected '%s' in the plan" % want)
            ok = False
    print("mlmem diff: %s" % ("every change equals the reports' differences" if diff_ok
                              else "disagrees with the reports (above)"))
    return 1 if worst > o.bound or rows == 0 or not ok or not diff_ok else 0


if __name__ == "__main__":
    sys.exit(main())
