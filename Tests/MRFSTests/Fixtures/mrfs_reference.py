"""PyTorch transcription of the official MRFS network and losses (HaoZhang1018/MRFS, CVPR 2024).

Written from a reading of the official code, not copied from it:
  MFNet/models/model.py (MRFS), encoder_agg.py (RGBXTransformer: two SegFormer MiT streams),
  modules.py (IGMAVC = IGM-Att, PCASC = PC-Att), Seg_head.py (DecoderHead), Fusion_head.py (CNNHead),
  {MFNet,FMB,PST900}/utils/loss_utils.py (FusionLoss, MakeLoss).
Module and attribute names follow the official ones, so `state_dict()` keys are the official
checkpoint keys (same order too). Plain torch, CPU, nothing else. README.md beside this file is the
specification; `python3 mrfs_reference.py` prints the parameter counts of the named configurations,
`python3 mrfs_reference.py --shapes` every module's output shape at 2x3x64x80 (minimal).

Deliberate differences from the official code (none changes a result):
  * attn_drop / proj_drop / Mlp dropout are omitted: every official configuration sets them to 0.
  * The heads' BatchNorm eps/momentum are constructor values (official: 1e-5/0.1 from the
    constructor, overwritten to 0.01/0.01 by init_weight only when a criterion is given).
  * Fusion-loss constants are arguments instead of literals edited per dataset folder.
"""
import math
from dataclasses import dataclass, field, replace

import torch
import torch.nn as nn
import torch.nn.functional as F

# ---------------------------------------------------------------------------------------------
# Configurations
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MRFSConfig:
    dims: tuple                 # channels per stage
    heads: tuple                # attention heads per stage (MiT and PC-Att)
    depths: tuple               # MiT blocks per stage, per stream
    sr_ratios: tuple = (8, 4, 2, 1)
    mlp_ratio: int = 4
    decoder_embed: int = 512    # DecoderHead embed (train.py --decoder_embed_dim, default 512)
    fusion_embed: int = 16      # CNNHead embed (hard-coded 16 in the official code)
    classes: int = 9
    in_chans: int = 3
    drop_path_rate: float = 0.1  # every official mit_bN uses 0.1
    seg_dropout: float = 0.1     # Dropout2d in DecoderHead
    bn_eps: float = 0.01         # heads' BatchNorm; official training value (see README)
    bn_momentum: float = 0.01
    igm_reduction: int = 4
    official_stage2_drop_path: bool = True  # reproduce dpr[cur] / dpr[cur+1] in stage 2


CONFIGS = {
    # official: MFNet/FMB/PST900 train.py, backbone mit_b4, decoder_embed_dim 512
    "b4": MRFSConfig(dims=(64, 128, 320, 512), heads=(1, 2, 5, 8), depths=(3, 8, 27, 3)),
    # official code with --backbone mit_b0 and every other argument at its train.py default
    "b0": MRFSConfig(dims=(32, 64, 160, 256), heads=(1, 2, 5, 8), depths=(2, 2, 2, 2)),
    # docs/mrfs.md "Minimal faithful configuration"
    "minimal": MRFSConfig(dims=(16, 32, 64, 128), heads=(1, 1, 2, 4), depths=(1, 1, 1, 1), decoder_embed=64),
}

# LayerNorm eps: the MiT block norms (norm1, norm2) and the per-stage norms (norm{k}) use
# partial(nn.LayerNorm, eps=1e-6); every other LayerNorm (patch_embed.norm, attn.norm after the
# spatial-reduction conv, PC-Att norms) is a bare nn.LayerNorm, eps 1e-5.
BLOCK_LN_EPS = 1e-6
DEFAULT_LN_EPS = 1e-5

# ---------------------------------------------------------------------------------------------
# MiT (SegFormer mix_transformer) pieces, as in encoder_agg.py
# ---------------------------------------------------------------------------------------------


class DropPath(nn.Module):
    """Stochastic depth per sample (timm's drop_path): keep with 1-p, scale kept samples by 1/(1-p)."""

    def __init__(self, drop_prob):
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x):
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep = 1.0 - self.drop_prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        if keep > 0.0:
            mask.div_(keep)
        return x * mask


def tokens_to_map(x, H, W):
    """(B, N, C) row-major tokens -> (B, C, H, W)."""
    B, N, C = x.shape
    return x.transpose(1, 2).reshape(B, C, H, W)


def map_to_tokens(x):
    """(B, C, H, W) -> (B, H*W, C), row-major."""
    return x.flatten(2).transpose(1, 2)


def reduced_attention(q_linear, kv_linear, sr, norm, queries, sources, H, W, heads, scale):
    """softmax(q k^T * scale) v with q from `queries`, k/v from `sources` (both (B,N,C) on an HxW
    grid). When `sr` is given, sources pass Conv2d(C,C,k=s=sr) then LayerNorm first. kv's output
    channels [0,C) are keys, [C,2C) values; head h owns channels [h*d,(h+1)*d), d = C/heads."""
    B, N, C = queries.shape
    d = C // heads
    q = q_linear(queries).reshape(B, N, heads, d).permute(0, 2, 1, 3)
    if sr is not None:
        sources = norm(map_to_tokens(sr(tokens_to_map(sources, H, W))))
    kv = kv_linear(sources).reshape(B, -1, 2, heads, d).permute(2, 0, 3, 1, 4)
    k, v = kv[0], kv[1]
    attn = ((q @ k.transpose(-2, -1)) * scale).softmax(dim=-1)
    return (attn @ v).transpose(1, 2).reshape(B, N, C)


class Attention(nn.Module):
    """MiT efficient self-attention: proj(attention(x))."""

    def __init__(self, dim, num_heads, sr_ratio, qkv_bias=True):
        super().__init__()
        assert dim % num_heads == 0
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, dim * 2, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.sr_ratio = sr_ratio
        if sr_ratio > 1:
            self.sr = nn.Conv2d(dim, dim, kernel_size=sr_ratio, stride=sr_ratio)
            self.norm = nn.LayerNorm(dim, eps=DEFAULT_LN_EPS)

    def forward(self, x, H, W):
        sr, norm = (self.sr, self.norm) if self.sr_ratio > 1 else (None, None)
        return self.proj(reduced_attention(self.q, self.kv, sr, norm, x, x, H, W, self.num_heads, self.scale))


class DWConv(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=3, stride=1, padding=1, bias=True, groups=dim)

    def forward(self, x, H, W):
        return map_to_tokens(self.dwconv(tokens_to_map(x, H, W)))


class Mlp(nn.Module):
    """Mix-FFN: fc1 -> depthwise 3x3 -> GELU (exact, erf) -> fc2."""

    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.dwconv = DWConv(hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x, H, W):
        return self.fc2(self.act(self.dwconv(self.fc1(x), H, W)))


class Block(nn.Module):
    """Pre-norm transformer block: x += DP(attn(LN1 x)); x += DP(mlp(LN2 x))."""

    def __init__(self, dim, num_heads, mlp_ratio, sr_ratio, drop_path):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=BLOCK_LN_EPS)
        self.attn = Attention(dim, num_heads, sr_ratio, qkv_bias=True)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=BLOCK_LN_EPS)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x, H, W):
        x = x + self.drop_path(self.attn(self.norm1(x), H, W))
        return x + self.drop_path(self.mlp(self.norm2(x), H, W))


class OverlapPatchEmbed(nn.Module):
    """Conv2d(k, stride, padding k//2, bias) then LayerNorm (eps 1e-5) over tokens."""

    def __init__(self, patch_size, stride, in_chans, embed_dim):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=stride, padding=patch_size // 2)
        self.norm = nn.LayerNorm(embed_dim, eps=DEFAULT_LN_EPS)

    def forward(self, x):
        x = self.proj(x)
        _, _, H, W = x.shape
        return self.norm(map_to_tokens(x)), H, W


# ---------------------------------------------------------------------------------------------
# IGM-Att (modules.py: ChannelAttention, SpatialAttention, MixAttention, IGMAVC)
# ---------------------------------------------------------------------------------------------


class ChannelAttention(nn.Module):
    """sigmoid(mlp(avgpool [x1;x2]) + mlp(maxpool [x1;x2])) -> (ca1, ca2), each (B, C, 1, 1)."""

    def __init__(self, dim, reduction=4):
        super().__init__()
        self.dim = dim
        self.mlp = nn.Sequential(nn.Linear(2 * dim, 2 * dim // reduction), nn.ReLU(), nn.Linear(2 * dim // reduction, 2 * dim))

    def forward(self, x1, x2):
        B = x1.shape[0]
        x = torch.cat((x1, x2), dim=1)
        avg = F.adaptive_avg_pool2d(x, 1).reshape(B, 2 * self.dim)
        mx = F.adaptive_max_pool2d(x, 1).reshape(B, 2 * self.dim)  # gradient to one argmax, as official
        weights = torch.sigmoid(self.mlp(avg) + self.mlp(mx))
        weights = weights.reshape(B, 2, self.dim, 1, 1)
        return weights[:, 0], weights[:, 1]


class SpatialAttention(nn.Module):
    """[mean_c x1, max_c x1, mean_c x2, max_c x2] -> 1x1 conv 4->16 -> ReLU -> 1x1 conv 16->2 ->
    sigmoid -> (sa1, sa2), each (B, 1, H, W)."""

    def __init__(self, reduction=4):
        super().__init__()
        self.mlp = nn.Sequential(nn.Conv2d(4, 4 * reduction, 1), nn.ReLU(), nn.Conv2d(4 * reduction, 2, 1), nn.Sigmoid())

    def forward(self, x1, x2):
        stats = torch.cat((x1.mean(dim=1, keepdim=True), torch.max(x1, dim=1, keepdim=True)[0],
                           x2.mean(dim=1, keepdim=True), torch.max(x2, dim=1, keepdim=True)[0]), dim=1)
        weights = self.mlp(stats)
        return weights[:, 0:1], weights[:, 1:2]


class MixAttention(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.ca_gate = ChannelAttention(dim, reduction=4)
        self.sa_gate = SpatialAttention(reduction=4)

    def forward(self, x1, x2):
        ca1, ca2 = self.ca_gate(x1, x2)
        sa1, sa2 = self.sa_gate(x1, x2)
        return ca1 * sa1, ca2 * sa2


class IGMAVC(nn.Module):
    """IGM-Att on two (B, C, H, W) maps: g = per-pixel gate, (m1, m2) = mix attention;
    out1 = x1 + (1 - g) * m2 * x2, out2 = x2 + g * m1 * x1."""

    def __init__(self, dim, reduction=4):
        super().__init__()
        self.MA = MixAttention(dim)
        self.gate = nn.Sequential(nn.Linear(2 * dim, 2 * dim // reduction), nn.ReLU(),
                                  nn.Linear(2 * dim // reduction, dim), nn.Sigmoid())

    def forward(self, x1, x2):
        assert x1.shape == x2.shape
        B, C, H, W = x1.shape
        g = self.gate(torch.cat((map_to_tokens(x1), map_to_tokens(x2)), dim=2))
        g = g.reshape(B, H, W, C).permute(0, 3, 1, 2)
        m1, m2 = self.MA(x1, x2)
        return x1 + ((1 - g) * m2) * x2, x2 + (g * m1) * x1


# ---------------------------------------------------------------------------------------------
# PC-Att (modules.py: SelfAttention, CrossAttention, PCASC); q/kv without bias, proj with bias,
# the residual added BEFORE proj, no LayerNorm before attention.
# ---------------------------------------------------------------------------------------------


class SelfAttention(nn.Module):
    def __init__(self, dim, num_heads, sr_ratio):
        super().__init__()
        assert dim % num_heads == 0
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.sr_ratio = sr_ratio
        self.q = nn.Linear(dim, dim, bias=False)
        self.kv = nn.Linear(dim, dim * 2, bias=False)
        self.proj = nn.Linear(dim, dim)
        if sr_ratio > 1:
            self.sr = nn.Conv2d(dim, dim, kernel_size=sr_ratio, stride=sr_ratio)
            self.norm = nn.LayerNorm(dim, eps=DEFAULT_LN_EPS)

    def forward(self, x, H, W):
        sr, norm = (self.sr, self.norm) if self.sr_ratio > 1 else (None, None)
        return self.proj(reduced_attention(self.q, self.kv, sr, norm, x, x, H, W, self.num_heads, self.scale) + x)


class CrossAttention(nn.Module):
    """Queries from x1, keys/values from (spatially reduced) x2: proj(attention + x1)."""

    def __init__(self, dim, num_heads, sr_ratio):
        super().__init__()
        assert dim % num_heads == 0
        self.sr_ratio = sr_ratio
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.q1 = nn.Linear(dim, dim, bias=False)
        self.kv2 = nn.Linear(dim, dim * 2, bias=False)
        self.proj = nn.Linear(dim, dim)
        if sr_ratio > 1:
            self.sr = nn.Conv2d(dim, dim, kernel_size=sr_ratio, stride=sr_ratio)
            self.norm = nn.LayerNorm(dim, eps=DEFAULT_LN_EPS)

    def forward(self, x1, x2, H, W):
        assert x1.shape == x2.shape
        sr, norm = (self.sr, self.norm) if self.sr_ratio > 1 else (None, None)
        return self.proj(reduced_attention(self.q1, self.kv2, sr, norm, x1, x2, H, W, self.num_heads, self.scale) + x1)


class PCASC(nn.Module):
    """PC-Att: a = SA_x1(rgb); b = CA_x1toX2(ir, a); c = SA_x2(b); d = CA_x2toX1(a, c); proj(d)."""

    def __init__(self, dim, num_heads, sr_ratio):
        super().__init__()
        self.SA_x1 = SelfAttention(dim, num_heads, sr_ratio)
        self.CA_x1toX2 = CrossAttention(dim, num_heads, sr_ratio)
        self.SA_x2 = SelfAttention(dim, num_heads, sr_ratio)
        self.CA_x2toX1 = CrossAttention(dim, num_heads, sr_ratio)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x1, x2):
        assert x1.shape == x2.shape
        B, C, H, W = x1.shape
        t1, t2 = map_to_tokens(x1), map_to_tokens(x2)
        a = self.SA_x1(t1, H, W)
        b = self.CA_x1toX2(t2, a, H, W)
        c = self.SA_x2(b, H, W)
        d = self.CA_x2toX1(a, c, H, W)
        return tokens_to_map(self.proj(d), H, W)


# ---------------------------------------------------------------------------------------------
# Dual-stream encoder (encoder_agg.py: RGBXTransformer)
# ---------------------------------------------------------------------------------------------


def drop_path_rates(cfg):
    """Per-block drop-path rates (rgb, ir) per stage, with the official stage-2 indexing when
    cfg.official_stage2_drop_path: every stage-2 block gets dpr[cur] (RGB) / dpr[cur+1] (IR)."""
    total = sum(cfg.depths)
    dpr = [x.item() for x in torch.linspace(0, cfg.drop_path_rate, total)]
    rates, cur = [], 0
    for k, depth in enumerate(cfg.depths):
        if k == 1 and cfg.official_stage2_drop_path:
            rates.append(([dpr[cur]] * depth, [dpr[cur + 1]] * depth))
        else:
            rates.append((dpr[cur:cur + depth], dpr[cur:cur + depth]))
        cur += depth
    return rates


class RGBXTransformer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        dims = cfg.dims
        for prefix in ("", "extra_"):
            for k in range(4):
                embed = OverlapPatchEmbed(7 if k == 0 else 3, 4 if k == 0 else 2,
                                          cfg.in_chans if k == 0 else dims[k - 1], dims[k])
                setattr(self, f"{prefix}patch_embed{k + 1}", embed)
        for k, (rgb_rates, ir_rates) in enumerate(drop_path_rates(cfg)):
            for prefix, rates in (("", rgb_rates), ("extra_", ir_rates)):
                blocks = nn.ModuleList([Block(dims[k], cfg.heads[k], cfg.mlp_ratio, cfg.sr_ratios[k], r) for r in rates])
                setattr(self, f"{prefix}block{k + 1}", blocks)
                setattr(self, f"{prefix}norm{k + 1}", nn.LayerNorm(dims[k], eps=BLOCK_LN_EPS))
        self.IGMAVCs = nn.ModuleList([IGMAVC(dims[k], reduction=cfg.igm_reduction) for k in range(4)])
        self.PCASCs = nn.ModuleList([PCASC(dims[k], cfg.heads[k], cfg.sr_ratios[k]) for k in range(4)])

    def _stream_stage(self, prefix, k, x):
        x, H, W = getattr(self, f"{prefix}patch_embed{k}")(x)
        for blk in getattr(self, f"{prefix}block{k}"):
            x = blk(x, H, W)
        return tokens_to_map(getattr(self, f"{prefix}norm{k}")(x), H, W)

    def forward(self, x_rgb, x_ir, taps=None):
        """Returns (vision, semantic): vision = [rgb1, ir1, ..., rgb4, ir4] (IGM-Att outputs),
        semantic = [pc1, ..., pc4] (PC-Att outputs). `taps`, if a dict, receives intermediates."""
        vision, semantic = [], []
        for k in range(1, 5):
            x_rgb = self._stream_stage("", k, x_rgb)
            x_ir = self._stream_stage("extra_", k, x_ir)
            if taps is not None:
                taps[f"stage{k}.mit_rgb"], taps[f"stage{k}.mit_ir"] = x_rgb, x_ir
            x_rgb, x_ir = self.IGMAVCs[k - 1](x_rgb, x_ir)
            fused = self.PCASCs[k - 1](x_rgb, x_ir)
            if taps is not None:
                taps[f"stage{k}.igm_rgb"], taps[f"stage{k}.igm_ir"], taps[f"stage{k}.pc"] = x_rgb, x_ir, fused
            vision += [x_rgb, x_ir]
            semantic.append(fused)
        return vision, semantic


# ---------------------------------------------------------------------------------------------
# Heads (Seg_head.py: DecoderHead; Fusion_head.py: CNNHead)
# ---------------------------------------------------------------------------------------------


def upsample(x, size):
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class MLP(nn.Module):
    def __init__(self, input_dim, embed_dim):
        super().__init__()
        self.proj = nn.Linear(input_dim, embed_dim)

    def forward(self, x):
        return self.proj(map_to_tokens(x))


class DecoderHead(nn.Module):
    """SegFormer all-MLP head on the four PC-Att maps; logits at the stage-1 (1/4) resolution."""

    def __init__(self, in_channels, classes, embed, bn_eps, bn_momentum, dropout=0.1):
        super().__init__()
        self.dropout = nn.Dropout2d(dropout)
        self.linear_c4 = MLP(in_channels[3], embed)
        self.linear_c3 = MLP(in_channels[2], embed)
        self.linear_c2 = MLP(in_channels[1], embed)
        self.linear_c1 = MLP(in_channels[0], embed)
        self.linear_fuse = nn.Sequential(nn.Conv2d(4 * embed, embed, kernel_size=1),
                                         nn.BatchNorm2d(embed, eps=bn_eps, momentum=bn_momentum), nn.ReLU())
        self.linear_pred = nn.Conv2d(embed, classes, kernel_size=1)

    def forward(self, inputs):
        c1, c2, c3, c4 = inputs
        B = c4.shape[0]
        size = c1.shape[2:]

        def embed(linear, c):
            return tokens_to_map(linear(c), c.shape[2], c.shape[3])

        _c4 = upsample(embed(self.linear_c4, c4), size)
        _c3 = upsample(embed(self.linear_c3, c3), size)
        _c2 = upsample(embed(self.linear_c2, c2), size)
        _c1 = embed(self.linear_c1, c1)
        x = self.linear_fuse(torch.cat([_c4, _c3, _c2, _c1], dim=1))
        return self.linear_pred(self.dropout(x))


class PointConv(nn.Module):
    def __init__(self, in_dim, out_dim, bn_eps, bn_momentum):
        super().__init__()
        self.pconv = nn.Sequential(nn.Conv2d(in_dim, out_dim, kernel_size=1),
                                   nn.BatchNorm2d(out_dim, eps=bn_eps, momentum=bn_momentum), nn.ReLU())

    def forward(self, x):
        return self.pconv(x)


class CNNHead(nn.Module):
    """Fusion head: 1x1 conv+BN+ReLU on each of the 8 IGM-Att maps, bilinear up to input size,
    concat with [rgb, ir3] -> 3x3 conv+BN+ReLU -> 1x1 conv -> sigmoid (fused RGB)."""

    def __init__(self, in_channels, embed, bn_eps, bn_momentum):
        super().__init__()
        for k in range(4):
            for stream in ("rgb", "ir"):
                setattr(self, f"PointConv_{k + 1}_{stream}", PointConv(in_channels[k], embed, bn_eps, bn_momentum))
        self.CNN_fuse = nn.Sequential(
            nn.Conv2d(8 * embed + 6, embed, kernel_size=3, stride=1, padding=1),
            nn.BatchNorm2d(embed, eps=bn_eps, momentum=bn_momentum), nn.ReLU(),
            nn.Conv2d(embed, 3, kernel_size=1), nn.Sigmoid())

    def forward(self, vision, rgb, ir):
        size = rgb.shape[2:]
        maps = []
        for k in range(4):
            for j, stream in enumerate(("rgb", "ir")):
                maps.append(upsample(getattr(self, f"PointConv_{k + 1}_{stream}")(vision[2 * k + j]), size))
        return self.CNN_fuse(torch.cat(maps + [rgb, ir], dim=1))


class MRFS(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.backbone = RGBXTransformer(cfg)
        self.decode_head = DecoderHead(cfg.dims, cfg.classes, cfg.decoder_embed, cfg.bn_eps, cfg.bn_momentum, cfg.seg_dropout)
        self.aux_head = CNNHead(cfg.dims, cfg.fusion_embed, cfg.bn_eps, cfg.bn_momentum)

    def forward(self, rgb, ir, taps=None):
        """rgb, ir: (B, 3, H, W) in [0, 1] (ir = the grey image in all 3 channels).
        Returns (logits (B, K, H, W), fused (B, 3, H, W))."""
        vision, semantic = self.backbone(rgb, ir, taps)
        quarter = self.decode_head(semantic)
        if taps is not None:
            taps["logits_quarter"] = quarter
        logits = upsample(quarter, rgb.shape[2:])
        fused = self.aux_head(vision, rgb, ir)
        return logits, fused


def part_counts(model):
    """Parameter counts by part (the official parts)."""
    count = lambda m: sum(p.numel() for p in m.parameters())
    bb = model.backbone
    stream = lambda prefix: sum(count(getattr(bb, f"{prefix}{name}{k}")) for k in range(1, 5)
                                for name in ("patch_embed", "block", "norm"))
    return {
        "mit_rgb": stream(""), "mit_ir": stream("extra_"),
        "igm": [count(m) for m in bb.IGMAVCs], "pc": [count(m) for m in bb.PCASCs],
        "decode_head": count(model.decode_head), "aux_head": count(model.aux_head),
        "total": count(model),
    }


# ---------------------------------------------------------------------------------------------
# Official initialisation (for training from scratch; the fixtures use deterministic_ instead)
# ---------------------------------------------------------------------------------------------


def official_init_(model):
    """The official init: RGBXTransformer.apply(_init_weights) over the whole backbone (IGM and PC
    included): Linear weight trunc_normal(std 0.02, cut at ABSOLUTE -2..2, i.e. effectively
    untruncated), Linear bias 0; LayerNorm 1/0; Conv2d weight normal(0, sqrt(2/fan_out)),
    fan_out = kh*kw*out/groups, bias 0. Heads (MRFS.init_weights, with a criterion): every Conv2d
    weight kaiming_normal(fan_in, relu) = normal(0, sqrt(2/fan_in)), Conv2d bias left at torch's
    default U(+-1/sqrt(fan_in)); BN weight 1, bias 0; head Linear layers (decode_head.linear_c*)
    left at torch's default (weight and bias U(+-1/sqrt(fan_in)))."""
    for m in model.backbone.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02, a=-2.0, b=2.0)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    for head in (model.decode_head, model.aux_head):
        for m in head.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)


# ---------------------------------------------------------------------------------------------
# Losses (utils/loss_utils.py)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FusionLossConstants:
    gamma: float            # adjust_gamma exponent for the visible target
    contrast: float         # adjust_contrast factor for the infrared target
    gradient_weight: float  # w_g
    intensity_weight: float = 0.5
    colour_weight: float = 1.0


DATASET_CONSTANTS = {
    "MFNet": FusionLossConstants(gamma=0.5, contrast=1.7, gradient_weight=0.2),
    "MSRS": FusionLossConstants(gamma=0.5, contrast=1.7, gradient_weight=0.2),  # uses MFNet/ settings
    "FMB": FusionLossConstants(gamma=0.8, contrast=1.0, gradient_weight=1.0),
    "PST900": FusionLossConstants(gamma=0.5, contrast=1.8, gradient_weight=0.2),
}
SEGMENTATION_WEIGHT = 1.0
FUSION_WEIGHT = 0.1
IGNORE_INDEX = 255


def adjust_gamma(img, gamma):
    """torchvision adjust_gamma(img, gamma, gain=1) on float images: clamp(img^gamma, 0, 1)."""
    return img.pow(gamma).clamp(0, 1)


def adjust_contrast(img, factor):
    """torchvision adjust_contrast on (B, 3, H, W) float images: blend with the per-sample mean of
    the grey image (0.2989 R + 0.587 G + 0.114 B, mean over H and W), clamped to [0, 1]."""
    grey = 0.2989 * img[:, 0] + 0.587 * img[:, 1] + 0.114 * img[:, 2]
    mean = grey.unsqueeze(1).mean(dim=(-3, -2, -1), keepdim=True)
    return (factor * img + (1.0 - factor) * mean).clamp(0, 1)


def rgb_to_ycrcb(img):
    """(Y, Cr, Cb), each (B, 1, H, W): Y = .299R+.587G+.114B, Cr = .713(R-Y)+.5, Cb = .564(B-Y)+.5."""
    r, g, b = img[:, 0:1], img[:, 1:2], img[:, 2:3]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    return y, (r - y) * 0.713 + 0.5, (b - y) * 0.564 + 0.5


SOBEL_X = ((-1.0, 0.0, 1.0), (-2.0, 0.0, 2.0), (-1.0, 0.0, 1.0))
SOBEL_Y = ((1.0, 2.0, 1.0), (0.0, 0.0, 0.0), (-1.0, -2.0, -1.0))


def sobel_xy(img):
    """Signed Sobel responses per channel: F.conv2d (cross-correlation, no kernel flip), zero padding 1."""
    C = img.shape[1]
    kx = torch.tensor(SOBEL_X, dtype=img.dtype).reshape(1, 1, 3, 3).repeat(C, 1, 1, 1)
    ky = torch.tensor(SOBEL_Y, dtype=img.dtype).reshape(1, 1, 3, 3).repeat(C, 1, 1, 1)
    return F.conv2d(img, kx, padding=1, groups=C), F.conv2d(img, ky, padding=1, groups=C)


def fusion_targets(vis, ir, constants):
    """Weak-information-recovery targets: (R_vis, R_ir)."""
    return adjust_gamma(vis, constants.gamma), adjust_contrast(ir, constants.contrast)


def mrfs_loss(fused, logits, vis, ir, mask, labels, constants):
    """Every term of MakeLoss(FusionLoss) as a dict of 0-d tensors; 'total' is the training loss."""
    l1 = lambda a, b: (a - b).abs().mean()
    f = fused * mask
    r_vis, r_ir = fusion_targets(vis, ir, constants)
    intensity = l1(f, torch.maximum(r_vis, r_ir))
    fx, fy = sobel_xy(f)
    vx, vy = sobel_xy(r_vis)
    ix, iy = sobel_xy(r_ir)
    gradient_x = l1(fx, torch.maximum(vx, ix))
    gradient_y = l1(fy, torch.maximum(vy, iy))
    gradient = 0.5 * gradient_x + 0.5 * gradient_y
    _, cr_f, cb_f = rgb_to_ycrcb(f)
    _, cr_v, cb_v = rgb_to_ycrcb(r_vis)
    colour_cb = l1(cb_f, cb_v)
    colour_cr = l1(cr_f, cr_v)
    colour = colour_cb + colour_cr
    fusion = constants.intensity_weight * intensity + constants.gradient_weight * gradient + constants.colour_weight * colour
    segmentation = F.cross_entropy(logits, labels.long(), ignore_index=IGNORE_INDEX, reduction="mean")
    total = SEGMENTATION_WEIGHT * segmentation + FUSION_WEIGHT * fusion
    return {"intensity": intensity, "gradient_x": gradient_x, "gradient_y": gradient_y, "gradient": gradient,
            "colour_cb": colour_cb, "colour_cr": colour_cr, "colour": colour, "fusion": fusion,
            "segmentation": segmentation, "total": total}


# ---------------------------------------------------------------------------------------------
# Deterministic weights (the project's scheme, SegFormerParityTests.swift DeterministicValues)
# ---------------------------------------------------------------------------------------------


# The project's scheme makes every 2-D+ tensor rank 2 when read as (rows, count/rows): with
# i = r*cols + c, sin(0.61 i + o) = sin(0.61 r cols + o) cos(0.61 c) + cos(0.61 r cols + o) sin(0.61 c).
# Through MRFS's chains of Linear layers without a nonlinearity (PC-Att) that leaves near-uniform
# attention and gradients that float32 cannot resolve (README "Weights"). The fixtures therefore add
# a quadratic phase term, which breaks the separability; quadratic_phase=0 is the project's scheme.
FIXTURE_QUADRATIC_PHASE = 0.001


def deterministic_values(name, shape, quadratic_phase=FIXTURE_QUADRATIC_PHASE):
    """float64 values for state-dict entry `name` of `shape`, computed with math.sin (libm, as
    Swift's Foundation sin on Linux), over the flat row-major index i:
    wave_i = sin(0.61 i + quadratic_phase i i + (sum of the name's unicode scalars mod 97)),
    evaluated left to right as ((0.61*i) + ((q*i)*i)) + offset in double precision;
    num_batches_tracked 0; running_var 1 + 0.5|wave|; 1-D '.weight' 1 + 0.1 wave; other <=1-D
    0.1 wave; else wave / sqrt(count / shape[0])."""
    offset = float(sum(ord(c) for c in name) % 97)
    count = math.prod(shape)
    rows = shape[0] if len(shape) > 0 else 1
    q = float(quadratic_phase)
    waves = [math.sin(0.61 * i + q * i * i + offset) for i in range(count)]
    if name.endswith("num_batches_tracked"):
        values = [0.0] * count
    elif name.endswith("running_var"):
        values = [1 + 0.5 * abs(w) for w in waves]
    elif len(shape) == 1 and name.endswith(".weight"):
        values = [1 + 0.1 * w for w in waves]
    elif len(shape) <= 1:
        values = [0.1 * w for w in waves]
    else:
        scale = math.sqrt(count / rows)
        values = [w / scale for w in waves]
    return torch.tensor(values, dtype=torch.float64).reshape(shape)


def deterministic_(model, quadratic_phase=FIXTURE_QUADRATIC_PHASE):
    """Fills every parameter and buffer from its state-dict name, rounded to the model's dtype."""
    with torch.no_grad():
        for name, t in model.state_dict().items():
            t.copy_(deterministic_values(name, tuple(t.shape), quadratic_phase).to(t.dtype))
    return model


def set_stochastic(model, enabled):
    """Turns drop path and Dropout2d off (enabled=False) for deterministic train-mode runs."""
    for m in model.modules():
        if isinstance(m, DropPath):
            if not hasattr(m, "configured_drop_prob"):
                m.configured_drop_prob = m.drop_prob
            m.drop_prob = m.configured_drop_prob if enabled else 0.0
        elif isinstance(m, nn.Dropout2d):
            if not hasattr(m, "configured_p"):
                m.configured_p = m.p
            m.p = m.configured_p if enabled else 0.0


def print_shapes(variant="minimal", batch=2, height=64, width=80):
    """Prints every module's output shape for one forward pass (eval mode)."""
    model = MRFS(CONFIGS[variant]).eval()
    def hook(name):
        def show(module, inputs, output):
            outs = output if isinstance(output, tuple) else (output,)
            shapes = ", ".join(str(tuple(o.shape)) for o in outs if torch.is_tensor(o))
            print(f"{name:45s} {type(module).__name__:18s} -> {shapes}")
        return show
    for name, module in model.named_modules():
        if name and name.count(".") <= 4 and not isinstance(module, (nn.ReLU, nn.GELU, nn.Sigmoid, nn.Identity, nn.Dropout2d)):
            module.register_forward_hook(hook(name))
    with torch.no_grad():
        model(torch.zeros(batch, 3, height, width), torch.zeros(batch, 3, height, width))


if __name__ == "__main__":
    import sys
    if "--shapes" in sys.argv:
        print_shapes()
        sys.exit(0)
    for variant in ("b4", "b0", "minimal"):
        for classes in (9,):
            model = MRFS(replace(CONFIGS[variant], classes=classes))
            parts = part_counts(model)
            print(f"{variant} classes={classes} total={parts['total']:,} state_dict_tensors={len(model.state_dict())}")
            print(f"  MiT per stream rgb={parts['mit_rgb']:,} ir={parts['mit_ir']:,}")
            print(f"  IGM-Att per stage {[f'{c:,}' for c in parts['igm']]} sum={sum(parts['igm']):,}")
            print(f"  PC-Att per stage {[f'{c:,}' for c in parts['pc']]} sum={sum(parts['pc']):,}")
            print(f"  decode_head={parts['decode_head']:,} aux_head={parts['aux_head']:,} "
                  f"heads={parts['decode_head'] + parts['aux_head']:,}")
    b0_256 = MRFS(replace(CONFIGS["b0"], decoder_embed=256))
    print(f"b0 with decoder embed 256 (docs 'larger variant') total={part_counts(b0_256)['total']:,}")
