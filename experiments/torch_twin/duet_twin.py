"""duet's dual-stream MMDiT in PyTorch, written to be read.

This is a second implementation of model/mmdit.c, model/text_encoder.c and model/positions.c,
made from their documented math (core/ops.h) and nothing else. Parameter names are duet's, so
a duet safetensors file (a checkpoint, or what duet_twin_dump writes) loads with
`model.load_state_dict(safetensors.torch.load_file(path), strict=False)`.

check.py compares this model's outputs and gradients with duet's; bench_twin.py times it.

The pieces, in the order the forward pass uses them:

  ModelConfig          the [model] section of a duet config
  rope_tables          rotary positions of both branches (model/positions.c)
  TextEncoder          byte-level transformer or projection of precomputed embeddings
  BranchIO             patch embedding, timestep/pooled-text conditioning, final layer
  StreamWeights        one stream of a joint attention (adaLN-Zero, QKV + QK-norm, MLP)
  CrossWeights         one branch attending to another
  joint_attention()    attention over several streams with separate weights
  DualBlock            per-branch joint attention with its text, then A->V, V->A cross
                       (fusion = cross), or one attention over text, video and audio (joint)
  SingleBlock          shared weights over [video; audio], then cross-attention to the text
  DuetMMDiT            the whole network: inputs -> (video_v, audio_v)
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
import torch.nn as nn
import torch.nn.functional as F

TIMESTEP_DIM = 256
TEXT_VOCAB = 257  # 0 = padding, byte b = b + 1
EPS = 1e-6        # every layernorm and QK rmsnorm


# ---------------------------------------------------------------------------------------------
# Config


@dataclass
class ModelConfig:
    """duet's [model] section (model/config.h), with its defaults."""
    video_frames: int = 32
    video_height: int = 32
    video_width: int = 32
    video_channels: int = 3
    patch_t: int = 2
    patch_h: int = 4
    patch_w: int = 4
    fps: float = 16.0
    audio_frames: int = 128
    audio_channels: int = 64
    patch_a: int = 4
    audio_rate: float = 64.0
    width_video: int = 128
    width_audio: int = 128
    width_text: int = 128
    heads_video: int = 4
    heads_audio: int = 4
    heads_text: int = 4
    depth: int = 4
    single_depth: int = 0
    mlp_ratio: float = 4.0
    fusion: str = "cross"          # cross | joint
    text_source: str = "bytes"     # bytes | words | precomputed
    text_vocab: int = 4096         # words: rows of the embedding table
    text_len: int = 64
    text_layers: int = 2
    text_emb_dim: int = 0
    rope_time_pairs: int = 8
    rope_theta: float = 10000.0
    rope_time_scale: float = 16.0
    aligned_width: int = 0         # time-aligned exchange after each block's cross-attention
    ref_video_frames: int = 0
    ref_audio_frames: int = 0

    @classmethod
    def from_ini(cls, text: str) -> "ModelConfig":
        """Reads the [model] section of duet's config text (other sections are ignored)."""
        values, section = {}, None
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                section = line.strip("[]").strip()
                continue
            if section != "model" or "=" not in line:
                continue
            key, value = (s.strip() for s in line.split("=", 1))
            cut = value.find(" ;")
            values[key] = (value[:cut] if cut >= 0 else value).strip()
        cfg = cls()
        for f in fields(cls):
            if f.name in values:
                kind = type(getattr(cfg, f.name))
                setattr(cfg, f.name, kind(values[f.name]))
        return cfg

    def mlp_hidden(self, width: int) -> int:
        return int(self.mlp_ratio * width + 0.5)

    @property
    def grid(self):
        """Video patch grid (t, h, w)."""
        return (self.video_frames // self.patch_t, self.video_height // self.patch_h,
                self.video_width // self.patch_w)

    @property
    def video_patch(self) -> int:
        return self.patch_t * self.patch_h * self.patch_w

    @property
    def video_tokens(self) -> int:
        gt, gh, gw = self.grid
        return gt * gh * gw

    @property
    def audio_tokens(self) -> int:
        return self.audio_frames // self.patch_a

    @property
    def audio_per_video_step(self) -> int:
        """Audio tokens per video token time step (model/config.c checks it is whole)."""
        return self.audio_tokens // self.grid[0]


# ---------------------------------------------------------------------------------------------
# Elementary ops, as core/ops.h defines them


def layer_norm(x):
    """LayerNorm over the last axis without affine parameters (adaLN supplies them)."""
    return F.layer_norm(x, x.shape[-1:], eps=EPS)


def modulate(x, shift, scale):
    """x [B, L, D], shift/scale [B, D]: x * (1 + scale) + shift."""
    return x * (1 + scale[:, None]) + shift[:, None]


def gated(x, gate, y):
    """Gated residual x + gate * y, gate [B, D]."""
    return x + gate[:, None] * y


def timestep_embedding(t, dim=TIMESTEP_DIM, max_period=10000.0, scale=1000.0):
    """t [B] -> [B, dim] = [cos(a), sin(a)], a_k = scale * t * max_period^(-k / (dim/2)).
    Computed in float64 whatever t's dtype, then cast (duet does the same)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float64) / half)
    a = scale * t.to(torch.float64)[:, None] * freqs.to(t.device)[None]
    return torch.cat([torch.cos(a), torch.sin(a)], dim=1).to(t.dtype)


def attention(q, k, v, key_mask, heads):
    """Multi-head attention on [B, L, H*Dh] tensors with scale 1/sqrt(Dh).

    key_mask: bool [B, Lk] (True = attend) or None. A query whose keys are all masked gets
    zeros (PyTorch's kernels would give NaN): such samples attend to every key instead, and
    their output is multiplied by 0, which also zeroes their gradients."""
    B, Lq, C = q.shape
    Lk, Dh = k.shape[1], C // heads
    split = lambda x, n: x.view(B, n, heads, Dh).transpose(1, 2)  # -> [B, H, L, Dh]
    q, k, v = split(q, Lq), split(k, Lk), split(v, Lk)
    if key_mask is None:
        o = F.scaled_dot_product_attention(q, k, v)
    else:
        has_keys = key_mask.any(dim=1)                             # [B]
        mask = key_mask | ~has_keys[:, None]                       # no all-False rows
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :])
        o = o * has_keys[:, None, None, None].to(o.dtype)
    return o.transpose(1, 2).reshape(B, Lq, C)


class HeadRMSNorm(nn.Module):
    """QK-norm: RMS-norm of each head's Dh features of [B, L, H*Dh], one weight [Dh]."""

    def __init__(self, head_dim):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(head_dim))

    def forward(self, x, heads):
        B, L, C = x.shape
        h = x.view(B, L, heads, C // heads)
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + EPS) * self.weight
        return h.view(B, L, C)


class MLP(nn.Module):
    """fc2(gelu_tanh(fc1(x)))."""

    def __init__(self, width, hidden):
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


# ---------------------------------------------------------------------------------------------
# Rotary positions (model/positions.c)


@dataclass
class RopeSpec:
    """Rotation pairs of a head split among position axes; pair j of an axis with P pairs
    turns by pos * theta^(-j / P). Pairs are (x[2i], x[2i+1])."""
    pairs_per_axis: list
    theta: float

    def angles(self, pos):
        """pos float64 [L, n_axes] -> angles [L, Dh/2] (float64)."""
        cols = []
        for a, P in enumerate(self.pairs_per_axis):
            freqs = self.theta ** (-torch.arange(P, dtype=torch.float64) / P)
            cols.append(pos[:, a:a + 1] * freqs[None])
        return torch.cat(cols, dim=1)


def rope(x, cos, sin, heads):
    """Rotates each (x[2i], x[2i+1]) pair of every head. x [B, L, H*Dh]; cos/sin [L, Dh/2]."""
    B, L, C = x.shape
    p = x.view(B, L, heads, C // heads // 2, 2)
    x0, x1 = p[..., 0], p[..., 1]
    c, s = cos[None, :, None, :], sin[None, :, None, :]
    return torch.stack([x0 * c - x1 * s, x0 * s + x1 * c], dim=-1).view(B, L, C)


def _f32(v: float) -> float:
    """duet keeps its position tables in float32."""
    return float(torch.tensor(v, dtype=torch.float32))


class BranchPositions:
    """One branch's rotary tables: self-attention positions and cross-attention (time only)."""

    def __init__(self, self_spec, cross_spec, self_pos, times, ref_tokens):
        self.self_spec, self.cross_spec = self_spec, cross_spec
        self.self_pos = self_pos      # float64 [tokens, self axes] (values rounded to float32)
        self.times = times            # float64 [tokens]: seconds * rope_time_scale
        self.ref_tokens = ref_tokens

    def cross_pos(self, times):
        """Cross-attention positions in this branch's cross spec: time, then zeros."""
        pos = torch.zeros(len(times), len(self.cross_spec.pairs_per_axis), dtype=torch.float64)
        pos[:, 0] = times
        return pos


def make_positions(c: ModelConfig):
    """Video tokens in (t, h, w) order; every head's pairs: rope_time_pairs on the shared time
    axis (token-centre seconds * rope_time_scale), the rest split h then w (video) or on the
    audio token index (audio). References sit at negative time indices."""
    tp, scale = c.rope_time_pairs, c.rope_time_scale
    nz = lambda pairs: [p for p in pairs if p > 0]

    pv = c.width_video // c.heads_video // 2
    rest = pv - tp
    v_self = RopeSpec(nz([tp, (rest + 1) // 2, rest // 2]), c.rope_theta)
    v_cross = RopeSpec(nz([tp, rest]), c.rope_theta)
    gt, gh, gw = c.grid
    rt = c.ref_video_frames // c.patch_t
    v_time = lambda t: (t * c.patch_t + 0.5 * (c.patch_t - 1)) / c.fps
    rows, times = [], []
    for t in range(-rt, gt):
        time = _f32(v_time(t) * scale)
        for y in range(gh):
            for x in range(gw):
                rows.append([time, float(y), float(x)][:len(v_self.pairs_per_axis)])
                times.append(time)
    video = BranchPositions(v_self, v_cross, torch.tensor(rows, dtype=torch.float64),
                            torch.tensor(times, dtype=torch.float64), rt * gh * gw)

    pa = c.width_audio // c.heads_audio // 2
    a_self = RopeSpec(nz([tp, pa - tp]), c.rope_theta)
    a_cross = RopeSpec(nz([tp, pa - tp]), c.rope_theta)
    ra = c.ref_audio_frames // c.patch_a
    a_time = lambda t: (t * c.patch_a + 0.5 * (c.patch_a - 1)) / c.audio_rate
    rows, times = [], []
    for t in range(-ra, c.audio_tokens):
        time = _f32(a_time(t) * scale)
        rows.append([time, float(t)][:len(a_self.pairs_per_axis)])
        times.append(time)
    audio = BranchPositions(a_self, a_cross, torch.tensor(rows, dtype=torch.float64),
                            torch.tensor(times, dtype=torch.float64), ra)
    return video, audio


class Rotary:
    """cos/sin tables of one set of positions, cast to the activations' dtype."""

    def __init__(self, spec: RopeSpec, pos, dtype, device):
        ang = spec.angles(pos)
        self.cos = torch.cos(ang).to(dtype=dtype, device=device)
        self.sin = torch.sin(ang).to(dtype=dtype, device=device)

    def __call__(self, x, heads):
        return rope(x, self.cos, self.sin, heads)


# ---------------------------------------------------------------------------------------------
# Text encoder (model/text_encoder.c)


class TextAttention(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)


class TextBlock(nn.Module):
    """Pre-LN transformer block: x += proj(attn(ln1 x)); x += mlp(ln2 x)."""

    def __init__(self, width):
        super().__init__()
        self.ln1 = nn.LayerNorm(width, eps=EPS)
        self.attn = TextAttention(width)
        self.ln2 = nn.LayerNorm(width, eps=EPS)
        self.mlp = MLP(width, 4 * width)

    def forward(self, x, mask, heads):
        q, k, v = self.attn.qkv(self.ln1(x)).chunk(3, dim=-1)
        x = x + self.attn.proj(attention(q, k, v, mask, heads))
        return x + self.mlp(self.ln2(x))


class TextEncoder(nn.Module):
    """Byte ids (or precomputed embeddings) + learned positions -> transformer -> final LN.
    Also returns the masked mean of the tokens (zero for an empty caption)."""

    def __init__(self, c: ModelConfig):
        super().__init__()
        w = c.width_text
        self.heads = c.heads_text
        self.ids = c.text_source in ("bytes", "words")  # token ids, tokenized by duet
        if self.ids:
            vocab = TEXT_VOCAB if c.text_source == "bytes" else c.text_vocab
            self.tok_emb = nn.Parameter(torch.zeros(vocab, w))
        else:
            self.emb_in = nn.Linear(c.text_emb_dim, w)
        self.pos_emb = nn.Parameter(torch.zeros(c.text_len, w))
        self.blocks = nn.ModuleList(TextBlock(w) for _ in range(c.text_layers if self.ids else 0))
        self.ln_f = nn.LayerNorm(w, eps=EPS)

    def forward(self, text, mask):
        x = self.tok_emb[text] if self.ids else self.emb_in(text)
        x = x + self.pos_emb
        for b in self.blocks:
            x = b(x, mask, self.heads)
        x = self.ln_f(x)
        m = mask.to(x.dtype)
        pooled = (m[:, :, None] * x).sum(1) / m.sum(1, keepdim=True).clamp(min=1)
        return x, pooled


# ---------------------------------------------------------------------------------------------
# Per-branch input and output layers


def patchify3d(x, pt, ph, pw):
    """[B, T, H, W, C] -> [B, (T/pt)(H/ph)(W/pw), pt*ph*pw*C]: tokens in (t, h, w) order,
    features in (pt, ph, pw, C) order."""
    B, T, H, W, C = x.shape
    x = x.view(B, T // pt, pt, H // ph, ph, W // pw, pw, C).permute(0, 1, 3, 5, 2, 4, 6, 7)
    return x.reshape(B, (T // pt) * (H // ph) * (W // pw), pt * ph * pw * C)


def unpatchify3d(tokens, T, H, W, C, pt, ph, pw):
    B = tokens.shape[0]
    x = tokens.view(B, T // pt, H // ph, W // pw, pt, ph, pw, C).permute(0, 1, 4, 2, 5, 3, 6, 7)
    return x.reshape(B, T, H, W, C)


def patchify1d(x, p):
    """[B, T, C] -> [B, T/p, p*C] (a view)."""
    B, T, C = x.shape
    return x.reshape(B, T // p, p * C)


def unpatchify1d(tokens, T, C, p):
    return tokens.reshape(tokens.shape[0], T, C)


class TimestepMLP(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.fc1 = nn.Linear(TIMESTEP_DIM, width)
        self.fc2 = nn.Linear(width, width)

    def forward(self, t):
        return self.fc2(F.silu(self.fc1(timestep_embedding(t))))


class FinalLayer(nn.Module):
    """out(modulate(LN(x), shift, scale)), (shift, scale) = ada(cond)."""

    def __init__(self, width, out_dim):
        super().__init__()
        self.ada = nn.Linear(width, 2 * width)
        self.out = nn.Linear(width, out_dim)

    def forward(self, x, cond, ref_tokens):
        shift, scale = self.ada(cond).chunk(2, dim=1)
        h = modulate(layer_norm(x), shift, scale)
        return self.out(h[:, ref_tokens:])


class BranchIO(nn.Module):
    """Embeds a branch's patches ([x_t, condition, mask] along channels; references through
    their own layer), builds its conditioning vector and holds its final layer."""

    def __init__(self, in_dim, out_dim, ref_dim, width, text_width, text_in):
        super().__init__()
        self.embed = nn.Linear(in_dim, width)
        if ref_dim:
            self.ref_embed = nn.Linear(ref_dim, width)
        if text_in:
            self.text_in = nn.Linear(text_width, width)
        self.t_mlp = TimestepMLP(width)
        self.pooled_in = nn.Linear(text_width, width)
        self.final = FinalLayer(width, out_dim)

    def cond(self, t, pooled):
        """MLP(timestep embedding of t) + projection of the pooled text."""
        return self.t_mlp(t) + self.pooled_in(pooled)


# ---------------------------------------------------------------------------------------------
# Attention blocks


class StreamAttention(nn.Module):
    def __init__(self, width, heads, pre_only):
        super().__init__()
        dh = width // heads
        if pre_only:
            self.kv = nn.Linear(width, 2 * width)
        else:
            self.qkv = nn.Linear(width, 3 * width)
            self.q_norm = HeadRMSNorm(dh)
        self.k_norm = HeadRMSNorm(dh)
        if not pre_only:
            self.proj = nn.Linear(width, width)


class StreamWeights(nn.Module):
    """One stream of a joint attention block: adaLN-Zero modulation (shift1, scale1, gate1,
    shift2, scale2, gate2), QKV with QK RMS-norm, output projection and MLP. A pre-only stream
    (the text streams of the last dual-stream block) offers keys and values only."""

    def __init__(self, width, heads, hidden, pre_only=False):
        super().__init__()
        self.pre_only = pre_only
        self.ada = nn.Linear(width, (2 if pre_only else 6) * width)
        self.attn = StreamAttention(width, heads, pre_only)
        if not pre_only:
            self.mlp = MLP(width, hidden)


@dataclass
class Stream:
    """A stream's state in a joint attention: its tokens, SiLU'd conditioning and rotary."""
    w: StreamWeights
    x: torch.Tensor
    cond: torch.Tensor
    rot: Rotary | None = None


def joint_attention(streams, key_mask, heads):
    """One attention over the concatenated streams, each with its own weights, then each
    (non-pre-only) stream's gated output projection and MLP. Returns the new tokens of each
    stream (None for pre-only streams)."""
    qs, ks, vs, mods = [], [], [], []
    for s in streams:
        mod = s.w.ada(s.cond).chunk(2 if s.w.pre_only else 6, dim=1)
        h = modulate(layer_norm(s.x), mod[0], mod[1])
        if s.w.pre_only:
            q, (k, v) = None, s.w.attn.kv(h).chunk(2, dim=-1)
        else:
            q, k, v = s.w.attn.qkv(h).chunk(3, dim=-1)
            q = s.w.attn.q_norm(q, heads)
        k = s.w.attn.k_norm(k, heads)
        if s.rot is not None:
            k = s.rot(k, heads)
            q = s.rot(q, heads) if q is not None else None
        if q is not None:
            qs.append(q)
        ks.append(k)
        vs.append(v)
        mods.append(mod)
    o = attention(torch.cat(qs, 1), torch.cat(ks, 1), torch.cat(vs, 1), key_mask, heads)
    out, start = [], 0
    for s, mod in zip(streams, mods):
        if s.w.pre_only:
            out.append(None)
            continue
        n = s.x.shape[1]
        x = gated(s.x, mod[2], s.w.attn.proj(o[:, start:start + n]))
        start += n
        x = gated(x, mod[5], s.w.mlp(modulate(layer_norm(x), mod[3], mod[4])))
        out.append(x)
    return out


class CrossWeights(nn.Module):
    """x attends to y: q from modulate(LN(x)), k and v from LN(y) projected into x's width."""

    def __init__(self, width, heads, kv_width):
        super().__init__()
        dh = width // heads
        self.ada = nn.Linear(width, 3 * width)
        self.q = nn.Linear(width, width)
        self.kv = nn.Linear(kv_width, 2 * width)
        self.q_norm = HeadRMSNorm(dh)
        self.k_norm = HeadRMSNorm(dh)
        self.proj = nn.Linear(width, width)

    def forward(self, x, y, cond, heads, q_rot=None, k_rot=None, key_mask=None):
        shift, scale, gate = self.ada(cond).chunk(3, dim=1)
        q = self.q_norm(self.q(modulate(layer_norm(x), shift, scale)), heads)
        k, v = self.kv(layer_norm(y)).chunk(2, dim=-1)
        k = self.k_norm(k, heads)
        if q_rot is not None:
            q, k = q_rot(q, heads), k_rot(k, heads)
        return gated(x, gate, self.proj(attention(q, k, v, key_mask, heads)))


class AlignedWeights(nn.Module):
    """The time-aligned exchange (model/mmdit.h, duet_aligned_weights): per video token time
    step, its S video tokens (each reduced to aligned_width features) side by side project to
    the step's R audio tokens, and its R audio tokens side by side to one vector that each of
    the step's video tokens adds."""

    def __init__(self, c: ModelConfig):
        super().__init__()
        _, gh, gw = c.grid
        S, R = gh * gw, c.audio_per_video_step
        self.video_down = nn.Linear(c.width_video, c.aligned_width)
        self.audio_from_video = nn.Linear(S * c.aligned_width, R * c.width_audio)
        self.video_from_audio = nn.Linear(R * c.width_audio, c.width_video)

    def forward(self, c: ModelConfig, xv, xa, vref, aref):
        gt, gh, gw = c.grid
        S, R, na = gh * gw, c.audio_per_video_step, c.audio_tokens
        vc, ac = xv[:, vref:], xa[:, aref:]
        B, wv, wa = xv.shape[0], xv.shape[2], xa.shape[2]
        hv = self.video_down(layer_norm(vc)).reshape(B, gt, S * c.aligned_width)
        da = self.audio_from_video(hv).reshape(B, na, wa)
        dv = self.video_from_audio(layer_norm(ac).reshape(B, gt, R * wa)).reshape(B, gt, 1, wv)
        dv = dv.expand(B, gt, S, wv).reshape(B, gt * S, wv)
        return torch.cat([xv[:, :vref], vc + dv], 1), torch.cat([xa[:, :aref], ac + da], 1)


class DualBlock(nn.Module):
    """fusion = cross: each branch runs joint attention over [its tokens; its text tokens]
    (separate weights per stream), then audio cross-attends to video and video to the updated
    audio. fusion = joint: one attention over [text; video; audio]."""

    def __init__(self, c: ModelConfig, last: bool):
        super().__init__()
        wv, wa, wt = c.width_video, c.width_audio, c.width_text
        self.cross = c.fusion == "cross"
        self.video = StreamWeights(wv, c.heads_video, c.mlp_hidden(wv))
        self.audio = StreamWeights(wa, c.heads_audio, c.mlp_hidden(wa))
        if self.cross:
            self.video_text = StreamWeights(wv, c.heads_video, c.mlp_hidden(wv), pre_only=last)
            self.audio_text = StreamWeights(wa, c.heads_audio, c.mlp_hidden(wa), pre_only=last)
            self.audio_from_video = CrossWeights(wa, c.heads_audio, wv)
            self.video_from_audio = CrossWeights(wv, c.heads_video, wa)
            if c.aligned_width > 0:
                self.aligned = AlignedWeights(c)
        else:
            self.text = StreamWeights(wt, c.heads_video, c.mlp_hidden(wt), pre_only=last)


class SingleBlock(nn.Module):
    """Shared weights over [video; audio] tokens (each with its own rotary positions), then
    each branch cross-attends to the text."""

    def __init__(self, c: ModelConfig):
        super().__init__()
        w = c.width_video
        self.av = StreamWeights(w, c.heads_video, c.mlp_hidden(w))
        self.from_text = CrossWeights(w, c.heads_video, w)


# ---------------------------------------------------------------------------------------------
# The network


class DuetMMDiT(nn.Module):
    def __init__(self, c: ModelConfig):
        super().__init__()
        self.c = c
        cross = c.fusion == "cross"
        C, M, vp = c.video_channels, c.audio_channels, c.video_patch
        self.text = TextEncoder(c)
        self.video = BranchIO(vp * (2 * C + 1), vp * C, vp * C if c.ref_video_frames else 0,
                              c.width_video, c.width_text, cross)
        self.audio = BranchIO(c.patch_a * (2 * M + 1), c.patch_a * M,
                              c.patch_a * M if c.ref_audio_frames else 0,
                              c.width_audio, c.width_text, cross)
        self.blocks = nn.ModuleList(DualBlock(c, i == c.depth - 1) for i in range(c.depth))
        if c.single_depth > 0:
            self.single_text_in = nn.Linear(c.width_text, c.width_video)
        self.singles = nn.ModuleList(SingleBlock(c) for _ in range(c.single_depth))
        self.pos_video, self.pos_audio = make_positions(c)

    def embed(self, io, patches, ref_patches):
        x = io.embed(patches)
        if ref_patches is not None:
            x = torch.cat([io.ref_embed(ref_patches), x], dim=1)
        return x

    def forward(self, video_xt, video_cond, video_mask, audio_xt, audio_cond, audio_mask,
                t_video, t_audio, text, text_mask, ref_video=None, ref_audio=None):
        """Shapes as duet_mmdit_inputs: video [B,T,H,W,C] (+ mask [B,T,H,W,1]), audio [B,F,M]
        (+ mask [B,F,1]), times [B], text ids [B,L] (or embeddings [B,L,D]), text_mask bool
        [B,L]. Returns (video_v [B,T,H,W,C], audio_v [B,F,M])."""
        c = self.c
        dt, dev = video_xt.dtype, video_xt.device
        hv, ha = c.heads_video, c.heads_audio

        text_tokens, pooled = self.text(text, text_mask)
        xv = self.embed(self.video,
                        patchify3d(torch.cat([video_xt, video_cond, video_mask], 4),
                                   c.patch_t, c.patch_h, c.patch_w),
                        None if ref_video is None else patchify3d(ref_video, c.patch_t, c.patch_h, c.patch_w))
        xa = self.embed(self.audio,
                        patchify1d(torch.cat([audio_xt, audio_cond, audio_mask], 2), c.patch_a),
                        None if ref_audio is None else patchify1d(ref_audio, c.patch_a))
        cond_v = self.video.cond(t_video, pooled)
        cond_a = self.audio.cond(t_audio, pooled)
        sv, sa = F.silu(cond_v), F.silu(cond_a)

        # Positions of the tokens present (references only when given).
        pv, pa = self.pos_video, self.pos_audio
        v0 = 0 if ref_video is not None else pv.ref_tokens
        a0 = 0 if ref_audio is not None else pa.ref_tokens
        rot_v = Rotary(pv.self_spec, pv.self_pos[v0:], dt, dev)
        rot_a = Rotary(pa.self_spec, pa.self_pos[a0:], dt, dev)
        B, nv, na = xv.shape[0], xv.shape[1], xa.shape[1]
        ones = lambda n: torch.ones(B, n, dtype=torch.bool, device=dev)

        if c.fusion == "cross":
            tv, ta = self.video.text_in(text_tokens), self.audio.text_in(text_tokens)
            mask_v = torch.cat([ones(nv), text_mask], 1)
            mask_a = torch.cat([ones(na), text_mask], 1)
            # Cross-attention: time only, in the attending branch's cross spec.
            a_q = Rotary(pa.cross_spec, pa.cross_pos(pa.times[a0:]), dt, dev)
            a_k = Rotary(pa.cross_spec, pa.cross_pos(pv.times[v0:]), dt, dev)
            v_q = Rotary(pv.cross_spec, pv.cross_pos(pv.times[v0:]), dt, dev)
            v_k = Rotary(pv.cross_spec, pv.cross_pos(pa.times[a0:]), dt, dev)
            for b in self.blocks:
                xv, tv = joint_attention([Stream(b.video, xv, sv, rot_v), Stream(b.video_text, tv, sv)],
                                         mask_v, hv)
                xa, ta = joint_attention([Stream(b.audio, xa, sa, rot_a), Stream(b.audio_text, ta, sa)],
                                         mask_a, ha)
                xa = b.audio_from_video(xa, xv, sa, ha, a_q, a_k)
                xv = b.video_from_audio(xv, xa, sv, hv, v_q, v_k)
                if c.aligned_width > 0:
                    xv, xa = b.aligned(c, xv, xa, pv.ref_tokens - v0, pa.ref_tokens - a0)
        else:
            st = F.silu(0.5 * (cond_v + cond_a))  # the text stream sees both times
            mask = torch.cat([text_mask, ones(nv + na)], 1)
            tx = text_tokens
            for b in self.blocks:
                tx, xv, xa = joint_attention([Stream(b.text, tx, st), Stream(b.video, xv, sv, rot_v),
                                              Stream(b.audio, xa, sa, rot_a)], mask, hv)

        if c.single_depth > 0:
            ts = self.single_text_in(text_tokens)
            for b in self.singles:
                xv, xa = joint_attention([Stream(b.av, xv, sv, rot_v), Stream(b.av, xa, sa, rot_a)], None, hv)
                xv = b.from_text(xv, ts, sv, hv, key_mask=text_mask)
                xa = b.from_text(xa, ts, sa, hv, key_mask=text_mask)

        ov = self.video.final(xv, sv, pv.ref_tokens if ref_video is not None else 0)
        oa = self.audio.final(xa, sa, pa.ref_tokens if ref_audio is not None else 0)
        video_v = unpatchify3d(ov, c.video_frames, c.video_height, c.video_width, c.video_channels,
                               c.patch_t, c.patch_h, c.patch_w)
        audio_v = unpatchify1d(oa, c.audio_frames, c.audio_channels, c.patch_a)
        return video_v, audio_v


def random_inputs(c: ModelConfig, batch: int, dtype=torch.float32, seed=0):
    """Inputs of the right shapes (for benchmarks): captions of mixed lengths, random masks."""
    g = torch.Generator().manual_seed(seed)
    T, H, W, C = c.video_frames, c.video_height, c.video_width, c.video_channels
    Fr, M, L = c.audio_frames, c.audio_channels, c.text_len
    r = lambda *s: torch.randn(*s, generator=g, dtype=dtype)
    lengths = torch.randint(0, L + 1, (batch,), generator=g)
    text_mask = torch.arange(L)[None] < lengths[:, None]
    if c.text_source != "precomputed":
        vocab = TEXT_VOCAB if c.text_source == "bytes" else c.text_vocab
        text = torch.randint(1, vocab, (batch, L), generator=g) * text_mask
    else:
        text = r(batch, L, c.text_emb_dim)
    inputs = dict(video_xt=r(batch, T, H, W, C), video_cond=r(batch, T, H, W, C),
                  video_mask=(r(batch, T, H, W, 1) > 0).to(dtype),
                  audio_xt=r(batch, Fr, M), audio_cond=r(batch, Fr, M),
                  audio_mask=(r(batch, Fr, 1) > 0).to(dtype),
                  t_video=torch.rand(batch, generator=g, dtype=dtype),
                  t_audio=torch.rand(batch, generator=g, dtype=dtype),
                  text=text, text_mask=text_mask)
    if c.ref_video_frames:
        inputs["ref_video"] = r(batch, c.ref_video_frames, H, W, C)
    if c.ref_audio_frames:
        inputs["ref_audio"] = r(batch, c.ref_audio_frames, M)
    return inputs
