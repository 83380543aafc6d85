#!/usr/bin/env python3
"""GPU speed of a PyTorch training step of the twin, set up the way a PyTorch user would train it,
to put beside duet's own CUDA backend on the same config and batch.

    python3 experiments/torch_twin/bench_twin_gpu.py --config configs/small.ini --batch 8
        [--iters 20] [--warmup 3] [--device cuda|cpu] [--no-compile] [--no-attention]
        [--peak-tflops 989.4] [--json out.json]

The step: float32 parameters, forward under torch.autocast(bfloat16), loss = MSE of the video
prediction + MSE of the audio prediction against random targets (flow matching's velocity
loss), backward, clip_grad_norm_(1.0), AdamW (lr 1e-4, betas 0.9/0.95, weight decay 0.01, fused
on CUDA). Rows: eager, and torch.compile(model) (its first step, which compiles, is reported
apart). Step times are CUDA-event times of the whole step (perf_counter on the CPU): median and
min over --iters steps after --warmup. Tokens per clip are video + audio tokens of the config
(text tokens not counted). FLOPs per step are counted by torch.utils.flop_counter.FlopCounterMode
over one eager forward + backward (matmuls and attention); MFU = FLOPs / step time / peak.

The attention table times F.scaled_dot_product_attention in bfloat16 alone at every distinct
attention shape the model calls at this config and batch (recorded during one eager forward),
forward and forward + backward, with FLOPs counted as 4 B H Lq Lk Dh forward, 3.5x that for
forward + backward.

--device cpu exists to test the script on a machine without a GPU (a tiny config); its times
say nothing about GPU speed.
"""
import argparse
import copy
import datetime
import functools
import gc
import json
import os
import statistics
import sys
import time
import warnings

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from duet_twin import DuetMMDiT, ModelConfig, random_inputs  # noqa: E402

FLOP_COUNTER = "torch.utils.flop_counter.FlopCounterMode"
OOM_ERRORS = tuple({getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError),
                    torch.cuda.OutOfMemoryError})


# ---------------------------------------------------------------------------------------------
# Command line and setup


def fail(message):
    """One line on stderr and exit status 2 (bad invocation)."""
    print(f"bench_twin_gpu: {message}", file=sys.stderr)
    sys.exit(2)


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True, help="duet training config (.ini); its [model] section is used")
    ap.add_argument("--batch", type=int, required=True, help="clips per step")
    ap.add_argument("--iters", type=int, default=20,
                    help="timed steps, and timed calls per attention shape (default 20)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps or calls before timing (default 3)")
    # Checked by hand rather than with choices=, so a bad value gives a single line on stderr.
    ap.add_argument("--device", default="cuda", help="cuda or cpu (default cuda; cpu only to test the script)")
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile row")
    ap.add_argument("--no-attention", action="store_true", help="skip the scaled_dot_product_attention table")
    ap.add_argument("--peak-tflops", type=float, default=989.4,
                    help="peak dense bf16 TFLOP/s for MFU (default 989.4, H100 SXM)")
    ap.add_argument("--json", metavar="PATH", help="also write every figure to this JSON file")
    args = ap.parse_args()
    if not os.path.isfile(args.config):
        fail(f"config file not found: {args.config}")
    if args.device not in ("cuda", "cpu"):
        fail(f"unknown device '{args.device}' (cuda or cpu)")
    if args.device == "cuda" and not torch.cuda.is_available():
        fail("--device cuda, but torch sees no CUDA device (use --device cpu to test on the CPU)")
    if args.batch < 1 or args.iters < 1 or args.warmup < 0:
        fail("--batch and --iters must be at least 1, --warmup at least 0")
    if args.peak_tflops <= 0:
        fail("--peak-tflops must be positive")
    return args


def load_config(path):
    """The twin's ModelConfig from a training config's [model] section, as bench_twin.py and
    check.py build it."""
    with open(path) as f:
        return ModelConfig.from_ini(f.read())


def is_oom(e):
    """True for a device out-of-memory error, also when torch.compile wraps one in its own."""
    while e is not None:
        if isinstance(e, OOM_ERRORS) or "out of memory" in str(e).lower():
            return True
        e = e.__cause__ or e.__context__
    return False


def release(device):
    """Returns freed memory to the device between rows, so each row's peak is its own."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def reset_peak(device):
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()


def peak_gib(device):
    return torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None


def time_ms(fn, iters, warmup, device):
    """Milliseconds of each of `iters` calls of fn, after `warmup` untimed calls. On CUDA an event
    pair brackets each call in the stream: a call's time is the stream's time from the one event
    to the other, its kernels plus any gaps while the GPU waited for the host to launch them,
    and the host never waits for the GPU between calls (only the model itself may make it)."""
    for _ in range(warmup):
        fn()
    sync(device)
    if device.type != "cuda":
        times = []
        for _ in range(iters):
            t0 = time.perf_counter()
            fn()
            times.append(1e3 * (time.perf_counter() - t0))
        return times
    events = []
    for _ in range(iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        events.append((start, end))
    torch.cuda.synchronize()
    return [s.elapsed_time(e) for s, e in events]


# ---------------------------------------------------------------------------------------------
# Training step


def to_device(tensors, device):
    return {k: v.to(device) for k, v in tensors.items()}


def make_batch(cfg, batch, device):
    """random_inputs() plus velocity targets of the outputs' shapes, on the device. Made once and
    shared by every row, so eager and compiled steps see the same numbers."""
    inputs = random_inputs(cfg, batch)
    g = torch.Generator().manual_seed(1)
    targets = {"video": torch.randn(inputs["video_xt"].shape, generator=g),
               "audio": torch.randn(inputs["audio_xt"].shape, generator=g)}
    return to_device(inputs, device), to_device(targets, device)


def forward_loss(fwd, inputs, targets, device):
    """Forward under bf16 autocast; the flow-matching velocity loss of both modalities in f32."""
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
        video_v, audio_v = fwd(**inputs)
    return F.mse_loss(video_v.float(), targets["video"]) + F.mse_loss(audio_v.float(), targets["audio"])


def make_step(model, fwd, inputs, targets, device):
    """One optimizer step: forward, loss, backward, gradient clipping, AdamW."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.01,
                            fused=True if device.type == "cuda" else None)

    def step():
        opt.zero_grad(set_to_none=True)
        forward_loss(fwd, inputs, targets, device).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    return step


def count_flops(model, inputs, targets, device):
    """FLOPs of one eager forward + backward as FlopCounterMode counts them (matmuls and the
    attention kernels; elementwise ops, norms and the optimizer count nothing)."""
    from torch.utils.flop_counter import FlopCounterMode
    counter = FlopCounterMode(display=False)
    with counter:
        forward_loss(model, inputs, targets, device).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def step_row(name, base_model, inputs, targets, args, device, compile_model):
    """Times the training step of a fresh copy of base_model (same weights in every row)."""
    reset_peak(device)
    model = copy.deepcopy(base_model).to(device)
    fwd = torch.compile(model) if compile_model else model
    step = make_step(model, fwd, inputs, targets, device)
    t0 = time.perf_counter()
    step()  # compiles (forward and backward graphs) when compiling; allocates AdamW state
    sync(device)
    first_s = time.perf_counter() - t0
    times = time_ms(step, args.iters, args.warmup, device)
    return dict(row=name, first_step_s=first_s, median_ms=statistics.median(times), min_ms=min(times),
                peak_gib=peak_gib(device), times_ms=times)


# ---------------------------------------------------------------------------------------------
# Attention calls of the model


def attention_kernel(fn):
    """Runs fn() and names the attention kernel that torch dispatched to (the aten op below
    F.scaled_dot_product_attention) and its input dtype; "math" when it decomposed into plain
    matmuls and softmax. A dispatch mode sees ops after autocast has cast their inputs."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Ops(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.found = None

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            name = func.overloadpacket.__name__
            if self.found is None and "attention" in name:
                self.found = (name.lstrip("_").replace("scaled_dot_product_", ""), args[0].dtype)
            return func(*args, **(kwargs or {}))

    with Ops() as ops:
        out = fn()
    if ops.found is None:
        return out, "math", None
    return out, ops.found[0], ops.found[1]


def short_dtype(dtype):
    return str(dtype).replace("torch.", "") if dtype is not None else "?"


def record_attention_calls(model, inputs, device):
    """Every distinct F.scaled_dot_product_attention call of one eager forward as the step runs
    it (autocast, gradients on: torch may pick another kernel for a call that needs a backward),
    keyed by (B, H, Lq, Lk, Dh, masked), with its count, the first mask passed with that key,
    the dtype the model hands in and the kernel torch ran."""
    calls = {}
    original = F.scaled_dot_product_attention

    def recording(q, k, v, attn_mask=None, *rest, **kw):
        B, H, Lq, Dh = q.shape
        key = (B, H, Lq, k.shape[2], Dh, attn_mask is not None)
        entry = calls.get(key)
        if entry is not None:
            entry["count"] += 1
            return original(q, k, v, attn_mask, *rest, **kw)
        out, kernel, kdtype = attention_kernel(lambda: original(q, k, v, attn_mask, *rest, **kw))
        calls[key] = dict(key=key, count=1, model_dtype=short_dtype(q.dtype), model_kernel=kernel,
                          model_kernel_dtype=short_dtype(kdtype),
                          mask=None if attn_mask is None else attn_mask.detach().clone())
        return out

    # The twin calls F.scaled_dot_product_attention through the module attribute, so replacing
    # the attribute for one forward sees every call.
    F.scaled_dot_product_attention = recording
    try:
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
            model(**inputs)  # the outputs, and the activations they hold, are dropped here
    finally:
        F.scaled_dot_product_attention = original
    return list(calls.values())


def flash_only_runs(q, k, v, mask):
    """Whether the flash-attention backend alone accepts this call (torch warns and raises
    when it does not)."""
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except ImportError:
        return "?"
    try:
        with warnings.catch_warnings(), sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            warnings.simplefilter("ignore")
            F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return "runs"
    except RuntimeError:
        return "no"


def attention_row(index, call, args, device):
    """Times F.scaled_dot_product_attention in bf16 at one recorded shape, with the model's
    layout (each of q, k, v a [B, H, L, Dh] view of a [B, L, H, Dh] tensor) and its mask."""
    B, H, Lq, Lk, Dh, masked = call["key"]
    bf16 = torch.bfloat16

    def qkv(requires_grad):
        make = lambda L: torch.randn(B, L, H, Dh, device=device, dtype=bf16, requires_grad=requires_grad)
        return [make(Lq), make(Lk), make(Lk)]

    mask = call["mask"].to(device) if masked else None
    q, k, v = (t.transpose(1, 2) for t in qkv(False))
    sdpa = lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    _, fwd_kernel, _ = attention_kernel(sdpa)
    flash = flash_only_runs(q, k, v, mask)
    fwd_ms = time_ms(sdpa, args.iters, args.warmup, device)

    leaves = qkv(True)
    q, k, v = (t.transpose(1, 2) for t in leaves)
    grad = torch.randn(B, H, Lq, Dh, device=device, dtype=bf16)
    _, train_kernel, _ = attention_kernel(sdpa)  # the kernel may differ when a backward follows
    kernel = train_kernel if train_kernel == fwd_kernel else f"{fwd_kernel} (fwd), {train_kernel} (fwd+bwd)"

    def fwd_bwd():
        for t in leaves:
            t.grad = None
        sdpa().backward(grad)
    fb_ms = time_ms(fwd_bwd, args.iters, args.warmup, device)

    flops = 4 * B * H * Lq * Lk * Dh
    fwd, fb = statistics.median(fwd_ms), statistics.median(fb_ms)
    return dict(call=index, B=B, H=H, Lq=Lq, Lk=Lk, Dh=Dh, masked=masked, calls_per_forward=call["count"],
                model_dtype=call["model_dtype"], model_kernel=call["model_kernel"],
                model_kernel_dtype=call["model_kernel_dtype"], kernel=kernel,
                flash_only=flash, fwd_ms=fwd, fwd_min_ms=min(fwd_ms), fwd_tflops=flops / fwd / 1e9,
                fwd_bwd_ms=fb, fwd_bwd_min_ms=min(fb_ms), fwd_bwd_tflops=3.5 * flops / fb / 1e9,
                # this shape's share of a training step: every call of a forward, with its backward
                fwd_bwd_ms_per_step=call["count"] * fb)


# ---------------------------------------------------------------------------------------------
# Output


def md_row(cells):
    print("| " + " | ".join(str(c) for c in cells) + " |", flush=True)


def md_header(cells):
    md_row(cells)
    md_row(["---"] * len(cells))


def fmt(x, spec, missing="-"):
    return missing if x is None else format(x, spec)


STEP_COLUMNS = ["row", "ms/step (median)", "ms/step (min)", "tokens/s", "TFLOP/s", "MFU", "peak memory GiB", "note"]
ATTN_COLUMNS = ["#", "B", "H", "Lq", "Lk", "Dh", "mask", "calls/forward", "in the model: input -> kernel",
                "kernel (bf16)", "flash only", "fwd ms", "fwd TFLOP/s", "fwd+bwd ms", "fwd+bwd TFLOP/s",
                "fwd+bwd ms x calls"]


def print_step_row(r, tokens, flops, peak_tflops):
    """Adds the derived figures (tokens/s, TFLOP/s, MFU) to r and prints it."""
    if "error" in r:
        md_row([r["row"], r["error"]] + [""] * (len(STEP_COLUMNS) - 2))
        return
    seconds = r["median_ms"] / 1e3
    r["tokens_per_s"] = tokens / seconds
    r["tflops"] = flops / seconds / 1e12 if flops else None
    r["mfu"] = r["tflops"] / peak_tflops if flops else None
    note = f"first step {r['first_step_s']:.1f} s" + (" (compile)" if r["row"] == "torch.compile" else "")
    mfu = f"{100 * r['mfu']:.1f}%" if r["mfu"] is not None else "-"
    md_row([r["row"], f"{r['median_ms']:.2f}", f"{r['min_ms']:.2f}", f"{r['tokens_per_s']:,.0f}",
            fmt(r["tflops"], ".1f"), mfu, fmt(r["peak_gib"], ".2f"), note])


def print_attention_row(r):
    if "error" in r:
        B, H, Lq, Lk, Dh, masked = r["key"]
        md_row([r["call"], B, H, Lq, Lk, Dh, "yes" if masked else "no", r["error"]] + [""] * (len(ATTN_COLUMNS) - 8))
        return
    model = f"{r['model_dtype']} -> {r['model_kernel']} {r['model_kernel_dtype']}"
    md_row([r["call"], r["B"], r["H"], r["Lq"], r["Lk"], r["Dh"], "yes" if r["masked"] else "no",
            r["calls_per_forward"], model, r["kernel"], r["flash_only"], f"{r['fwd_ms']:.3f}",
            f"{r['fwd_tflops']:.1f}", f"{r['fwd_bwd_ms']:.3f}", f"{r['fwd_bwd_tflops']:.1f}",
            f"{r['fwd_bwd_ms_per_step']:.3f}"])


# ---------------------------------------------------------------------------------------------
# Main


def guarded(fn, device, on_oom, on_error=None):
    """fn(), or on_oom() after a device out-of-memory error (and on_error(e) after any other
    error, when given), with the failed attempt's memory freed either way."""
    result = None
    try:
        result = fn()
    except Exception as e:  # noqa: BLE001 - sorted below
        if is_oom(e):
            result = on_oom()
        elif on_error is not None:
            result = on_error(e)
        else:
            raise
    # Outside the except block the traceback, and with it the failed attempt's tensors, is gone.
    release(device)
    return result


def probe(base_model, inputs, targets, device, want_calls):
    """FLOPs of a step and the model's attention calls, from eager passes on one copy of the
    model. Returns (flops or None, calls); (None, []) when the device runs out of memory."""
    def run():
        model = copy.deepcopy(base_model).to(device)
        flops = count_flops(model, inputs, targets, device)
        return flops, record_attention_calls(model, inputs, device) if want_calls else []

    return guarded(run, device, lambda: (None, []))


def print_preamble(args, cfg, device, device_name, now, params, tokens, flops):
    print(f"# twin training step: {now}, {device_name}, torch {torch.__version__}, "
          f"config {args.config}, batch {args.batch}\n")
    print(f"- model: {params:,} parameters (float32), widths video/audio/text {cfg.width_video}/"
          f"{cfg.width_audio}/{cfg.width_text}, depth {cfg.depth} + {cfg.single_depth} single, fusion {cfg.fusion}")
    print(f"- tokens per clip: {cfg.video_tokens} video + {cfg.audio_tokens} audio = "
          f"{cfg.video_tokens + cfg.audio_tokens} (text tokens not counted); {tokens:,} per step")
    if flops:
        print(f"- FLOPs per step: {flops / 1e12:.4g} TFLOP, counted by {FLOP_COUNTER} over one eager "
              f"forward + backward (matmuls and attention only); MFU = FLOPs / median step time / "
              f"{args.peak_tflops:g} TFLOP/s (--peak-tflops)")
    else:
        print("- FLOPs per step: not counted (out of memory in the eager counting pass); no MFU")
    fused = " (fused)" if device.type == "cuda" else ""
    clock = "CUDA events" if device.type == "cuda" else "perf_counter"
    print(f"- step: float32 parameters, bf16 autocast forward, MSE velocity loss (video + audio), backward, "
          f"clip_grad_norm_ 1.0, AdamW{fused}; {clock}, {args.iters} timed steps after {args.warmup} warmup "
          f"(and after the first step)\n", flush=True)


def step_table(base_model, inputs, targets, args, device, tokens, flops):
    md_header(STEP_COLUMNS)
    rows = [("eager", False)] + ([] if args.no_compile else [("torch.compile", True)])
    results = []
    for name, compile_model in rows:
        fail_row = lambda e, name=name: dict(
            row=name, error=f"failed: {type(e).__name__}: {e}"[:200].replace("\n", " "))
        r = guarded(functools.partial(step_row, name, base_model, inputs, targets, args, device, compile_model),
                    device, on_oom=lambda name=name: dict(row=name, error="out of memory"),
                    # A compile failure (no C++ compiler, a dynamo limitation) is reported, not fatal;
                    # an eager failure is a bug and stops the script.
                    on_error=fail_row if compile_model else None)
        if compile_model:
            torch._dynamo.reset()  # drops the compiled graphs and what they hold
            release(device)
        print_step_row(r, tokens, flops, args.peak_tflops)
        results.append(r)
    return results


def attention_table(calls, args, device):
    print(f"\n## scaled_dot_product_attention alone, bf16, at the model's shapes\n\n"
          f"FLOPs: 4 B H Lq Lk Dh forward, 3.5x that forward + backward; median of {args.iters} calls after "
          f"{args.warmup} warmup. \"in the model\": the dtype the twin passes and the kernel torch ran under "
          f"autocast; \"flash only\": whether the call runs with sdpa_kernel(FLASH_ATTENTION) alone; "
          f"\"fwd+bwd ms x calls\": the shape's share of one training step.\n")
    md_header(ATTN_COLUMNS)
    results = []
    for i, call in enumerate(calls, 1):
        r = guarded(functools.partial(attention_row, i, call, args, device), device,
                    on_oom=lambda i=i, call=call: dict(call=i, key=list(call["key"]), error="out of memory"))
        print_attention_row(r)
        results.append(r)
    return results


def main():
    args = parse_args()
    device = torch.device(args.device)
    # Matmuls run in bf16 under autocast; this only lets any f32 one use TF32 (and keeps inductor
    # from warning that TF32 is off).
    torch.set_float32_matmul_precision("high")
    cfg = load_config(args.config)
    tokens = (cfg.video_tokens + cfg.audio_tokens) * args.batch

    torch.manual_seed(0)
    base_model = DuetMMDiT(cfg)  # built once on the host; every row copies it to the device
    params = sum(p.numel() for p in base_model.parameters())
    inputs, targets = make_batch(cfg, args.batch, device)
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"

    flops, calls = probe(base_model, inputs, targets, device, not args.no_attention)
    print_preamble(args, cfg, device, device_name, now, params, tokens, flops)
    steps = step_table(base_model, inputs, targets, args, device, tokens, flops)
    attention = []
    if not args.no_attention:
        if calls:
            attention = attention_table(calls, args, device)
        else:
            print("\n(no attention table: the model's attention calls could not be recorded)")

    if args.json:
        report = dict(date=now, device=device_name, torch=torch.__version__, config=args.config,
                      batch=args.batch, iters=args.iters, warmup=args.warmup, parameters=params,
                      video_tokens_per_clip=cfg.video_tokens, audio_tokens_per_clip=cfg.audio_tokens,
                      tokens_per_step=tokens, flops_per_step=flops, flop_counter=FLOP_COUNTER,
                      peak_tflops=args.peak_tflops, steps=steps, attention=attention)
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
        print(f"\n(wrote {args.json})")


if __name__ == "__main__":
    main()
