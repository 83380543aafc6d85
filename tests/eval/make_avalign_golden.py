#!/usr/bin/env python3
"""Golden values for duet's AV-Align, computed with the reference stack.

AV-Align's reference implementation (av_align.py of the TempoTokens repository, Yariv et al.)
decodes frames with OpenCV, converts them with cv2.cvtColor(BGR2GRAY), runs
cv2.calcOpticalFlowFarneback(prev, next, None, 0.5, 3, 15, 3, 5, 1.2, 0), averages the flow
magnitude, keeps strict local maxima >= 0.1 as video peaks, loads audio with librosa.load (22050
Hz), and takes onsets from librosa.onset.onset_strength + onset_detect with defaults. This script
applies exactly those calls to small synthetic clips and stores the inputs and every
intermediate quantity, so that tests/eval/test_eval_avalign.c can check the C port step by step.

The clips are built from a stored grey texture by integer crops (the camera "jumps" on some
frames and holds still otherwise) and colour channels derived from it by integer arithmetic,
so that the C test rebuilds bit-identical frames from the same fixture.

Run from the repository root:  python3 tests/eval/make_avalign_golden.py
Needs: numpy, opencv-python-headless, librosa (pip install librosa opencv-python-headless).
"""
import json
import os

import cv2
import librosa
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "fixtures")

# name, height, width, fps, frames, audio rate, camera jumps {frame: (dx, dy)}, tone onsets (s)
CLIPS = [
    ("pyramid3", 256, 256, 12.0, 30, 22050,
     {5: (4, 0), 11: (0, -5), 18: (-3, 3), 24: (6, 2)},
     [0.42, 0.95, 1.30, 2.00, 2.25]),
    ("pyramid1", 96, 128, 15.0, 30, 22050,
     {4: (1, 0), 9: (-2, 2), 13: (3, 1), 22: (0, 4), 27: (-5, -1)},
     [0.25, 0.62, 0.90, 1.47, 1.52, 1.80]),
    ("flat16k", 60, 72, 25.0, 40, 16000,
     {6: (2, 0), 17: (0, 2), 25: (-2, -2), 33: (3, 0)},
     [0.24, 0.70, 1.00, 1.33]),
]
TEXTURE_H, TEXTURE_W = 300, 330
ORIGIN = (20, 20)  # crop origin of frame 0 in the texture (x, y)


def make_texture():
    rng = np.random.default_rng(20261124)
    t = rng.random((TEXTURE_H, TEXTURE_W)).astype(np.float32)
    t = cv2.GaussianBlur(t, (0, 0), 2.5)
    t = (t - t.min()) / (t.max() - t.min())
    return np.round(t * 255).astype(np.uint8)


def rgb_of(grey):
    """Colour from grey by integer arithmetic (the C test does the same)."""
    g = grey.astype(np.int32)
    return np.stack([g, (3 * g) // 4 + 32, 255 - g], axis=-1).astype(np.uint8)


def frame_offsets(frames, jumps):
    x, y = ORIGIN
    out = []
    for i in range(frames):
        if i in jumps:
            x += jumps[i][0]
            y += jumps[i][1]
        out.append((x, y))
    return out


def make_audio(sr, seconds, onsets):
    rng = np.random.default_rng(7)
    n = int(round(seconds * sr))
    t = np.arange(n) / sr
    y = 0.003 * rng.standard_normal(n)
    freqs = [440, 660, 880, 330, 990, 550]
    for k, t0 in enumerate(onsets):
        s = int(round(t0 * sr))
        e = min(n, s + int(0.2 * sr))
        tt = t[: e - s]
        y[s:e] += 0.4 * np.sin(2 * np.pi * freqs[k % len(freqs)] * tt) * np.exp(-tt * 18)
    return np.clip(np.round(y * 32767), -32768, 32767).astype(np.int16)


# --- the reference implementation's functions, applied to arrays instead of files -----------

def compute_of(img1, img2):
    prev_gray = cv2.cvtColor(img1, cv2.COLOR_BGR2GRAY)
    curr_gray = cv2.cvtColor(img2, cv2.COLOR_BGR2GRAY)
    flow = cv2.calcOpticalFlowFarneback(prev_gray, curr_gray, None, 0.5, 3, 15, 3, 5, 1.2, 0)
    magnitude = cv2.magnitude(flow[..., 0], flow[..., 1])
    return cv2.mean(magnitude)[0]


def detect_video_peaks(frames, fps):
    flow_trajectory = [compute_of(frames[0], frames[1])] + [
        compute_of(frames[i - 1], frames[i]) for i in range(1, len(frames))]
    peaks = [i / fps for i in range(1, len(flow_trajectory) - 1)
             if flow_trajectory[i - 1] < flow_trajectory[i] > flow_trajectory[i + 1]
             and flow_trajectory[i] >= 0.1]
    return flow_trajectory, peaks


def detect_audio_peaks(y, sr):
    onset_env = librosa.onset.onset_strength(y=y, sr=sr)
    onset_frames = librosa.onset.onset_detect(onset_envelope=onset_env, sr=sr)
    return onset_env, onset_frames, librosa.frames_to_time(onset_frames, sr=sr)


def iou_reference(audio_peaks, video_peaks, fps):
    inter = 0
    for a in audio_peaks:
        for v in video_peaks:
            if v - 1 / fps < a < v + 1 / fps:
                inter += 1
                break
    return inter / (len(audio_peaks) + len(video_peaks) - inter)


def iou_one_to_one(audio_peaks, video_peaks, fps):
    used = [False] * len(video_peaks)
    inter = 0
    for a in audio_peaks:
        for j, v in enumerate(video_peaks):
            if not used[j] and v - 1 / fps < a < v + 1 / fps:
                used[j] = True
                inter += 1
                break
    return inter / (len(audio_peaks) + len(video_peaks) - inter), inter


def main():
    os.makedirs(FIX, exist_ok=True)
    texture = make_texture()
    np.save(os.path.join(FIX, "avalign_texture.npy"), texture)
    golden = {
        "about": "AV-Align reference values; regenerate with tests/eval/make_avalign_golden.py",
        "versions": {"numpy": np.__version__, "opencv": cv2.__version__,
                     "librosa": librosa.__version__},
        "texture": "avalign_texture.npy",
        "origin": list(ORIGIN),
        "clips": [],
    }
    for name, h, w, fps, nframes, sr, jumps, onsets in CLIPS:
        offs = frame_offsets(nframes, jumps)
        rgb = rgb_of(texture)
        frames_rgb = [rgb[y:y + h, x:x + w] for (x, y) in offs]
        frames_bgr = [np.ascontiguousarray(f[..., ::-1]) for f in frames_rgb]
        grey0 = cv2.cvtColor(frames_bgr[0], cv2.COLOR_BGR2GRAY)

        pcm = make_audio(sr, nframes / fps, onsets)
        audio_file = f"avalign_{name}_audio.npy"
        np.save(os.path.join(FIX, audio_file), pcm)
        y = (pcm.astype(np.float32) / 32768.0).astype(np.float32)
        if sr != 22050:  # what librosa.load(path) does to a file at another rate
            y = librosa.resample(y, orig_sr=sr, target_sr=22050, res_type="soxr_hq")
        env, onset_frames, audio_peaks = detect_audio_peaks(y, 22050)

        flow, video_peaks = detect_video_peaks(frames_bgr, fps)
        one, matched = iou_one_to_one(list(audio_peaks), video_peaks, fps)
        golden["clips"].append({
            "name": name, "height": h, "width": w, "fps": fps, "frames": nframes,
            "offsets": [list(o) for o in offs],
            "grey0_sum": int(grey0.astype(np.int64).sum()),
            "audio": audio_file, "sample_rate": sr, "samples_22050": int(len(y)),
            "onset_env": [float(v) for v in env],
            "onset_frames": [int(v) for v in onset_frames],
            "audio_peaks": [float(v) for v in audio_peaks],
            "flow": [float(v) for v in flow],
            "video_peaks": [float(v) for v in video_peaks],
            "iou_reference": iou_reference(list(audio_peaks), video_peaks, fps),
            "iou_one_to_one": one, "matched": matched,
        })
        print(f"{name}: {len(onset_frames)} onsets, {len(video_peaks)} flow peaks, "
              f"IoU {one:.3f} (reference counting {golden['clips'][-1]['iou_reference']:.3f})")
    # Farneback on odd, tiny and pyramid-edge sizes, an image against itself: only OpenCV's
    # edge handling moves anything, which makes these a sharp check of the border code.
    golden["self_flow"] = []
    for h, w in [(1, 1), (2, 3), (5, 7), (31, 64), (33, 70), (64, 64)]:
        i = np.arange(h * w)
        img = ((i * 37 + (i // w) * 11) & 255).astype(np.uint8).reshape(h, w)
        f = cv2.calcOpticalFlowFarneback(img, img, None, 0.5, 3, 15, 3, 5, 1.2, 0)
        golden["self_flow"].append(
            {"height": h, "width": w,
             "mean_magnitude": cv2.mean(cv2.magnitude(f[..., 0], f[..., 1]))[0]})
    with open(os.path.join(FIX, "avalign_golden.json"), "w") as f:
        json.dump(golden, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
