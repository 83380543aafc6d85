#!/usr/bin/env python3
"""duet's CUDA backend against the PyTorch twin on one GPU, in one run: training step time,
tokens/s and MFU for a config and batch, and attention forward + backward at the model's own
attention shapes.

    python3 experiments/bench_gpu_compare.py [--config configs/base.ini] [--batch 4]
        [--build build-gpu] [--steps 20] [--iters 10] [--no-compile] [--out DIR]

It runs three programs and joins their figures:
  1. bench_train --configs NAME --batch B --set train.device=cuda --set train.precision=bf16
     (duet's whole training step: loader, flow inputs, bf16 forward and backward, AdamW, EMA);
  2. torch_twin/bench_twin_gpu.py (the twin's step, eager and torch.compile, its FLOPs counted
     by torch's FlopCounterMode, and SDPA alone at every attention shape the model calls);
  3. bench_gpu --attn ... with those same shapes (duet's fused attention).
MFU uses the twin's FLOP count for both sides: the two run the same model on the same batch.
The raw outputs go to --out (default: a fresh folder under /tmp); the summary is Markdown on
stdout. Without a CUDA device it says so and exits 77.
"""
import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def fail(message, code=2):
    print(f"bench_gpu_compare: {message}", file=sys.stderr)
    sys.exit(code)


def run(cmd, log_path, env=None, timeout=None):
    """Runs cmd with its output in log_path; returns the output, or None if it failed."""
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        with open(log_path, "w") as f:
            f.write(out + f"\n(timed out after {timeout} s)\n")
        print(f"bench_gpu_compare: {os.path.basename(cmd[0])} timed out after {timeout} s (log: {log_path})",
              file=sys.stderr)
        return None
    with open(log_path, "w") as f:
        f.write(p.stdout + p.stderr)
    if p.returncode == 77:
        fail("no CUDA device: skipped", 77)
    if p.returncode != 0:
        print(f"bench_gpu_compare: {' '.join(cmd[:2])} exited with {p.returncode} (log: {log_path})", file=sys.stderr)
        return None
    return p.stdout


def duet_step(args, out_dir):
    """Seconds per step and tokens/s of duet's training step, from bench_train's table row."""
    name = os.path.splitext(os.path.basename(args.config))[0]
    exe = os.path.join(args.build, "bin", "bench_train")
    env = dict(os.environ, DUET_SOURCE_DIR=os.path.dirname(os.path.dirname(os.path.abspath(args.config))))
    text = run([exe, "--configs", name, "--steps", str(args.steps), "--batch", str(args.batch),
                "--set", "train.device=cuda", "--set", "train.precision=bf16"],
               os.path.join(out_dir, "bench_train.md"), env=env, timeout=args.timeout)
    if text is None:
        return None
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and cells[0] == name and len(cells) >= 11 and not cells[1].startswith("failed"):
            return dict(s_per_step=float(cells[5]), tokens_per_s=float(cells[7]), gpu_mib=cells[10])
    print(f"bench_gpu_compare: bench_train gave no row for {name}: {text.strip()[-300:]}", file=sys.stderr)
    return None


def twin(args, out_dir):
    path = os.path.join(out_dir, "twin.json")
    cmd = [sys.executable, os.path.join(ROOT, "experiments", "torch_twin", "bench_twin_gpu.py"), "--config",
           args.config, "--batch", str(args.batch), "--iters", str(args.iters), "--json", path]
    if args.no_compile:
        cmd.append("--no-compile")
    if run(cmd, os.path.join(out_dir, "twin.md"), env=dict(os.environ, PYTHONUNBUFFERED="1"),
           timeout=args.timeout) is None or not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def duet_attention(args, shapes, out_dir):
    """Forward+backward ms of duet's attention per shape, from bench_gpu's table."""
    exe = os.path.join(args.build, "bin", "bench_gpu")
    cmd = [exe, "20"]
    for a in shapes:
        cmd += ["--attn", f"{a['B']},{a['H']},{a['Lq']},{a['Lk']},{a['Dh']}" + (",m" if a["masked"] else "")]
    text = run(cmd, os.path.join(out_dir, "bench_gpu.md"), timeout=args.timeout)
    if text is None:
        return None
    rows = [line for line in text.splitlines() if line.startswith("| attention")]
    ms = []
    for line in rows:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        ms.append(float(cells[5]))  # fwd+bwd ms
    return ms if len(ms) == len(shapes) else None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=os.path.join(ROOT, "configs", "base.ini"))
    ap.add_argument("--batch", type=int, default=4, help="clips per step (default 4: base.ini's 8 needs more than 80 GB in duet)")
    ap.add_argument("--build", default=os.path.join(ROOT, "build-gpu"), help="duet build folder with bin/bench_train and bin/bench_gpu")
    ap.add_argument("--steps", type=int, default=20, help="duet steps timed (default 20)")
    ap.add_argument("--iters", type=int, default=10, help="twin steps timed (default 10)")
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile row (it can take minutes)")
    ap.add_argument("--peak-tflops", type=float, default=989.4, help="bf16 dense peak for MFU (default: H100 SXM)")
    ap.add_argument("--timeout", type=int, default=900, help="seconds allowed to each program (default 900)")
    ap.add_argument("--out", help="folder for the raw outputs (default: a new one under /tmp)")
    args = ap.parse_args()
    if not os.path.isfile(args.config):
        fail(f"{args.config}: no such config")
    for exe in ("bench_train", "bench_gpu"):
        if not os.path.isfile(os.path.join(args.build, "bin", exe)):
            fail(f"{os.path.join(args.build, 'bin', exe)}: not built (configure with -DDUET_CUDA=ON)")
    out_dir = args.out or tempfile.mkdtemp(prefix="duet-gpu-compare-")
    os.makedirs(out_dir, exist_ok=True)
    # bench_gpu exits 77 at once without a device; with one, this single tiny shape is quick.
    run([os.path.join(args.build, "bin", "bench_gpu"), "1", "--attn", "1,1,16,16,64"],
        os.path.join(out_dir, "device_check.md"), timeout=120)

    d = duet_step(args, out_dir)
    t = twin(args, out_dir)
    shapes = t["attention"] if t and t.get("attention") else []
    att = duet_attention(args, shapes, out_dir) if shapes else None
    summarize(args, d, t, att, out_dir)
    return 0 if d and t else 1


def summarize(args, d, t, att, out_dir):
    """The Markdown summary of duet's step (d), the twin's report (t) and duet's attention
    times per twin shape (att)."""
    shapes = t["attention"] if t and t.get("attention") else []
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    device = t["device"] if t else "unknown device"
    print(f"# duet against the PyTorch twin: {when}, {device}\n")
    print(f"config {args.config}, batch {args.batch}, bf16 (duet: train.precision = bf16; twin: f32 weights, "
          f"bf16 autocast). Raw outputs in {out_dir}.\n")
    flops = t["flops_per_step"] if t else None
    if flops:
        print(f"FLOPs per step: {flops / 1e12:.2f} TFLOP ({t['flop_counter']} on the twin); "
              f"MFU against {args.peak_tflops:g} TFLOP/s.\n")
    print("| step | ms/step | tokens/s | MFU | duet speed / this |")
    print("| --- | ---: | ---: | ---: | ---: |")
    duet_ms = d["s_per_step"] * 1e3 if d else None

    def mfu(ms):
        return f"{flops / (ms / 1e3) / (args.peak_tflops * 1e12):.1%}" if flops and ms else "-"

    if d:
        print(f"| duet (bench_train, whole step) | {duet_ms:.1f} | {d['tokens_per_s']:,.0f} | {mfu(duet_ms)} | 1.00x |")
    else:
        print("| duet | failed | | | |")
    for row in (t["steps"] if t else []):
        ms = row.get("median_ms")
        if not ms:
            print(f"| twin {row['row']} | {row.get('error', 'failed')} | | | |")
            continue
        ratio = f"{ms / duet_ms:.2f}x" if duet_ms else "-"
        print(f"| twin {row['row']} | {ms:.1f} | {row['tokens_per_s']:,.0f} | {mfu(ms)} | {ratio} |")
    if shapes:
        print("\nAttention, bf16, forward + backward at the model's shapes (duet: bench_gpu; twin: SDPA alone):\n")
        print("| B | H | Lq | Lk | Dh | mask | calls/forward | duet ms | SDPA ms | duet speed / SDPA |")
        print("| --: | --: | --: | --: | --: | --- | --: | --: | --: | --: |")
        tot_d = tot_s = 0.0
        for i, a in enumerate(shapes):
            dm = att[i] if att else None
            sm = a.get("fwd_bwd_ms")
            calls = a.get("calls_per_forward", 1)
            if dm and sm:
                tot_d += dm * calls
                tot_s += sm * calls
            print(f"| {a['B']} | {a['H']} | {a['Lq']} | {a['Lk']} | {a['Dh']} | {'yes' if a['masked'] else 'no'} | {calls} | "
                  f"{f'{dm:.3f}' if dm else '-'} | {f'{sm:.3f}' if sm else a.get('error', '-')} | "
                  + (f"{sm / dm:.2f}x" if dm and sm else "-") + " |")
        if tot_d and tot_s:
            print(f"\nOver one step's calls: duet {tot_d:.1f} ms, SDPA {tot_s:.1f} ms: duet at {tot_s / tot_d:.2f}x SDPA's speed.")


if __name__ == "__main__":
    sys.exit(main())
