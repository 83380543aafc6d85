#!/usr/bin/env python3
"""CPU speed and memory of the PyTorch twin's training step, set up like duet-train's step on
the same config, for bench_train --twin (which prints it beside duet's own row).

    python3 experiments/torch_twin/bench_twin_step.py --config configs/tiny.ini --batch 4
        [--steps 10] [--warmup 2] [--threads N] [--compile]

The step, in float32: fresh flow draws for the batch (t logit-normal per clip, noise for both
modalities, x_t = (1 - t) x_0 + t eps, target eps - x_0), forward, MSE velocity loss of video
plus audio, backward, clip_grad_norm_ at [train] grad_clip, AdamW (fused=True, torch's fastest
CPU AdamW) with the config's lr, betas, eps and weight decay, and the EMA update at [train]
ema_decay (torch._foreach_lerp_). With [train] matmul_precision = bf16 the products take bf16
inputs (torch.backends.mkldnn.matmul.fp32_precision = "bf16"), as duet's do. The clean latents x_0 are made
once (duet's step also reads and decodes clips; this one does not). Prints one line:

    twin-step <median ms> <min ms> <CPU s per step> <peak RSS MiB> <parameters> <first step s>

Peak RSS is the process's (ru_maxrss), so run one configuration per process.
"""
import argparse
import configparser
import os
import resource
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from duet_twin import DuetMMDiT, ModelConfig, random_inputs  # noqa: E402


def fail(message):
    print(f"bench_twin_step: {message}", file=sys.stderr)
    sys.exit(2)


def train_settings(text):
    """The [train] keys the step uses, with duet-train's defaults where the file has none."""
    ini = configparser.ConfigParser(inline_comment_prefixes=(";", "#"), interpolation=None)
    ini.read_string(text)
    t = ini["train"] if ini.has_section("train") else {}
    get = lambda key, default: float(t.get(key, default))
    return dict(lr=get("lr", 1e-4), beta1=get("beta1", 0.9), beta2=get("beta2", 0.99), eps=get("eps", 1e-8),
                weight_decay=get("weight_decay", 0.0), grad_clip=get("grad_clip", 1.0),
                ema_decay=get("ema_decay", 0.999), matmul_precision=t.get("matmul_precision", "f32"))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True)
    ap.add_argument("--batch", type=int, required=True)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--compile", action="store_true", help="torch.compile the model")
    a = ap.parse_args()
    if not os.path.isfile(a.config):
        fail(f"config file not found: {a.config}")
    if a.batch < 1 or a.steps < 1 or a.warmup < 0 or a.threads < 1:
        fail("--batch, --steps and --threads must be at least 1, --warmup at least 0")
    torch.set_num_threads(a.threads)
    with open(a.config) as f:
        text = f.read()
    cfg, ts = ModelConfig.from_ini(text), train_settings(text)
    if ts["matmul_precision"] == "bf16":
        # duet's train.matmul_precision = bf16: f32 tensors, products with bf16 inputs (oneDNN).
        torch.backends.mkldnn.matmul.fp32_precision = "bf16"
    elif ts["matmul_precision"] != "f32":
        fail(f"train.matmul_precision = {ts['matmul_precision']}: expected f32 or bf16")

    torch.manual_seed(0)
    model = DuetMMDiT(cfg)
    params = list(model.parameters())
    ema = [p.detach().clone() for p in params]
    # Decay on matrices only, as duet's AdamW does.
    opt = torch.optim.AdamW([{"params": [p for p in params if p.ndim >= 2], "weight_decay": ts["weight_decay"]},
                             {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}],
                            lr=ts["lr"], betas=(ts["beta1"], ts["beta2"]), eps=ts["eps"], fused=True)
    fwd = torch.compile(model) if a.compile else model
    inputs = random_inputs(cfg, a.batch)
    x0_video, x0_audio = inputs["video_xt"].clone(), inputs["audio_xt"].clone()
    inputs["video_mask"].fill_(1.0)
    inputs["audio_mask"].fill_(1.0)
    inputs["video_cond"].zero_()
    inputs["audio_cond"].zero_()
    B = a.batch

    def step():
        t = torch.sigmoid(torch.randn(B))
        eps_v, eps_a = torch.randn_like(x0_video), torch.randn_like(x0_audio)
        tv, ta = t.view(B, 1, 1, 1, 1), t.view(B, 1, 1)
        inputs["video_xt"] = (1 - tv) * x0_video + tv * eps_v
        inputs["audio_xt"] = (1 - ta) * x0_audio + ta * eps_a
        inputs["t_video"], inputs["t_audio"] = t, t
        opt.zero_grad(set_to_none=True)
        video_v, audio_v = fwd(**inputs)
        loss = F.mse_loss(video_v, eps_v - x0_video) + F.mse_loss(audio_v, eps_a - x0_audio)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, ts["grad_clip"])
        opt.step()
        with torch.no_grad():
            torch._foreach_lerp_(ema, [p.detach() for p in params], 1.0 - ts["ema_decay"])

    t0 = time.perf_counter()
    step()  # compiles when compiling; allocates the AdamW moments
    first = time.perf_counter() - t0
    for _ in range(a.warmup):
        step()
    times = []
    c0 = time.process_time()
    for _ in range(a.steps):
        s0 = time.perf_counter()
        step()
        times.append(1e3 * (time.perf_counter() - s0))
    cpu = (time.process_time() - c0) / a.steps
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    n = sum(p.numel() for p in params)
    print(f"twin-step {statistics.median(times):.3f} {min(times):.3f} {cpu:.4f} {rss_mib:.0f} {n} {first:.2f}")


if __name__ == "__main__":
    main()
