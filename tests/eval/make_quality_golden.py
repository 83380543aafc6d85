#!/usr/bin/env python3
"""Golden SSIM and PSNR values from scikit-image for duet's quality metrics.

Stores small RGB image pairs (a reference and a distorted copy: noise, blur, a shift, a
brightness change) and what skimage.metrics computes for them with the settings duet
documents: structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=255, channel_axis=-1) and
peak_signal_noise_ratio(a, b, data_range=255). Odd sizes exercise the mirrored edges.

Run from the repository root:  python3 tests/eval/make_quality_golden.py
Needs: numpy, scipy, scikit-image.
"""
import json
import os

import numpy as np
import scipy.ndimage as ndi
import skimage
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

FIX = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")


def pair(rng, h, w, kind):
    base = ndi.gaussian_filter(rng.random((h, w, 3)), sigma=(2, 2, 0)) * 255
    a = np.clip(np.round(base), 0, 255).astype(np.uint8)
    f = a.astype(np.float64)
    if kind == "noise":
        f = f + rng.normal(0, 12, f.shape)
    elif kind == "blur":
        f = ndi.gaussian_filter(f, sigma=(1.2, 1.2, 0))
    elif kind == "shift":
        f = np.roll(f, (1, 2), axis=(0, 1))
    elif kind == "bright":
        f = f * 0.8 + 30
    return a, np.clip(np.round(f), 0, 255).astype(np.uint8)


def main():
    rng = np.random.default_rng(11)
    cases = [("noise", 48, 64), ("blur", 37, 53), ("shift", 40, 40), ("bright", 11, 17)]
    out = {"about": "skimage SSIM/PSNR references; regenerate with make_quality_golden.py",
           "versions": {"numpy": np.__version__, "scikit-image": skimage.__version__},
           "cases": []}
    for kind, h, w in cases:
        a, b = pair(rng, h, w, kind)
        np.save(os.path.join(FIX, f"ssim_{kind}_a.npy"), a)
        np.save(os.path.join(FIX, f"ssim_{kind}_b.npy"), b)
        ssim = structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
                                     use_sample_covariance=False, data_range=255,
                                     channel_axis=-1)
        psnr = peak_signal_noise_ratio(a, b, data_range=255)
        out["cases"].append({"name": kind, "a": f"ssim_{kind}_a.npy", "b": f"ssim_{kind}_b.npy",
                             "ssim": float(ssim), "psnr": float(psnr)})
        print(f"{kind} {h}x{w}: SSIM {ssim:.6f}, PSNR {psnr:.3f} dB")
    with open(os.path.join(FIX, "quality_golden.json"), "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
