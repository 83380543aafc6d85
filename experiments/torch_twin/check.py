#!/usr/bin/env python3
"""Parity check: duet's MMDiT (C) against its PyTorch twin (duet_twin.py).

For each config below, duet_twin_dump runs one forward and backward pass of duet's model on
random weights and inputs and writes everything to a safetensors file; this script loads the
same weights and inputs into the twin, runs the same pass, and compares the outputs, the
scalar loss, every parameter gradient and the gradients of the float inputs, as the relative
error ||twin - duet|| / ||duet|| of each tensor.

Three comparisons per config:
  f32       duet in f32  vs the twin in float32   (must be < --tol32, default 1e-4)
  f32/ref   duet in f32  vs the twin in float64   (how far duet's f32 is from exact; reported)
  f64       duet in f64  vs the twin in float64   (must be < --tol64, default 1e-10: the
            formulas agree, not just to f32 rounding)

    pip install torch safetensors numpy
    cmake -S . -B build-twin -G Ninja -DDUET_CUDA=OFF && ninja -C build-twin duet_twin_dump
    python3 experiments/torch_twin/check.py [--exe build-twin/bin/duet_twin_dump] [--all]

Exits 1 when any tensor is over its tolerance (or a tensor is missing on either side).
"""
import argparse
import os
import subprocess
import sys
import tempfile

import torch
from safetensors import safe_open
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from duet_twin import DuetMMDiT, ModelConfig  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

# tests/mmdit/tiny_config.h: small, with different widths per branch.
TINY = ["model.video_frames=4", "model.video_height=8", "model.video_width=8", "model.patch_t=2",
        "model.patch_h=4", "model.patch_w=4", "model.fps=16", "model.audio_frames=16",
        "model.audio_channels=8", "model.patch_a=4", "model.audio_rate=64", "model.width_video=32",
        "model.width_audio=16", "model.width_text=24", "model.heads_video=2", "model.heads_audio=1",
        "model.heads_text=2", "model.depth=2", "model.text_len=12", "model.text_layers=1",
        "model.rope_time_pairs=4"]
EQUAL = ["model.width_audio=32", "model.heads_audio=2"]

CONFIGS = {
    # Dual-stream blocks with cross fusion, the seed model's design (tiny test config).
    "cross": TINY,
    # One joint attention over text, video and audio.
    "joint": TINY + EQUAL + ["model.width_text=32", "model.fusion=joint", "model.depth=3"],
    # Cross fusion, a single-stream tail, and references at negative times in both branches.
    "cross+single+refs": TINY + EQUAL + ["model.single_depth=2", "model.ref_video_frames=2",
                                         "model.ref_audio_frames=8"],
    # Precomputed text, one dual block (its text streams pre-only), odd rotary splits (3 time
    # pairs, h/w pairs 3 and 2), patch_t = 1, a non-integer MLP ratio and a single-stream tail.
    # The time-aligned exchange: 4 video tokens and 2 audio tokens per video token step, branch
    # widths 32 and 16; then with references in both branches, which it leaves out.
    "aligned": TINY + ["model.aligned_width=3"],
    "aligned+refs": TINY + EQUAL + ["model.aligned_width=2", "model.ref_video_frames=2", "model.ref_audio_frames=8"],
    "words": TINY + EQUAL + ["model.text_source=words", "model.text_vocab=50"],
    "precomputed+odd": TINY + EQUAL + ["model.text_source=precomputed", "model.text_emb_dim=10",
                                       "model.depth=1", "model.single_depth=1", "model.rope_time_pairs=3",
                                       "model.patch_t=1", "model.patch_h=2", "model.video_height=4",
                                       "model.mlp_ratio=2.5", "model.fps=12.5", "model.rope_time_scale=3"],
    # More tokens than one 64-query tile of duet's attention kernel: 64 video + 32 audio + 20
    # text tokens in one joint attention, 4 heads of 16, then a single-stream block.
    "joint-wide": TINY + ["model.video_frames=8", "model.video_height=16", "model.video_width=16",
                          "model.audio_frames=128", "model.width_video=64", "model.width_audio=64",
                          "model.width_text=64", "model.heads_video=4", "model.heads_audio=4",
                          "model.heads_text=4", "model.fusion=joint", "model.text_len=20",
                          "model.single_depth=1", "model.text_layers=2"],
}


def dump(exe, sets, path, f64, seed):
    cmd = [exe, "--out", path, "--seed", str(seed)] + sum((["--set", s] for s in sets), [])
    if f64:
        cmd.append("--f64")
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    with safe_open(path, "pt") as f:
        meta = f.metadata()
    return load_file(path), ModelConfig.from_ini(meta["duet.config"])


INPUTS = ["video_xt", "video_cond", "video_mask", "audio_xt", "audio_cond", "audio_mask",
          "t_video", "t_audio", "text", "text_mask", "ref_video", "ref_audio"]


def twin_pass(cfg, st, dtype):
    """The twin's forward and backward on the file's weights and inputs, in dtype. Returns
    {name: tensor} with the file's names for outputs and gradients."""
    model = DuetMMDiT(cfg).to(dtype)
    params = {k: v for k, v in st.items() if not k.startswith(("in.", "out.", "grad."))}
    missing, unexpected = model.load_state_dict({k: v.to(dtype) for k, v in params.items()}, strict=False)
    if missing or unexpected:
        raise SystemExit(f"state dict mismatch: missing {missing[:5]}, unexpected {unexpected[:5]}")
    inputs = {}
    for name in INPUTS:
        t = st.get("in." + name)
        if t is None:
            continue
        if name == "text_mask":
            t = t.bool()
        elif name == "text" and not t.is_floating_point():
            t = t.long()
        else:
            t = t.detach().to(dtype).clone().requires_grad_("grad.in." + name in st)
        inputs[name] = t
    video_v, audio_v = model(**inputs)
    loss = (video_v * st["in.Rv"].to(dtype)).sum() + (audio_v * st["in.Ra"].to(dtype)).sum()
    loss.backward()
    out = {"out.video_v": video_v.detach(), "out.audio_v": audio_v.detach(), "out.loss": loss.detach().reshape(1)}
    for name, p in model.named_parameters():
        out["grad." + name] = p.grad if p.grad is not None else torch.zeros_like(p)
    for name, t in inputs.items():
        if t.requires_grad:
            out["grad.in." + name] = t.grad
    return out


def rel_err(a, b):
    a, b = a.double().flatten(), b.double().flatten()
    nb = b.norm().item()
    d = (a - b).norm().item()
    return d / nb if nb > 0 else (0.0 if d == 0 else float("inf")), nb


def group_of(name):
    """Coarse groups for the summary table."""
    if name.startswith("out."):
        return name
    n = name[len("grad."):]
    if n.startswith("in."):
        return "grad inputs"
    if n.startswith("text."):
        return "grad text encoder"
    if n.startswith(("video.", "audio.")):
        return "grad " + n.split(".")[0] + " io"
    if n.startswith("blocks."):
        part = n.split(".")[2]
        return "grad blocks.*." + part
    if n.startswith(("singles.", "single_text_in")):
        return "grad singles"
    return "grad " + n


def compare(ref, twin):
    """[(name, rel err, ||ref||)] over every output and gradient; missing names are errors."""
    names = sorted(k for k in ref if k.startswith(("out.", "grad.")))
    rows, problems = [], []
    for k in names:
        if k not in twin:
            problems.append(f"{k}: not produced by the twin")
            continue
        if twin[k].shape != ref[k].shape:
            problems.append(f"{k}: shape {tuple(twin[k].shape)} vs duet {tuple(ref[k].shape)}")
            continue
        e, n = rel_err(twin[k], ref[k])
        rows.append((k, e, n))
    for k in twin:
        if k not in ref:
            problems.append(f"{k}: not in duet's file")
    return rows, problems


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--exe", default=os.path.join(ROOT, "build-twin", "bin", "duet_twin_dump"))
    ap.add_argument("--tol32", type=float, default=1e-4)
    ap.add_argument("--tol64", type=float, default=1e-10)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--all", action="store_true", help="print every tensor, not only the groups")
    ap.add_argument("--only", help="run only this config")
    args = ap.parse_args()
    torch.manual_seed(0)
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        for cname, sets in CONFIGS.items():
            if args.only and cname != args.only:
                continue
            st32, cfg = dump(args.exe, sets, os.path.join(tmp, "f32.safetensors"), False, args.seed)
            st64, cfg64 = dump(args.exe, sets, os.path.join(tmp, "f64.safetensors"), True, args.seed)
            assert cfg == cfg64
            n_params = sum(1 for k in st32 if not k.startswith(("in.", "out.", "grad.")))
            results = {
                "f32": compare(st32, twin_pass(cfg, st32, torch.float32)),
                "f32/ref": compare(st32, twin_pass(cfg, st32, torch.float64)),
                "f64": compare(st64, twin_pass(cfg, st64, torch.float64)),
            }
            tol = {"f32": args.tol32, "f32/ref": None, "f64": args.tol64}
            print(f"\n== {cname}: {n_params} parameters, "
                  f"{cfg.video_tokens} video + {cfg.audio_tokens} audio tokens, fusion {cfg.fusion}")
            for mode, (rows, problems) in results.items():
                for p in problems:
                    print(f"  [{mode}] MISMATCH {p}")
                    failed = True
            groups = {}
            for mode, (rows, _) in results.items():
                for k, e, n in rows:
                    g = groups.setdefault(group_of(k), {}).setdefault(mode, [0.0, "", 0])
                    g[2] += 1
                    if e >= g[0]:
                        g[0], g[1] = e, k
            print(f"  {'tensor group':<32} {'n':>4} {'f32':>10} {'f32/ref':>10} {'f64':>10}  worst (f32)")
            for gname in sorted(groups):
                gm = groups[gname]
                cells = []
                for mode in ("f32", "f32/ref", "f64"):
                    e = gm[mode][0]
                    bad = tol[mode] is not None and not e < tol[mode]
                    failed |= bad
                    cells.append(f"{e:10.2e}" + ("!" if bad else ""))
                print(f"  {gname:<32} {gm['f32'][2]:>4} {' '.join(cells)}  {gm['f32'][1]}")
            if args.all:
                e32 = {k: e for k, e, _ in results["f32"][0]}
                eref = {k: e for k, e, _ in results["f32/ref"][0]}
                for k, e, n in results["f64"][0]:
                    print(f"    {k:<60} |duet| {n:9.3e}  f32 {e32.get(k, float('nan')):9.2e}  "
                          f"f32/ref {eref.get(k, float('nan')):9.2e}  f64 {e:9.2e}")
    print("\nFAIL: some tensors differ beyond tolerance" if failed else
          f"\nPASS: every output and gradient within {args.tol32:g} (f32) and {args.tol64:g} (f64)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
