#!/usr/bin/env python3
"""Loads duet safetensors files with the reference Python reader and prints what it sees.

This is the interoperability check for core/safetensors.c: if the `safetensors` package
(the Rust implementation behind PyTorch, JAX and NumPy loaders) accepts a duet file and shows
the expected keys, shapes and values, the Python ecosystem can read duet checkpoints.

    pip install safetensors numpy
    python3 experiments/torch_check_safetensors.py runs/x/last/model.safetensors [more files...]

Only safetensors.numpy is used, so PyTorch is not needed. bf16 has no NumPy dtype: those
tensors are read as raw uint16 and widened to float32 by hand.
"""
import json
import struct
import sys

import numpy as np
from safetensors import safe_open


def header_of(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return n, json.loads(f.read(n))


def bf16_values(path, name, info):
    """bf16 as float32: NumPy cannot hold bf16, so read the raw bytes of the tensor."""
    n, _ = header_of(path)
    begin, end = info["data_offsets"]
    with open(path, "rb") as f:
        f.seek(8 + n + begin)
        raw = np.frombuffer(f.read(end - begin), dtype="<u2")
    return (raw.astype(np.uint32) << 16).view(np.float32).reshape(info["shape"])


def show(path):
    n, header = header_of(path)
    print(f"{path}: header {n} bytes (multiple of 8: {n % 8 == 0})")
    meta = header.get("__metadata__") or {}
    for k, v in meta.items():
        print(f"  meta {k} = {v}")
    with safe_open(path, framework="numpy") as f:
        for name in f.keys():
            info = header[name]
            if info["dtype"] == "BF16":
                # safe_open still validates the tensor; NumPy only lacks the dtype to hold it.
                value = bf16_values(path, name, info)
            else:
                value = f.get_tensor(name)
            flat = np.asarray(value).reshape(-1)
            shown = ", ".join(repr(x.item()) for x in flat[:8]) + (", ..." if flat.size > 8 else "")
            print(f"  {name}: {info['dtype']} {list(np.shape(value))} [{shown}]")


def main():
    if len(sys.argv) < 2:
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        print("usage: torch_check_safetensors.py FILE.safetensors [...]", file=sys.stderr)
        return 2
    for path in sys.argv[1:]:
        show(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
