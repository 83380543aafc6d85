#!/usr/bin/env python3
"""CPU speed of one training pass (forward + backward of sum(v * R)) of the PyTorch twin, eager
and under torch.compile, next to duet's own C implementation of the same model and batch.

    python3 experiments/torch_twin/bench_twin.py [--iters 10] [--threads N] [--no-compile]
                                                 [--exe build-twin/bin/duet_twin_dump]

Configs: "tiny" is tests/mmdit/tiny_config.h, "small" is duet's default [model] (a 32-frame
32x32 clip: 1024 video + 32 audio tokens, width 128, depth 4); "tiny.ini" and "small.ini" are
the shipped configs/tiny.ini (batch 4, as duet-train runs it) and configs/small.ini (batch 2). Tokens/s counts video and
audio tokens of the batch per pass, from the best pass (the median is shown too: on a shared
machine the best pass is the steadier figure). "cpu ms" is process CPU time per pass (best pass
for the twin, mean for duet): at one thread it leaves out time other processes held the core. duet's figure comes from
`duet_twin_dump --bench N`: the best of --repeat runs of the mean over N passes (float32,
OpenMP with OMP_NUM_THREADS = --threads).
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from duet_twin import DuetMMDiT, ModelConfig, random_inputs  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

TINY = dict(video_frames=4, video_height=8, video_width=8, patch_t=2, patch_h=4, patch_w=4, fps=16.0,
            audio_frames=16, audio_channels=8, patch_a=4, audio_rate=64.0, width_video=32, width_audio=16,
            width_text=24, heads_video=2, heads_audio=1, heads_text=2, depth=2, text_len=12, text_layers=1,
            rope_time_pairs=4)
# name: (config file or None, [model] overrides, batch). The two .ini rows are the shipped
# configs at the batch duet-train uses for tiny and at 2 clips for small (16 would need about
# 25 GB on the CPU).
CONFIGS = {
    "tiny": (None, TINY, 4),
    "small": (None, {}, 2),
    "tiny.ini": (os.path.join(ROOT, "configs", "tiny.ini"), {}, 4),
    "small.ini": (os.path.join(ROOT, "configs", "small.ini"), {}, 2),
}


def time_passes(step, iters, warmup):
    """Best and median wall time of a pass, and the best process CPU time of a pass: with one
    thread on a shared machine the CPU time leaves out the time other processes held the core."""
    for _ in range(warmup):
        step()
    times, cpu = [], []
    for _ in range(iters):
        t0, c0 = time.perf_counter(), time.process_time()
        step()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return min(times), statistics.median(times), min(cpu)


def torch_bench(cfg, batch, iters, compile_model):
    torch.manual_seed(0)
    model = DuetMMDiT(cfg)
    with torch.no_grad():  # away from the zero embeddings, so every path carries numbers
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    inputs = random_inputs(cfg, batch)
    rv = torch.randn_like(inputs["video_xt"])
    ra = torch.randn_like(inputs["audio_xt"])
    fwd = torch.compile(model) if compile_model else model

    def step():
        model.zero_grad(set_to_none=True)
        v, a = fwd(**inputs)
        ((v * rv).sum() + (a * ra).sum()).backward()

    t0 = time.perf_counter()
    step()  # compiles, when compiling
    first = time.perf_counter() - t0
    return time_passes(step, iters, 2), first


def model_sets(path):
    """The [model] section of a training config as --set overrides: duet_twin_dump reads only
    [model] and [flow] from a file, and a training config has [audio], [data] and [train] too."""
    sets, section = [], None
    with open(path) as f:
        for raw in f:
            line = raw.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                section = line.strip("[]").strip()
            elif section == "model" and "=" in line:
                key, value = (x.strip() for x in line.split("=", 1))
                cut = value.find(" ;")
                sets.append(f"model.{key}={(value[:cut] if cut >= 0 else value).strip()}")
    return sets


def duet_bench(exe, cfg_sets, batch, iters, threads):
    if not os.path.exists(exe):
        return None
    cmd = [exe, "--batch", str(batch), "--bench", str(iters)] + sum((["--set", s] for s in cfg_sets), [])
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    m = re.search(r"([0-9.]+) ms/pass", out)
    c = re.search(r"CPU time ([0-9.]+) ms/pass", out)
    if not m:
        return None
    return float(m.group(1)) / 1e3, float(c.group(1)) / 1e3 if c else None  # means over the passes


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=3, help="duet runs (best is kept)")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--exe", default=os.path.join(ROOT, "build-twin", "bin", "duet_twin_dump"))
    ap.add_argument("--only", help="comma-separated configs to run (default: all)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, float32, {args.iters} passes")
    print(f"{'config':<7} {'batch':>5} {'tokens':>6} {'impl':<20} {'best ms':>9} {'median ms':>9} {'cpu ms':>9} "
          f"{'tokens/s':>9}  note")
    for name, (path, overrides, batch) in CONFIGS.items():
        if args.only and name not in args.only.split(","):
            continue
        if path:
            with open(path) as f:
                cfg = ModelConfig.from_ini(f.read())
        else:
            cfg = ModelConfig(**overrides)
        tokens = batch * (cfg.video_tokens + cfg.audio_tokens)
        def row(impl, best, median=None, cpu=None, note=""):
            med = f"{1e3 * median:9.2f}" if median else f"{'':>9}"
            cms = f"{1e3 * cpu:9.2f}" if cpu else f"{'':>9}"
            print(f"{name:<7} {batch:>5} {tokens:>6} {impl:<20} {1e3 * best:9.2f} {med} {cms} {tokens / best:9.0f}  "
                  f"{note}", flush=True)
        sets = model_sets(path) if path else [f"model.{k}={v}" for k, v in overrides.items()]
        runs = [duet_bench(args.exe, sets, batch, args.iters, args.threads) for _ in range(args.repeat)]
        if runs and runs[0]:
            cpus = [r[1] for r in runs if r[1]]
            row("duet (C)", min(r[0] for r in runs), cpu=min(cpus) if cpus else None,
                note=f"mean of {args.iters} passes, best of {args.repeat} runs")
        (best, med, cpu), _ = torch_bench(cfg, batch, args.iters, False)
        row("twin eager", best, med, cpu)
        if not args.no_compile:
            try:
                (best, med, cpu), first = torch_bench(cfg, batch, args.iters, True)
                row("twin torch.compile", best, med, cpu, f"first pass (compile) {first:.1f} s")
            except Exception as e:  # noqa: BLE001 - report and go on
                print(f"{name:<7} {'':>5} {'':>6} {'twin torch.compile':<20} failed: {type(e).__name__}: {e}"[:300])


if __name__ == "__main__":
    main()
