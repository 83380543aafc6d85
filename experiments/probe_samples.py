#!/usr/bin/env python3
"""What a checkpoint trained on duet-synth clips draws when asked: does the sample show one
object of the colour the caption names, on the floor colour it names, and are its sounds in
sync with its motion?

For every (floor colour, object colour, seed) the script runs duet-infer with the caption
"a {size} {colour} rubber ball bounces twice on a {floor} floor and comes to rest", reads the
PNG frames back and measures:

  floor    the bottom pixel row's mean colour, named by the nearest duet-synth floor colour;
           right when it is the caption's floor
  object   per frame, the pixels above the floor that are not wall-pale (duet-synth walls have
           every channel >= 200 and every object colour has one <= 70); their largest
           4-connected blob. A frame "shows an object" when that blob has >= 3 pixels and it
           is at least 3/4 of all such pixels (one object, not speckles)
  colour   the largest blob's mean colour, named by the nearest object colour; right when
           it is the caption's colour
  travel   the largest blob's centroid row, highest minus lowest over the frames that show
           an object (pixels): how far the object falls and rises in the clip
  change   the mean absolute difference of neighbouring frames (of 255): motion and flicker
           together (in the data it is all motion)
  sync     duet-eval sync over all the samples: offset and confidence per sample

With --clips FILE.h5 the same frame measures run on the file's first clips (their own
captions name floor and colour), which is what a perfect model would score. --reuse measures
the samples already in --out instead of sampling them again.

Needs numpy and Pillow (and h5py for --clips). Example:
  python3 experiments/probe_samples.py --ckpt runs/tiny/last --out /tmp/probe
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np
from PIL import Image

# duet-synth's named colours and floor height (data/synth_names.c, data/synth.h): keep in step.
FLOORS = {"blue": (50, 70, 140), "grey": (105, 105, 110), "brown": (115, 80, 50),
          "green": (55, 105, 60)}
COLOURS = {"red": (220, 45, 45), "green": (50, 175, 70), "blue": (45, 95, 225),
           "yellow": (240, 205, 40), "orange": (245, 135, 35), "purple": (145, 65, 190),
           "pink": (240, 125, 185), "cyan": (40, 195, 210), "black": (30, 30, 30)}
FLOOR_Y = 0.15  # duet-synth's floor surface, in image heights from the bottom


def nearest(rgb, table):
    return min(table, key=lambda k: sum((float(a) - b) ** 2 for a, b in zip(rgb, table[k])))


def largest_blob(mask):
    """The pixels (y, x) of the largest 4-connected component of a boolean image."""
    seen = np.zeros_like(mask)
    best = []
    H, W = mask.shape
    for y in range(H):
        for x in range(W):
            if not mask[y, x] or seen[y, x]:
                continue
            stack, blob = [(y, x)], []
            seen[y, x] = True
            while stack:
                cy, cx = stack.pop()
                blob.append((cy, cx))
                for ny, nx in ((cy + 1, cx), (cy - 1, cx), (cy, cx + 1), (cy, cx - 1)):
                    if 0 <= ny < H and 0 <= nx < W and mask[ny, nx] and not seen[ny, nx]:
                        seen[ny, nx] = True
                        stack.append((ny, nx))
            if len(blob) > len(best):
                best = blob
    return best


def measure(frames, floor_name, colour_name):
    """frames: uint8 [T, H, W, 3]. Returns the per-clip measures described above."""
    T, H, W, _ = frames.shape
    floor_rgb = frames[:, H - 1].reshape(-1, 3).mean(0)
    above = int(np.floor(H * (1 - FLOOR_Y))) - 1  # rows wholly above the floor surface
    shown, right_colour, rows = 0, 0, []
    for f in frames:
        region = f[:above].astype(np.int32)
        mask = region.min(axis=2) < 150
        blob = largest_blob(mask)
        total = int(mask.sum())
        if len(blob) >= 3 and len(blob) >= 0.75 * total:
            shown += 1
            rgb = np.mean([region[y, x] for y, x in blob], axis=0)
            right_colour += nearest(rgb, COLOURS) == colour_name
            rows.append(np.mean([y for y, _ in blob]))
    change = float(np.abs(np.diff(frames.astype(np.float64), axis=0)).mean()) if T > 1 else 0.0
    return {"floor": nearest(floor_rgb, FLOORS), "floor_right": nearest(floor_rgb, FLOORS) == floor_name,
            "frames_with_object": shown / T, "frames_right_colour": right_colour / T,
            "travel": float(max(rows) - min(rows)) if len(rows) > 1 else 0.0, "change": change}


def read_frames(folder):
    names = sorted(n for n in os.listdir(folder) if n.endswith(".png"))
    return np.stack([np.asarray(Image.open(os.path.join(folder, n)).convert("RGB")) for n in names])


def words_of(caption):
    """floor and object colour named by a duet-synth caption (first object)."""
    w = caption.replace(",", " ").split()
    return w[w.index("floor") - 1], w[2]


def summarise(rows, label):
    n = len(rows)
    print(f"\n{label}: {n} clips")
    print(f"  floor colour right:            {sum(r['floor_right'] for r in rows) / n:.2f}")
    print(f"  frames showing one object:     {np.mean([r['frames_with_object'] for r in rows]):.2f}")
    print(f"  frames with the right colour:  {np.mean([r['frames_right_colour'] for r in rows]):.2f}")
    print(f"  object travel (median, px):    {np.median([r['travel'] for r in rows]):.1f}")
    print(f"  frame-to-frame change (of 255): {np.mean([r['change'] for r in rows]):.1f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ckpt", help="checkpoint directory (e.g. runs/tiny/last)")
    ap.add_argument("--out", default="probe-samples", help="where samples and the report go")
    ap.add_argument("--bin", default="build/bin", help="folder of duet-infer and duet-eval")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--colours", default="red,yellow,blue,black")
    ap.add_argument("--size", default="large", help="the object's size word: small, medium or large")
    ap.add_argument("--cfg", default="1", help="guidance scale for video and audio")
    ap.add_argument("--infer-args", default="", help="more duet-infer options, e.g. '--audio-lag 0.3'")
    ap.add_argument("--clips", help="also measure this clip file's first --count clips")
    ap.add_argument("--count", type=int, default=32)
    ap.add_argument("--reuse", action="store_true", help="measure the samples already in --out")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)

    if a.clips:
        import h5py
        with h5py.File(a.clips, "r") as f:
            rows = []
            for i in range(a.count):
                cap = f["caption"][i]
                cap = cap.decode() if isinstance(cap, bytes) else cap
                fl, col = words_of(cap)
                rows.append(measure(np.asarray(f["video"][i]), fl, col))
        summarise(rows, f"data ({a.clips})")

    if not a.ckpt:
        return
    rows, names = [], []
    for floor in FLOORS:
        for colour in a.colours.split(","):
            if colour == floor:
                continue  # duet-synth never puts an object on a floor of its own colour
            for seed in range(a.seeds):
                name = f"{floor}-{colour}-{seed}"
                prompt = f"a {a.size} {colour} rubber ball bounces twice on a {floor} floor and comes to rest"
                if not a.reuse:
                    subprocess.run([f"{a.bin}/duet-infer", "--ckpt", a.ckpt, "--prompt", prompt,
                                    "--out", f"{a.out}/{name}.mp4", "--frames-dir", f"{a.out}/{name}",
                                    "--seed", str(seed), "--cfg-video", a.cfg, "--cfg-audio", a.cfg,
                                    "--force"] + a.infer_args.split(), check=True,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                r = measure(read_frames(f"{a.out}/{name}"), floor, colour)
                r["name"] = name
                rows.append(r)
                names.append(name)
    summarise(rows, f"samples ({a.ckpt}, guidance {a.cfg})")

    mp4s = [f"{a.out}/{n}.mp4" for n in names]
    subprocess.run([f"{a.bin}/duet-eval", "sync", "-q", "--figures", "0", "--out", f"{a.out}/eval"]
                   + mp4s, check=False, stdout=subprocess.DEVNULL)
    with open(f"{a.out}/eval/metrics.json") as f:
        clips = json.load(f)["clips"]
    offs = [(c["offset"]["offset_ms"], c["offset"]["confidence"]) for c in clips if c.get("status") == "ok"]
    within = sum(abs(o) <= 1000 / 16 for o, _ in offs)
    print(f"  sync: {within}/{len(offs)} samples within one frame (62.5 ms); "
          f"median |offset| {np.median([abs(o) for o, _ in offs]):.0f} ms, "
          f"median confidence {np.median([c for _, c in offs]):.1f}")
    for r, (o, c) in zip(rows, offs):
        print(f"    {r['name']:<20} floor {r['floor']:<6} object frames {r['frames_with_object']:.2f} "
              f"right colour {r['frames_right_colour']:.2f}  travel {r['travel']:4.1f} px  "
              f"offset {o:+7.1f} ms (conf {c:.1f})")


if __name__ == "__main__":
    sys.exit(main())
