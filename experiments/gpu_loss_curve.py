#!/usr/bin/env python3
"""Does a GPU run track the CPU run's loss curve? Compares the per-step training losses of
duet-train runs (their metrics.jsonl) against a reference run, window by window.

    python3 experiments/gpu_loss_curve.py --reference cpu=runs/cpu --spread cpu-seed1=runs/cpu1 \\
        gpu-f32=runs/gpu_f32 gpu-bf16=runs/gpu_bf16 [--window 20]

All runs must share the config and seed except the --spread run, which changes only
train.seed. The reference and the GPU runs then draw the same clips, flow times and noise at
every step, so their losses differ only by arithmetic (f32 rounding order, bf16), and that
difference grows as the weights drift apart. The --spread run gives the scale against which
to judge it: how far the curve moves when only the random draws change (on small.ini, 0.2 % to
1.1 % per 20-step window over the first 120 steps). A run "tracks" the reference when, in every
window, its mean loss is within --max-rel (default 1 %, the size of that seed change) of the
reference's; the summary also counts the windows where it is closer than the seed change.
"""
import argparse
import json
import os
import sys


def read_losses(run_dir):
    """step -> training loss, from the run's metrics.jsonl."""
    path = os.path.join(run_dir, "metrics.jsonl")
    try:
        with open(path) as f:
            rows = [json.loads(line) for line in f if line.strip()]
    except OSError as e:
        sys.exit(f"gpu_loss_curve: {path}: {e.strerror}")
    losses = {r["step"]: r["loss"] for r in rows if r.get("kind") == "train"}
    if not losses:
        sys.exit(f"gpu_loss_curve: {path}: no training rows")
    return losses


def named(arg):
    name, sep, path = arg.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=RUN_DIR, got '{arg}'")
    return name, path


def window_means(losses, steps, window):
    return [sum(losses[s] for s in steps[i:i + window]) / len(steps[i:i + window])
            for i in range(0, len(steps), window)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reference", type=named, required=True, help="NAME=RUN_DIR of the CPU run")
    ap.add_argument("--spread", type=named, required=True, help="NAME=RUN_DIR: the reference with another seed")
    ap.add_argument("runs", type=named, nargs="+", help="NAME=RUN_DIR of each run to check")
    ap.add_argument("--window", type=int, default=20, help="steps per window (default 20)")
    ap.add_argument("--max-rel", type=float, default=0.01,
                    help="largest allowed |mean loss - reference| / reference per window (default 0.01)")
    args = ap.parse_args()

    ref_name, ref = args.reference[0], read_losses(args.reference[1])
    spread_name, spread = args.spread[0], read_losses(args.spread[1])
    runs = [(n, read_losses(p)) for n, p in args.runs]
    steps = sorted(set(ref).intersection(spread, *(r for _, r in runs)))
    if not steps:
        sys.exit("gpu_loss_curve: the runs share no steps")
    w = args.window
    ref_w = window_means(ref, steps, w)
    spread_w = window_means(spread, steps, w)

    names = [n for n, _ in runs]
    print(f"Steps {steps[0]}..{steps[-1]}, windows of {w} steps: mean training loss, and in brackets "
          f"the relative difference from {ref_name}.\n")
    print(f"| steps | {ref_name} | {spread_name} | " + " | ".join(names) + " |")
    print("| --- | ---: | ---: | " + " | ".join("---:" for _ in names) + " |")
    verdicts = {n: True for n in names}
    worst = {n: 0.0 for n in names}
    inside_spread = {n: 0 for n in names}
    run_w = {n: window_means(r, steps, w) for n, r in runs}
    for i, r0 in enumerate(ref_w):
        lo, hi = steps[i * w], steps[min(len(steps), (i + 1) * w) - 1]
        d_spread = abs(spread_w[i] - r0) / r0
        cells = []
        for n in names:
            d = abs(run_w[n][i] - r0) / r0
            worst[n] = max(worst[n], d)
            if d > args.max_rel:
                verdicts[n] = False
            inside_spread[n] += d <= d_spread
            cells.append(f"{run_w[n][i]:.4f} ({d:.1e})")
        print(f"| {lo}-{hi} | {r0:.4f} | {spread_w[i]:.4f} ({d_spread:.1e}) | " + " | ".join(cells) + " |")
    print()
    first = steps[0]
    for n, r in runs:
        print(f"{n}: first step loss {r[first]:.9f} against {ref[first]:.9f} "
              f"(rel {abs(r[first] - ref[first]) / ref[first]:.1e}); worst window {worst[n]:.1e}; closer than "
              f"the seed change in {inside_spread[n]} of {len(ref_w)} windows: "
              + ("tracks" if verdicts[n] else "DOES NOT track") + f" {ref_name} within {args.max_rel:g}")
    return 0 if all(verdicts.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
