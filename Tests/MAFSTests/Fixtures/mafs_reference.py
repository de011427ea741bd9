# MAFS reference transcription (plain PyTorch; no torchvision, timm, detectron2, kornia, einops, mmcv, CUDA).
#
# "MAFS: Masked Autoencoder for Infrared-Visible Image Fusion and Semantic Segmentation" (Wang, Zhang,
# Jia, Ma; IEEE TIP 2025), official repository Abraham-Einstein/MAFS (inference code only). This file is
# our own transcription of the official modules: the module tree, the order of operations and the
# state-dict key names are the official ones (checkpoints load with `torch.load(ckpt)['MTAN']`), every
# width is a constructor argument (see MAFSConfig), and the parts whose source files are missing from
# the release are written in their inferred form and marked INFERRED below. README.md in this folder is
# the specification the Swift plugin follows; verify_official.py checks this file against the official
# code; make_mafs_fixtures.py writes the parity fixtures.
#
#   python3 mafs_reference.py            # prints the parameter counts of both configurations
import math
from dataclasses import dataclass, field
from typing import List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F


# ----------------------------------------------------------------------------------------------------
# Configuration: every width of the network is a field here.
# ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class MAFSConfig:
    num_classes: int = 15                      # K (the official code hard-codes 15 = FMB)
    # Backbone: torchvision-style ResNet stages layer1..4 (official: ResNet-152, ImageNet weights).
    resnet_block: str = "bottleneck"           # "bottleneck" (expansion 4) or "basic" (expansion 1)
    resnet_layers: tuple = (3, 8, 36, 3)       # blocks per stage
    resnet_planes: tuple = (64, 128, 256, 512) # planes per stage; stage output = planes * expansion
    # Shallow feature extractor (SFM, class Feature_extract): SFEB1 -> sfm_channels // 2, SFEB2 -> sfm_channels.
    sfm_channels: int = 64
    # EAEF (DEM) gates between stages.
    eaef_mlp_ratio: int = 2                    # Feature_Pool: Linear(d, d*ratio), Linear(d*ratio, d)
    eaef_attention_reduction: int = 16         # Channel_Attention: Linear(2d, 2d//r), Linear(2d//r, 2d)
    eaef_gate: str = "per_sample"              # "per_sample" (intended) or "released" (torch.diagonal over dims 0,1)
    # CAM on the four deep levels.
    cam_channels: int = 64
    # AFM (SDFM): low_fuse2 (F2 -> f2, phf_channels), low_fuse1 (F1 -> f1, rec_channels).
    phf_channels: int = 32                     # f2 and rec_f1 (official 32)
    rec_channels: int = 32                     # f1, rec_f, DSRM and the INN decoder (official decoder_dim_rec 32)
    fusion_module_reduction: int = 4           # Fusion_module r
    sim_hidden: int = 32                       # SIM nhidden
    # Dense INN fusion decoder (FeatureExtract).
    inn_split: int = 16                        # channel_split_num (first part), rest = rec_channels - split
    inn_blocks: int = 5                        # InvBlocks; outputs of blocks 2.. (0-based) are collected
    inn_dense_width: int = 16                  # DenseBlock gc
    inn_clamp: float = 0.8
    # Segmentation decoder.
    seg_channels: int = 64                     # decoder_dim_seg: FPN, ASPP, InvPT, ARM chain, heads
    fpn_groups: int = 32                       # GroupNorm groups of the pixel decoder (detectron2 "GN")
    invpt_heads: tuple = (2, 2, 2)             # MDTA heads of the three InvPT stages
    leff_hidden: int = 64                      # LeFF hidden width (official LeFF() default 64 = dim)
    intermediate_head_outputs: int = 9         # unused head, hard-coded 9 in the official code

    @property
    def expansion(self) -> int:
        return 4 if self.resnet_block == "bottleneck" else 1

    @property
    def stage_channels(self) -> List[int]:
        return [p * self.expansion for p in self.resnet_planes]


OFFICIAL = MAFSConfig()
MINIMAL = MAFSConfig(
    num_classes=9, resnet_block="basic", resnet_layers=(1, 1, 1, 1), resnet_planes=(16, 32, 48, 64),
    sfm_channels=16, cam_channels=16, phf_channels=8, rec_channels=8, sim_hidden=8,
    inn_split=4, inn_blocks=3, inn_dense_width=4, seg_channels=16, fpn_groups=4, invpt_heads=(1, 1, 1),
    leff_hidden=16)
CONFIGURATIONS = {"official": OFFICIAL, "minimal": MINIMAL}


# ----------------------------------------------------------------------------------------------------
# Shallow feature extractor (MayNet_response_final.py: FReLU, Feature_extract)
# ----------------------------------------------------------------------------------------------------

class FReLU(nn.Module):
    """FReLU(x) = max(x, BN(dwconv3x3(x) + bias))."""

    def __init__(self, channels):
        super().__init__()
        self.conv_frelu = nn.Conv2d(channels, channels, 3, 1, 1, groups=channels)
        self.bn_frelu = nn.BatchNorm2d(channels)

    def forward(self, x):
        return torch.maximum(x, self.bn_frelu(self.conv_frelu(x)))


class Feature_extract(nn.Module):
    """SFM: SFEB1 (full resolution, out/2 ch) and SFEB2 (stride 2, out ch, no final norm)."""

    def __init__(self, in_channels, out_channels):
        super().__init__()
        half = out_channels // 2
        self.SFEB1 = nn.Sequential(
            nn.Conv2d(in_channels, half, 7, 1, 3), nn.BatchNorm2d(half), FReLU(half),
            nn.Conv2d(half, half, 3, 1, 1), nn.BatchNorm2d(half), FReLU(half))
        self.SFEB2 = nn.Sequential(
            nn.Conv2d(half, out_channels, 3, 2, 1), nn.BatchNorm2d(out_channels), FReLU(out_channels),
            nn.Conv2d(out_channels, out_channels, 3, 1, 1))

    def forward(self, x):
        high = self.SFEB1(x)
        return high, self.SFEB2(high)


# ----------------------------------------------------------------------------------------------------
# ResNet stages (torchvision layout and key names: conv1, bn1, conv2, bn2[, conv3, bn3], downsample.0/1)
# ----------------------------------------------------------------------------------------------------

class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """torchvision ResNet v1.5 bottleneck: the stride sits on the 3x3 convolution."""
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


def make_resnet_stage(block, inplanes, planes, blocks, stride):
    downsample = None
    if stride != 1 or inplanes != planes * block.expansion:
        downsample = nn.Sequential(nn.Conv2d(inplanes, planes * block.expansion, 1, stride, bias=False),
                                   nn.BatchNorm2d(planes * block.expansion))
    layers = [block(inplanes, planes, stride, downsample)]
    layers += [block(planes * block.expansion, planes) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


def init_resnet_like_torchvision(module):
    """torchvision's ResNet init (used when training from scratch, i.e. the minimal configuration)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


# ----------------------------------------------------------------------------------------------------
# EAEF (util/EAEF.py), the DEM gate between stages
# ----------------------------------------------------------------------------------------------------

class Feature_Pool(nn.Module):
    def __init__(self, dim, ratio=2):
        super().__init__()
        self.down = nn.Linear(dim, dim * ratio)
        self.act = nn.GELU()
        self.up = nn.Linear(dim * ratio, dim)

    def forward(self, x):                       # (B, C, H, W) -> (B, C): GAP, Linear, GELU, Linear
        return self.up(self.act(self.down(x.mean(dim=(2, 3)))))


class Channel_Attention(nn.Module):
    def __init__(self, dim, ratio=16):
        super().__init__()
        self.down = nn.Linear(dim, dim // ratio)
        self.act = nn.GELU()
        self.up = nn.Linear(dim // ratio, dim)

    def forward(self, x):                       # (B, C, H, W) -> (B, C, 1, 1): GMP, Linear, GELU, Linear
        y = self.up(self.act(self.down(x.amax(dim=(2, 3)))))
        return y[:, :, None, None]


class Spatial_Attention(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.conv1 = nn.Conv2d(dim, 1, 1, bias=True)

    def forward(self, x):
        return self.conv1(x)


class EAEF(nn.Module):
    """EAEF(d) on [R; T] (2d channels) -> [R' s_r + T' s_t; T' s_t].

    gate = "released": c = torch.diagonal(sigmoid(T_c r t^T)) over dims 0 and 1 of the (B, d, d) matrix,
    reshaped to (B, d) (what the released code and upstream EAEF compute; mixes samples of a batch and
    needs B <= d). gate = "per_sample": c[b, k] = sigmoid(T_c r[b, k] t[b, k]) (the intended diagonal).
    """

    def __init__(self, dim, mlp_ratio=2, attention_reduction=16, gate="per_sample"):
        super().__init__()
        if gate not in ("per_sample", "released"):
            raise ValueError(f"EAEF gate must be 'per_sample' or 'released', got {gate!r}")
        self.gate = gate
        self.mlp_pool = Feature_Pool(dim, mlp_ratio)
        self.dwconv = nn.Conv2d(dim * 2, dim * 2, 7, padding=3, groups=dim)
        self.T_c = nn.Parameter(torch.ones([]) * dim)
        self.cse = Channel_Attention(dim * 2, attention_reduction)
        self.sse_r = Spatial_Attention(dim)
        self.sse_t = Spatial_Attention(dim)

    def cross_gate(self, r, t):
        b, d = r.shape
        if self.gate == "released":
            if b > d:
                raise ValueError(f"EAEF released gate needs batch <= channels, got batch {b}, channels {d}")
            logits = self.T_c * r.view(b, d, 1) @ t.view(b, 1, d)
            return torch.diagonal(torch.sigmoid(logits)).reshape(b, d, 1, 1)
        return torch.sigmoid(self.T_c * r * t).view(b, d, 1, 1)

    def forward(self, x):
        d = x.shape[1] // 2
        rgb, thermal = x[:, :d], x[:, d:]
        r = self.mlp_pool(rgb)
        t = self.mlp_pool(thermal)
        r = r / r.norm(dim=1, keepdim=True)
        t = t / t.norm(dim=1, keepdim=True)
        cross = self.cross_gate(r, t)
        add = 1 - cross
        rgb_a, thermal_a = rgb * cross, thermal * cross
        fuse_gate = torch.sigmoid(self.cse(self.dwconv(torch.cat((rgb_a, thermal_a), dim=1))))
        new_rgb = rgb * add + rgb_a * fuse_gate[:, :d]
        new_thermal = thermal * add + thermal_a * fuse_gate[:, d:]
        attention = torch.softmax(torch.cat([self.sse_r(new_rgb), self.sse_t(new_thermal)], dim=1), dim=1)
        s_r, s_t = attention[:, 0:1], attention[:, 1:2]
        return torch.cat([new_rgb * s_r + new_thermal * s_t, new_thermal * s_t], dim=1)


# ----------------------------------------------------------------------------------------------------
# CAM (Fusion_block.py "CAM in LASNet"), channel attention CAM_Module INFERRED (util/dual_self_att.py missing)
# ----------------------------------------------------------------------------------------------------

class BasicConv2dLeaky(nn.Module):
    """Fusion_block.BasicConv2d: conv (no bias), BN, LeakyReLU(0.1)."""

    def __init__(self, in_planes, out_planes, kernel_size, stride=1, padding=0, dilation=1):
        super().__init__()
        self.conv = nn.Conv2d(in_planes, out_planes, kernel_size, stride, padding, dilation, bias=False)
        self.bn = nn.BatchNorm2d(out_planes)
        self.relu = nn.LeakyReLU(0.1)

    def forward(self, x):
        return self.relu(self.bn(self.conv(x)))


class SpatialAttention(nn.Module):
    """sigmoid(conv3x3 1->1 (no bias) of the channel max)."""

    def __init__(self, kernel_size=3):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x):
        return torch.sigmoid(self.conv1(x.amax(dim=1, keepdim=True)))


class CAM_Module(nn.Module):
    """INFERRED (DANet channel attention, as LASNet uses it): E = Y Y^T, A = softmax(max_j E - E),
    out = gamma (A Y) + Y, gamma initialised to 0."""

    def __init__(self, in_dim):
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        b, c, h, w = x.shape
        y = x.reshape(b, c, h * w)
        energy = y @ y.transpose(1, 2)
        energy = energy.amax(dim=-1, keepdim=True) - energy
        out = torch.softmax(energy, dim=-1) @ y
        return self.gamma * out.reshape(b, c, h, w) + x


class CAM(nn.Module):
    def __init__(self, in_channel, out_channel):
        super().__init__()
        self.conv2 = BasicConv2dLeaky(in_channel, out_channel, 3, padding=1)
        self.sa = SpatialAttention()
        self.cam = CAM_Module(out_channel)

    def forward(self, x, ir):
        summation = self.conv2(x + ir)
        return self.cam(summation * self.sa(x * ir))


# ----------------------------------------------------------------------------------------------------
# AFM: SDFM with Fusion_module (MayNet_response_final.py)
# ----------------------------------------------------------------------------------------------------

class BBasicConv2d(nn.Module):
    """conv (no bias), BN, ReLU as basicconv.{0,1}."""

    def __init__(self, in_planes, out_planes, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=False):
        super().__init__()
        self.basicconv = nn.Sequential(
            nn.Conv2d(in_planes, out_planes, kernel_size, stride, padding, dilation, groups, bias),
            nn.BatchNorm2d(out_planes), nn.ReLU(inplace=True))

    def forward(self, x):
        return self.basicconv(x)


class Fusion_module(nn.Module):
    def __init__(self, channels=64, r=4):
        super().__init__()
        inter = channels // r
        self.Recalibrate = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(2 * channels, 2 * inter, 1), nn.BatchNorm2d(2 * inter), nn.ReLU(inplace=True),
            nn.Conv2d(2 * inter, 2 * channels, 1), nn.BatchNorm2d(2 * channels), nn.Sigmoid())
        self.channel_agg = nn.Sequential(
            nn.Conv2d(2 * channels, channels, 1), nn.BatchNorm2d(channels), nn.ReLU(inplace=True))
        self.local_att = nn.Sequential(
            nn.Conv2d(channels, inter, 1), nn.BatchNorm2d(inter), nn.ReLU(inplace=True),
            nn.Conv2d(inter, channels, 1), nn.BatchNorm2d(channels))
        self.global_att = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, inter, 1), nn.BatchNorm2d(inter), nn.ReLU(inplace=True),
            nn.Conv2d(inter, channels, 1), nn.BatchNorm2d(channels))

    def forward(self, x1, x2):
        c = x1.shape[1]
        v = torch.cat([x1, x2], dim=1)
        v = self.Recalibrate(v) * v + v
        x1, x2 = v[:, :c], v[:, c:]
        z = self.channel_agg(v)
        w = torch.sigmoid(self.local_att(z) * self.global_att(z))
        return w * x1 + (1 - w) * x2


class SDFM(nn.Module):
    def __init__(self, in_C, out_C, reduction=4):
        super().__init__()
        self.RGBobj1_1 = BBasicConv2d(in_C, out_C, 3, 1, 1)
        self.RGBobj1_2 = BBasicConv2d(out_C, out_C, 3, 1, 1)
        self.RGBspr = BBasicConv2d(out_C, out_C, 3, 1, 1)
        self.Infobj1_1 = BBasicConv2d(in_C, out_C, 3, 1, 1)
        self.Infobj1_2 = BBasicConv2d(out_C, out_C, 3, 1, 1)
        self.Infspr = BBasicConv2d(out_C, out_C, 3, 1, 1)
        self.obj_fuse = Fusion_module(out_C, reduction)

    def forward(self, rgb, thermal):
        rgb_obj = self.RGBspr(self.RGBobj1_2(self.RGBobj1_1(rgb)))
        thermal_obj = self.Infspr(self.Infobj1_2(self.Infobj1_1(thermal)))
        return self.obj_fuse(rgb_obj, thermal_obj)


# ----------------------------------------------------------------------------------------------------
# PHF: SIM x2 + DSRM; unused-in-stage-II S2PM, S2M, RecDecoder (MayNet_response_final.py)
# ----------------------------------------------------------------------------------------------------

class SIM(nn.Module):
    """SPADE-like: BN(InstanceNorm(x) (1 + sigmoid(conv h))) + conv h, h = ReLU(conv(bilinear(s)))."""

    def __init__(self, norm_nc, label_nc, nhidden=64):
        super().__init__()
        self.mlp_shared = nn.Sequential(nn.Conv2d(label_nc, nhidden, 3, padding=1), nn.ReLU())
        self.mlp_gamma = nn.Sequential(nn.Conv2d(nhidden, norm_nc, 3, padding=1), nn.Sigmoid())
        self.mlp_beta = nn.Conv2d(nhidden, norm_nc, 3, padding=1)
        self.bn = nn.BatchNorm2d(norm_nc)

    def forward(self, x, segmap):
        normalized = F.instance_norm(x, eps=1e-5)
        segmap = F.interpolate(segmap, size=x.shape[2:], mode="bilinear", align_corners=False)
        actv = self.mlp_shared(segmap)
        return self.bn(normalized * (1 + self.mlp_gamma(actv))) + self.mlp_beta(actv)


class BasicConv2dBN(nn.Module):
    """MayNet BasicConv2d: conv (no bias) + BN (its ReLU is defined but never applied)."""

    def __init__(self, in_planes, out_planes, kernel_size, stride=1, padding=0, dilation=1):
        super().__init__()
        self.conv = nn.Conv2d(in_planes, out_planes, kernel_size, stride, padding, dilation, bias=False)
        self.bn = nn.BatchNorm2d(out_planes)

    def forward(self, x):
        return self.bn(self.conv(x))


def conv_bn_bn_relu(in_channels, out_channels):
    return nn.Sequential(BasicConv2dBN(in_channels, out_channels, 3, padding=1),
                         nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


class DSRM(nn.Module):
    """Four dense blocks, block k on cat(x, x1..x_{k-1}); each conv3x3, BN, BN, ReLU (double BN as released)."""

    def __init__(self, in_channel=32, out_channel=32):
        super().__init__()
        self.block1 = conv_bn_bn_relu(in_channel, out_channel)
        self.block2 = conv_bn_bn_relu(2 * in_channel, out_channel)
        self.block3 = conv_bn_bn_relu(3 * in_channel, out_channel)
        self.block4 = conv_bn_bn_relu(4 * in_channel, out_channel)

    def forward(self, x):
        x1 = self.block1(x)
        x2 = self.block2(torch.cat([x, x1], 1))
        x3 = self.block3(torch.cat([x, x1, x2], 1))
        return self.block4(torch.cat([x, x1, x2, x3], 1))


class S2PM(nn.Module):
    """Encoder.seg_decoder: instantiated (parameters counted) but never called."""

    def __init__(self, in_channel, out_channel):
        super().__init__()
        self.block1 = conv_bn_bn_relu(in_channel, out_channel)
        self.block2 = conv_bn_bn_relu(out_channel, out_channel)
        self.block3 = conv_bn_bn_relu(out_channel, out_channel)

    def forward(self, x):
        return self.block3(self.block2(self.block1(x)))


class S2M(nn.Module):
    def __init__(self, channels, r=1):
        super().__init__()
        inter = channels // r
        self.local_att = nn.Sequential(
            nn.Conv2d(channels, channels, 3, 1, 1, groups=channels), nn.BatchNorm2d(channels), nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, 1, 1, groups=channels), nn.BatchNorm2d(channels), nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, 1, 1, groups=channels), nn.BatchNorm2d(channels))
        self.global_att = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, inter, 1), nn.BatchNorm2d(inter), nn.ReLU(inplace=True),
            nn.Conv2d(inter, channels, 1), nn.BatchNorm2d(channels))
        self.conv_block = nn.BatchNorm2d(channels)

    def forward(self, x):
        mask = torch.sigmoid(self.local_att(x) * self.global_att(x))
        return self.conv_block(mask * x)


class RecDecoder(nn.Module):
    """Unused in the release; the optional second stage-I head (NetworkStage1(ir_head='rec_decoder'))."""

    def __init__(self, rec_channels, seg_channels, sim_hidden, out_channels=1):
        super().__init__()
        self.SIM3 = SIM(rec_channels, seg_channels, sim_hidden)
        self.seg_rec_decoder = DSRM(rec_channels, rec_channels)
        self.mask = S2M(rec_channels)
        self.conv_block = nn.Sequential(nn.Conv2d(rec_channels, out_channels, 3, padding=1), nn.Tanh())

    def forward(self, rec_f, seg_f):
        x = self.mask(self.seg_rec_decoder(self.SIM3(rec_f, seg_f)))
        return (self.conv_block(x) + 1) / 2


# ----------------------------------------------------------------------------------------------------
# ConvBNReLU variants (ReLU6) and the ARM family
# ----------------------------------------------------------------------------------------------------

def same_padding(kernel_size, dilation):
    return ((kernel_size - 1) * dilation + 1) // 2


class ConvBNReLU(nn.Sequential):
    """CAI_ARM / Fusion_block ConvBNReLU: keys conv, bn; conv without bias, ReLU6."""

    def __init__(self, in_planes, out_planes, kernel_size=3, stride=1, dilation=1, groups=1):
        super().__init__()
        self.add_module("conv", nn.Conv2d(in_planes, out_planes, kernel_size, stride,
                                          same_padding(kernel_size, dilation), dilation=dilation,
                                          groups=groups, bias=False))
        self.add_module("bn", nn.BatchNorm2d(out_planes))
        self.add_module("relu", nn.ReLU6(inplace=True))


class ConvBNReLUOp(nn.Module):
    """MayNet ConvBNReLU: keys conv, bnop; conv without bias, ReLU6."""

    def __init__(self, in_planes, out_planes, kernel_size=3, stride=1, dilation=1, groups=1):
        super().__init__()
        self.conv = nn.Conv2d(in_planes, out_planes, kernel_size, stride, same_padding(kernel_size, dilation),
                              dilation=dilation, groups=groups, bias=False)
        self.bnop = nn.BatchNorm2d(out_planes)
        self.reluop = nn.ReLU6(inplace=True)

    def forward(self, x):
        return self.reluop(self.bnop(self.conv(x)))


class DilatedFuse(nn.Module):
    """Fusion_block ARM / ARM2: ConvBNReLU 3x3 at dilations 1, 2, 4, 8, concatenated, ConvBNReLU 1x1."""

    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.dilation_conv1 = ConvBNReLU(in_channels, out_channels, dilation=1)
        self.dilation_conv2 = ConvBNReLU(in_channels, out_channels, dilation=2)
        self.dilation_conv3 = ConvBNReLU(in_channels, out_channels, dilation=4)
        self.dilation_conv4 = ConvBNReLU(in_channels, out_channels, dilation=8)
        self.conv1 = ConvBNReLU(4 * out_channels, out_channels, kernel_size=1)

    def forward(self, x):
        return self.conv1(torch.cat([self.dilation_conv1(x), self.dilation_conv2(x),
                                     self.dilation_conv3(x), self.dilation_conv4(x)], dim=1))


def upsample2x_align(x):
    """nn.UpsamplingBilinear2d(scale_factor=2): bilinear, align_corners=True."""
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)


class ARM_I(nn.Module):
    """CAI_ARM.ARM_I (arm3) and ARM_II (arm2, arm1; middle = high channels): inputs 2 and 3 are
    upsampled x2 (bilinear, align_corners=True) when their height differs from input 1's."""

    def __init__(self, low_channel, high_channel, middle):
        super().__init__()
        cat = low_channel + high_channel + middle
        self.dilation_conv1 = ConvBNReLU(cat, low_channel, dilation=1)
        self.dilation_conv2 = ConvBNReLU(cat, low_channel, dilation=2)
        self.dilation_conv3 = ConvBNReLU(cat, low_channel, dilation=4)
        self.conv1 = ConvBNReLU(low_channel * 3, low_channel, kernel_size=1)
        self.high_out = ConvBNReLU(middle, low_channel, kernel_size=1)

    def forward(self, low, previous_arm, high):
        if previous_arm.shape[2] != low.shape[2]:
            previous_arm = upsample2x_align(previous_arm)
            high = upsample2x_align(high)
        x = torch.cat((low, previous_arm, high), dim=1)
        low = self.conv1(torch.cat((self.dilation_conv1(x), self.dilation_conv2(x), self.dilation_conv3(x)), 1))
        high = self.high_out(high)
        out1 = low * high
        return out1, out1 + high


class ARM_II(ARM_I):
    def __init__(self, low_channel, high_channel):
        super().__init__(low_channel, high_channel, high_channel)


# ----------------------------------------------------------------------------------------------------
# Dense INN fusion decoder (INN_block.py, util/modules.py InvertibleConv1x1 with LU_decomposed=True)
# ----------------------------------------------------------------------------------------------------

class UNetConvBlock(nn.Module):
    """conv3x3 (bias) -> InstanceNorm(affine) on the first half of the channels -> LReLU(0.1)
    -> conv3x3 (bias) -> LReLU(0.1) -> + conv1x1 (bias) of the input."""

    def __init__(self, in_size, out_size, relu_slope=0.1):
        super().__init__()
        self.identity = nn.Conv2d(in_size, out_size, 1, 1, 0)
        self.conv_1 = nn.Conv2d(in_size, out_size, 3, padding=1, bias=True)
        self.conv_2 = nn.Conv2d(out_size, out_size, 3, padding=1, bias=True)
        self.norm = nn.InstanceNorm2d(out_size // 2, affine=True)
        self.relu_slope = relu_slope

    def forward(self, x):
        out = self.conv_1(x)
        out_1, out_2 = torch.chunk(out, 2, dim=1)
        out = F.leaky_relu(torch.cat([self.norm(out_1), out_2], dim=1), self.relu_slope)
        out = F.leaky_relu(self.conv_2(out), self.relu_slope)
        return out + self.identity(x)


class DenseBlock(nn.Module):
    """Two UNetConvBlocks, each followed by LeakyReLU(0.2) (the dense third conv is commented out upstream)."""

    def __init__(self, channel_in, channel_out, gc=16):
        super().__init__()
        self.conv1 = UNetConvBlock(channel_in, gc)
        self.conv2 = UNetConvBlock(gc, channel_out)

    def forward(self, x):
        return F.leaky_relu(self.conv2(F.leaky_relu(self.conv1(x), 0.2)), 0.2)


class InvertibleConv1x1(nn.Module):
    """Glow LU 1x1 convolution: W = P (L + I) (U + diag(sign_s exp(log_s))), L strictly lower and U strictly
    upper (masked), P and sign_s buffers. Official init: W0 = QR(randn) -> torch.lu; here LU of a random
    orthogonal matrix as well."""

    def __init__(self, num_channels):
        super().__init__()
        w_init = torch.linalg.qr(torch.randn(num_channels, num_channels))[0]
        p, lower, upper = torch.linalg.lu(w_init)
        s = torch.diag(upper)
        self.register_buffer("p", p)
        self.register_buffer("sign_s", torch.sign(s))
        self.lower = nn.Parameter(lower)
        self.log_s = nn.Parameter(torch.log(torch.abs(s)))
        self.upper = nn.Parameter(torch.triu(upper, 1))

    def factors(self):
        c = self.p.shape[0]
        l_mask = torch.tril(torch.ones(c, c, dtype=self.lower.dtype, device=self.lower.device), -1)
        lower = self.lower * l_mask + torch.eye(c, dtype=self.lower.dtype, device=self.lower.device)
        u = self.upper * l_mask.transpose(0, 1) + torch.diag(self.sign_s * torch.exp(self.log_s))
        return lower, u

    def weight(self):
        lower, u = self.factors()
        return torch.matmul(self.p, torch.matmul(lower, u))

    def inverse_weight(self):
        lower, u = self.factors()
        return torch.matmul(torch.inverse(u), torch.matmul(torch.inverse(lower), torch.inverse(self.p)))

    def forward(self, x):
        c = x.shape[1]
        return F.conv2d(x, self.weight().view(c, c, 1, 1))

    def inverse(self, z):
        c = z.shape[1]
        return F.conv2d(z, self.inverse_weight().view(c, c, 1, 1))


class InvBlock(nn.Module):
    """x = W x; x1, x2 = x[:split], x[split:]; y1 = x1 + F(x2); s = clamp (2 sigmoid(H(y1)) - 1);
    y2 = x2 exp(s) + G(y1); out = [y1; y2]. inverse() undoes it (not in the release; needed for the
    invertibility check)."""

    def __init__(self, channel_num, channel_split_num, gc=16, clamp=0.8):
        super().__init__()
        self.split_len1 = channel_split_num
        self.split_len2 = channel_num - channel_split_num
        self.clamp = clamp
        self.F = DenseBlock(self.split_len2, self.split_len1, gc)
        self.G = DenseBlock(self.split_len1, self.split_len2, gc)
        self.H = DenseBlock(self.split_len1, self.split_len2, gc)
        self.invconv = InvertibleConv1x1(channel_num)

    def scale(self, y1):
        return self.clamp * (torch.sigmoid(self.H(y1)) * 2 - 1)

    def forward(self, x):
        x = self.invconv(x)
        x1, x2 = x[:, :self.split_len1], x[:, self.split_len1:]
        y1 = x1 + self.F(x2)
        y2 = x2 * torch.exp(self.scale(y1)) + self.G(y1)
        return torch.cat((y1, y2), 1)

    def inverse(self, y):
        y1, y2 = y[:, :self.split_len1], y[:, self.split_len1:]
        x2 = (y2 - self.G(y1)) * torch.exp(-self.scale(y1))
        x1 = y1 - self.F(x2)
        return self.invconv.inverse(torch.cat((x1, x2), 1))


class FeatureExtract(nn.Module):
    """Dense INN: block outputs with index >= 2 (0-based) are concatenated after the input and fused by a
    1x1 conv ((blocks - 1) * C -> C)."""

    def __init__(self, channel_in, channel_split_num, block_num=5, gc=16, clamp=0.8):
        super().__init__()
        self.operations = nn.ModuleList([InvBlock(channel_in, channel_split_num, gc, clamp) for _ in range(block_num)])
        self.fuse = nn.Conv2d((block_num - 1) * channel_in, channel_in, 1, 1, 0)
        self.initialize()

    def initialize(self):
        """Official: every Conv2d inside (the DenseBlocks too, overriding their 0.1-scaled init) gets
        xavier_normal_ with gain 1 and zero bias."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_normal_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x):
        out, collected = x, [x]
        for i, op in enumerate(self.operations):
            out = op(out)
            if i > 1:
                collected.append(out)
        return self.fuse(torch.cat(collected, 1))


class FusionDecoder(nn.Module):
    def __init__(self, channels=32, split=16, blocks=5, gc=16, clamp=0.8, out_channels=1):
        super().__init__()
        self.fuse_decoder = FeatureExtract(channels, split, blocks, gc, clamp)
        self.conv_block = nn.Sequential(nn.Conv2d(channels, out_channels, 3, padding=1), nn.Tanh())

    def forward(self, rec_f):
        return (self.conv_block(self.fuse_decoder(rec_f)) + 1) / 2


# ----------------------------------------------------------------------------------------------------
# Encoder (MayNet_response_final.Encoder)
# ----------------------------------------------------------------------------------------------------

class Encoder(nn.Module):
    def __init__(self, cfg: MAFSConfig):
        super().__init__()
        block = Bottleneck if cfg.resnet_block == "bottleneck" else BasicBlock
        stage = cfg.stage_channels
        for name, in_ch in (("thermal", 1), ("rgb", 3)):
            setattr(self, f"encoder_{name}_conv1", Feature_extract(in_ch, cfg.sfm_channels))
            setattr(self, f"encoder_{name}_bn1", nn.BatchNorm2d(cfg.sfm_channels))
            setattr(self, f"encoder_{name}_relu", nn.ReLU(inplace=True))
            setattr(self, f"encoder_{name}_maxpool", nn.MaxPool2d(3, 2, 1))
            inplanes = cfg.sfm_channels
            for k in range(4):
                layer = make_resnet_stage(block, inplanes, cfg.resnet_planes[k], cfg.resnet_layers[k], 1 if k == 0 else 2)
                setattr(self, f"encoder_{name}_layer{k + 3}", layer)
                inplanes = stage[k]
        seg = cfg.seg_channels
        # Unused in stage II (parameters counted; computed only when seg_f is requested).
        self.SFEB2 = nn.Sequential(nn.Conv2d(cfg.phf_channels, seg, 3, 2, 1), nn.BatchNorm2d(seg), FReLU(seg),
                                   nn.Conv2d(seg, seg, 3, 1, 1))
        self.high_fuse6 = CAM(stage[3], cfg.cam_channels)
        self.high_fuse5 = CAM(stage[2], cfg.cam_channels)
        self.high_fuse4 = CAM(stage[1], cfg.cam_channels)
        self.low_fuse3 = CAM(stage[0], cfg.cam_channels)
        eaef = dict(mlp_ratio=cfg.eaef_mlp_ratio, attention_reduction=cfg.eaef_attention_reduction, gate=cfg.eaef_gate)
        self.EAEF5 = EAEF(stage[2], **eaef)
        self.EAEF4 = EAEF(stage[1], **eaef)
        self.EAEF3 = EAEF(stage[0], **eaef)
        self.EAEF2 = EAEF(cfg.sfm_channels, **eaef)
        self.low_fuse2 = SDFM(cfg.sfm_channels, cfg.phf_channels, cfg.fusion_module_reduction)
        self.low_fuse1 = SDFM(cfg.sfm_channels // 2, cfg.rec_channels, cfg.fusion_module_reduction)
        self.SIM1 = SIM(cfg.phf_channels, cfg.cam_channels, cfg.sim_hidden)
        self.SIM2 = SIM(cfg.rec_channels, cfg.phf_channels, cfg.sim_hidden)
        self.to_fused_seg = nn.ModuleList([nn.Sequential(nn.Conv2d(cfg.cam_channels, seg, 3, 1, 1))
                                           for _ in range(4)])
        self.SIM3 = SIM(cfg.phf_channels, seg, cfg.sim_hidden)
        self.seg_decoder = S2PM(4 * seg, seg)
        self.rec_decoder = DSRM(cfg.rec_channels, cfg.rec_channels)
        self.ARM = DilatedFuse(5 * seg, seg)
        self.cfg = cfg

    def stream(self, name, x):
        get = lambda part: getattr(self, f"encoder_{name}_{part}")
        high, low = get("conv1")(x)
        return high, get("relu")(get("bn1")(low))

    def forward(self, rgb, thermal, compute_seg_f=False):
        """-> rec_f (after DSRM), rec_f1, seg_f (encoder ARM output, None unless requested), [f3, f4, f5, f6]."""
        thermal = thermal[:, :1]
        rgb1, rgb2 = self.stream("rgb", rgb)
        th1, th2 = self.stream("thermal", thermal)

        def gate(eaef, r, t):
            out = eaef(torch.cat([r, t], 1))
            return out[:, :r.shape[1]], out[:, r.shape[1]:]

        rgb2, th2 = gate(self.EAEF2, rgb2, th2)
        rgb3 = self.encoder_rgb_layer3(self.encoder_rgb_maxpool(rgb2))
        th3 = self.encoder_thermal_layer3(self.encoder_thermal_maxpool(th2))
        rgb3, th3 = gate(self.EAEF3, rgb3, th3)
        rgb4, th4 = gate(self.EAEF4, self.encoder_rgb_layer4(rgb3), self.encoder_thermal_layer4(th3))
        rgb5, th5 = gate(self.EAEF5, self.encoder_rgb_layer5(rgb4), self.encoder_thermal_layer5(th4))
        rgb6, th6 = self.encoder_rgb_layer6(rgb5), self.encoder_thermal_layer6(th5)

        f6 = self.high_fuse6(rgb6, th6)
        f5 = self.high_fuse5(rgb5, th5)
        f4 = self.high_fuse4(rgb4, th4)
        f3 = self.low_fuse3(rgb3, th3)
        f2 = self.low_fuse2(rgb2, th2)
        f1 = self.low_fuse1(rgb1, th1)

        rec_f1 = self.SIM1(f2, f3)
        rec_f = self.rec_decoder(self.SIM2(f1, rec_f1))
        seg_f = None
        if compute_seg_f:
            maps = [F.interpolate(conv(f), scale_factor=2 ** i, mode="bilinear", align_corners=True) if i else conv(f)
                    for i, (f, conv) in enumerate(zip([f3, f4, f5, f6], self.to_fused_seg))]
            seg_f = self.ARM(torch.cat([self.SFEB2(rec_f1)] + maps, 1))
        return rec_f, rec_f1, seg_f, [f3, f4, f5, f6]


# ----------------------------------------------------------------------------------------------------
# Pixel decoder (pixel_decoder.BasePixelDecoder, detectron2 Conv2d + GroupNorm)
# ----------------------------------------------------------------------------------------------------

class NormConv2d(nn.Conv2d):
    """detectron2 layers.Conv2d: convolution, then .norm, then the activation."""

    def __init__(self, *args, norm=None, activation=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.norm = norm
        self.activation = activation

    def forward(self, x):
        x = super().forward(x)
        if self.norm is not None:
            x = self.norm(x)
        return x if self.activation is None else self.activation(x)


def c2_xavier_fill(module):
    nn.init.kaiming_uniform_(module.weight, a=1)
    if module.bias is not None:
        nn.init.zeros_(module.bias)


class BasePixelDecoder(nn.Module):
    """FPN over [f3, f4, f5, f6] (res2..res5): layer_4 = conv3x3+GN+ReLU(f6); for f5, f4, f3:
    y = adapter_k(f) + nearest(y); y = layer_k(y). Returns [P0 (f6 size), P1, P2, P3 (f3 size)]."""

    def __init__(self, in_channels, conv_dim, mask_dim, groups):
        super().__init__()
        for idx in range(4):
            if idx == 3:
                self.add_module("layer_4", NormConv2d(in_channels, conv_dim, 3, 1, 1, bias=False,
                                                      norm=nn.GroupNorm(groups, conv_dim), activation=F.relu))
            else:
                self.add_module(f"adapter_{idx + 1}", NormConv2d(in_channels, conv_dim, 1, bias=False,
                                                                 norm=nn.GroupNorm(groups, conv_dim)))
                self.add_module(f"layer_{idx + 1}", NormConv2d(conv_dim, conv_dim, 3, 1, 1, bias=False,
                                                               norm=nn.GroupNorm(groups, conv_dim), activation=F.relu))
        self.mask_features = NormConv2d(conv_dim, mask_dim, 3, 1, 1)   # unused by MAFS
        for m in self.children():
            c2_xavier_fill(m)

    def forward(self, features):
        f3, f4, f5, f6 = features
        y = self.layer_4(f6)
        outs = [y]
        for f, k in ((f5, 3), (f4, 2), (f3, 1)):
            lateral = getattr(self, f"adapter_{k}")(f)
            y = getattr(self, f"layer_{k}")(lateral + F.interpolate(y, size=lateral.shape[-2:], mode="nearest"))
            outs.append(y)
        return outs


# ----------------------------------------------------------------------------------------------------
# ASPP (Fusion_block.py "GIM in EGFNet")
# ----------------------------------------------------------------------------------------------------

class ASPP(nn.Module):
    def __init__(self, outchannel):
        super().__init__()
        c = outchannel
        self.conv1 = nn.Conv2d(c, c, 3, dilation=1, padding=1)
        self.conv2 = nn.Conv2d(c, c, 3, dilation=2, padding=2)
        self.conv3 = nn.Conv2d(c, c, 3, dilation=3, padding=3)
        self.conv4 = nn.Conv2d(c, c, 3, dilation=4, padding=4)
        self.conv0 = nn.Conv2d(c, c, 1)
        self.conv = nn.Conv2d(5 * c, c, 1)
        self.rconv = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU())

    def forward(self, x):
        out = torch.cat((self.conv0(x), self.conv1(x), self.conv2(x), self.conv3(x), self.conv4(x)), 1)
        return self.rconv(self.conv(out) + x)


# ----------------------------------------------------------------------------------------------------
# InvPT (invpt_AST.py) with MDTA, LeFF and LayerNorm INFERRED from Fusion_block.py (util/AST.py missing)
# ----------------------------------------------------------------------------------------------------

class WithBias_LayerNorm(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x):                        # x: (..., C)
        mu = x.mean(-1, keepdim=True)
        var = x.var(-1, keepdim=True, unbiased=False)
        return (x - mu) / torch.sqrt(var + 1e-5) * self.weight + self.bias


class LayerNorm2d(nn.Module):
    """Restormer LayerNorm ('WithBias', eps 1e-5) over the channels of every pixel; key .body."""

    def __init__(self, dim):
        super().__init__()
        self.body = WithBias_LayerNorm(dim)

    def forward(self, x):
        return self.body(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class Attention(nn.Module):
    """INFERRED MDTA (Restormer): qkv 1x1 + depthwise 3x3, q and k L2-normalised over the pixels,
    attention (C/h x C/h per head) = softmax(q k^T * temperature), out = project_out(attn v).
    Channel c of q, k, v belongs to head c // (C/h)."""

    def __init__(self, dim, num_heads, bias=False):
        super().__init__()
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.qkv = nn.Conv2d(dim, dim * 3, 1, bias=bias)
        self.qkv_dwconv = nn.Conv2d(dim * 3, dim * 3, 3, 1, 1, groups=dim * 3, bias=bias)
        self.project_out = nn.Conv2d(dim, dim, 1, bias=bias)

    def forward(self, x):
        b, c, h, w = x.shape
        q, k, v = self.qkv_dwconv(self.qkv(x)).chunk(3, dim=1)
        split = lambda t: t.reshape(b, self.num_heads, c // self.num_heads, h * w)
        q, k, v = split(q), split(k), split(v)
        q = F.normalize(q, dim=-1)
        k = F.normalize(k, dim=-1)
        attn = torch.softmax((q @ k.transpose(-2, -1)) * self.temperature, dim=-1)
        return self.project_out((attn @ v).reshape(b, c, h, w))


class LeFF(nn.Module):
    """INFERRED LeFF (Fusion_block.py / SMFNet): GELU(1x1) -> GELU(dw3x3) -> GELU(1x1), + input.
    The transformer block adds the input again (x + LeFF(LN x) = 2x + ... in effect)."""

    def __init__(self, dim=64, hidden_dim=64):
        super().__init__()
        self.linear1 = nn.Sequential(nn.Conv2d(dim, hidden_dim, 1), nn.GELU())
        self.dwconv = nn.Sequential(nn.Conv2d(hidden_dim, hidden_dim, 3, 1, 1, groups=hidden_dim), nn.GELU())
        self.linear2 = nn.Sequential(nn.Conv2d(hidden_dim, dim, 1), nn.GELU())

    def forward(self, x):
        return self.linear2(self.dwconv(self.linear1(x))) + x


class InvPTBlock(nn.Module):
    def __init__(self, dim, num_heads, leff_hidden):
        super().__init__()
        self.norm1 = LayerNorm2d(dim)
        self.attn = Attention(dim, num_heads, bias=False)
        self.norm2 = LayerNorm2d(dim)
        self.ffn = LeFF(dim, leff_hidden)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


class UpEmbed(nn.Module):
    """bilinear x2 (align_corners=False), 2 x [conv3x3 dilation 2 padding 2 (no bias), BN, ReLU]."""

    def __init__(self, in_chans, embed_dim, patch_size=3, padding=2):
        super().__init__()
        self.proj = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
            nn.Conv2d(in_chans, embed_dim, patch_size, 1, padding, dilation=padding, bias=False),
            nn.BatchNorm2d(embed_dim), nn.ReLU(inplace=True),
            nn.Conv2d(embed_dim, embed_dim, patch_size, 1, padding, dilation=padding, bias=False),
            nn.BatchNorm2d(embed_dim), nn.ReLU(inplace=True))

    def forward(self, x):
        return self.proj(x)


class InvPTStage(nn.Module):
    def __init__(self, stage_idx, dim, num_heads, leff_hidden):
        super().__init__()
        self.stage_idx = stage_idx
        self.patch_embed = None if stage_idx == 0 else nn.ModuleList([UpEmbed(dim, dim)])
        self.blocks = nn.ModuleList([InvPTBlock(dim, num_heads, leff_hidden)])

    def forward(self, x, back_fea):
        if self.patch_embed is not None:
            x = self.patch_embed[0](x) + back_fea[self.stage_idx + 1]
        for blk in self.blocks:
            x = blk(x)
        return x


class InvPT(nn.Module):
    """Stage 0 on f5 (no embedding); stage i >= 1: UpEmbed(previous) + ASPP(P_{i+1}); after every stage
    nn.LayerNorm over channels (norm_mts), bilinear (align_corners=False) to 8x f5's size, summed;
    mt_proj = conv3x3 (bias) + BN + ReLU."""

    def __init__(self, dim, heads: Sequence[int], leff_hidden):
        super().__init__()
        self.num_stages = len(heads)
        self.norm_mts = nn.ModuleList([nn.LayerNorm(dim) for _ in heads])
        self.redu_chan = nn.Conv2d(dim, dim, 1)              # unused (reassigned in the official loop)
        self.invpt_stages = nn.ModuleList([InvPTStage(i, dim, h, leff_hidden) for i, h in enumerate(heads)])
        self.norm_mt = nn.LayerNorm(dim)                     # unused
        self.mt_proj = nn.Sequential(nn.Conv2d(dim, dim, 3, padding=1), nn.BatchNorm2d(dim), nn.ReLU(True))
        nn.init.trunc_normal_(self.mt_proj[0].weight, std=0.02)

    def forward(self, x, back_fea):
        h, w = x.shape[2:]
        th, tw = h * 2 ** (self.num_stages - 1) * 2, w * 2 ** (self.num_stages - 1) * 2
        total = 0
        for i in range(self.num_stages):
            x = self.invpt_stages[i](x, back_fea)
            x = self.norm_mts[i](x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
            total = total + F.interpolate(x, size=(th, tw), mode="bilinear", align_corners=False)
        return self.mt_proj(total)


# ----------------------------------------------------------------------------------------------------
# Segmentation decoder (MayNet_response_final.SegmentationDecoder, SegHead)
# ----------------------------------------------------------------------------------------------------

class ConvBlock(nn.Module):
    """conv3x3 (no bias), BN (SyncBatchNorm in the release), ReLU."""

    def __init__(self, inplanes, planes):
        super().__init__()
        self.conv = nn.Conv2d(inplanes, planes, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.relu(self.bn1(self.conv(x)))


class SegHead(nn.Module):
    """w = softmax(binary_conv2(binary_conv1 x))[1] (computed as exp / sum exp, as released);
    logits = up2x(semantic_conv2(semantic_conv1(x w))). boundary_* are instantiated but unused."""

    def __init__(self, feature=64, n_classes=15):
        super().__init__()
        self.binary_conv1 = ConvBNReLUOp(feature, feature // 4, kernel_size=1)
        self.binary_conv2 = nn.Conv2d(feature // 4, 2, 3, padding=1)
        self.semantic_conv1 = ConvBNReLUOp(feature, feature, kernel_size=1)
        self.semantic_conv2 = nn.Conv2d(feature, n_classes, 3, padding=1)
        self.boundary_conv1 = ConvBNReLUOp(feature * 2, feature, kernel_size=1)
        self.boundary_conv2 = nn.Conv2d(feature, 2, 3, padding=1)
        self.boundary_conv = nn.Sequential(nn.Conv2d(feature * 2, feature, 1), nn.BatchNorm2d(feature),
                                           nn.ReLU6(inplace=True), nn.Conv2d(feature, 2, 3, padding=1))

    def forward(self, feat):
        e = torch.exp(self.binary_conv2(self.binary_conv1(feat)))
        weight = e[:, 1:2] / e.sum(dim=1, keepdim=True)
        return upsample2x_align(self.semantic_conv2(self.semantic_conv1(feat * weight)))


class AuxClassifier(nn.Sequential):
    """classifier_Z*: ConvBNReLU 3x3 (bnop), bilinear up (align_corners=True), conv1x1 (bias), bilinear up."""

    def __init__(self, channels, out_channels, first_up, second_up):
        super().__init__()
        self.add_module("0", ConvBNReLUOp(channels, channels, kernel_size=3))
        self.add_module("1", nn.UpsamplingBilinear2d(scale_factor=first_up))
        self.add_module("2", nn.Conv2d(channels, out_channels, 1))
        self.add_module("3", nn.UpsamplingBilinear2d(scale_factor=second_up))


class SegmentationDecoder(nn.Module):
    def __init__(self, cfg: MAFSConfig):
        super().__init__()
        seg, K = cfg.seg_channels, cfg.num_classes
        self.pixel_decoder = BasePixelDecoder(cfg.cam_channels, seg, seg, cfg.fpn_groups)
        self.invpt = InvPT(seg, cfg.invpt_heads, cfg.leff_hidden)
        self.preliminary_decoder = nn.Sequential(ConvBlock(seg, seg), ConvBlock(seg, seg))
        self.intermediate_head = nn.Conv2d(seg, cfg.intermediate_head_outputs, 1)   # unused
        self.seg_head = SegHead(seg, K)
        self.ARM = DilatedFuse(cfg.phf_channels + seg, seg)                           # Fusion_block.ARM2
        self.arm3 = ARM_I(seg, seg, seg)
        self.arm2 = ARM_II(seg, seg)
        self.arm1 = ARM_II(seg, seg)
        self.classifier_Z1 = AuxClassifier(seg, K, 2, 2)
        self.classifier_Z2 = AuxClassifier(seg, K, 4, 2)
        self.classifier_Z3 = AuxClassifier(seg, K, 4, 4)
        self.classifier_Z4 = AuxClassifier(seg, 2, 2, 2)
        self.classifier_Z5 = AuxClassifier(seg, 2, 4, 2)
        self.classifier_Z6 = AuxClassifier(seg, 2, 4, 4)
        self.aspp = ASPP(seg)

    def forward(self, rec_f1, x):
        """x = [f3, f4, f5, f6] -> (logits, out1..out6)."""
        P = self.pixel_decoder(x)
        out1, out2 = self.arm3(x[2], x[3], P[0])
        out3, out4 = self.arm2(x[1], out1, out2)
        out5, out6 = self.arm1(x[0], out3, out4)
        aux = (self.classifier_Z6(out1), self.classifier_Z3(out2), self.classifier_Z5(out3),
               self.classifier_Z2(out4), self.classifier_Z4(out5), self.classifier_Z1(out6))
        # The shared ASPP runs on all four levels in order (P0, P1 are unused afterwards but, in training,
        # still update the shared BatchNorm's running statistics, four updates per forward).
        A = [self.aspp(p) for p in P]
        feature = self.preliminary_decoder(self.invpt(x[2], A))
        semantic = self.seg_head(self.ARM(torch.cat([rec_f1, feature], 1)))
        return (semantic,) + aux


# ----------------------------------------------------------------------------------------------------
# Networks
# ----------------------------------------------------------------------------------------------------

def fusion_decoder(cfg: MAFSConfig):
    return FusionDecoder(cfg.rec_channels, cfg.inn_split, cfg.inn_blocks, cfg.inn_dense_width, cfg.inn_clamp)


class NetworkStage2(nn.Module):
    """forward(vi (B,3,H,W), ir (B,>=1,H,W)) -> (logits, out1, ..., out6, fused Y), H, W multiples of 32."""

    def __init__(self, cfg: MAFSConfig = OFFICIAL):
        super().__init__()
        self.encoder = Encoder(cfg)
        self.fuse_decoder = fusion_decoder(cfg)
        self.seg_decoder = SegmentationDecoder(cfg)

    def forward(self, vi, ir):
        rec_f, rec_f1, _, features = self.encoder(vi, ir[:, :1])
        outputs = self.seg_decoder(rec_f1, features)
        return outputs + (self.fuse_decoder(rec_f),)


class NetworkStage1(nn.Module):
    """Masked reconstruction with two heads on the PHF features (the release decodes both images with one
    shared FusionDecoder, giving identical outputs; not reproduced).
    ir_head = "inn": a second FusionDecoder `fuse_decoder_ir` (default; same De_rec(F^f) form as Alg. 1).
    ir_head = "rec_decoder": the unused RecDecoder `rec_decoder_ir` on (rec_f, encoder seg_f)."""

    def __init__(self, cfg: MAFSConfig = OFFICIAL, ir_head="inn"):
        super().__init__()
        if ir_head not in ("inn", "rec_decoder"):
            raise ValueError(f"ir_head must be 'inn' or 'rec_decoder', got {ir_head!r}")
        self.ir_head = ir_head
        self.encoder = Encoder(cfg)
        self.fuse_decoder = fusion_decoder(cfg)
        if ir_head == "inn":
            self.fuse_decoder_ir = fusion_decoder(cfg)
        else:
            self.rec_decoder_ir = RecDecoder(cfg.rec_channels, cfg.seg_channels, cfg.sim_hidden)

    def forward(self, vi, ir):
        rec_f, _, seg_f, _ = self.encoder(vi, ir[:, :1], compute_seg_f=self.ir_head == "rec_decoder")
        rec_vi = self.fuse_decoder(rec_f)
        rec_ir = self.fuse_decoder_ir(rec_f) if self.ir_head == "inn" else self.rec_decoder_ir(rec_f, seg_f)
        return rec_vi, rec_ir


def init_like_official(net: nn.Module):
    """The official initialisation where it differs from PyTorch's defaults (ResNet stages: torchvision's
    init, i.e. training from scratch; the official configuration loads ImageNet weights instead)."""
    for name, m in net.named_modules():
        if name.endswith(tuple(f"_layer{k}" for k in range(3, 7))):
            init_resnet_like_torchvision(m)


# ----------------------------------------------------------------------------------------------------
# Colour, stage-I masks, losses, task weighting
# ----------------------------------------------------------------------------------------------------

def rgb_to_ycbcr(rgb):
    """utils.RGB2YCrCb: Y = .299R + .587G + .114B, Cr = .713(R - Y) + .5, Cb = .564(B - Y) + .5, clamped to [0, 1]."""
    r, g, b = rgb[:, 0:1], rgb[:, 1:2], rgb[:, 2:3]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cr = (r - y) * 0.713 + 0.5
    cb = (b - y) * 0.564 + 0.5
    return y.clamp(0, 1), cb.clamp(0, 1), cr.clamp(0, 1)


def ycbcr_to_rgb(y, cb, cr):
    """utils.YCbCr2RGB: R = Y + 1.403(Cr - .5), G = Y - .714(Cr - .5) - .344(Cb - .5), B = Y + 1.773(Cb - .5), clamped."""
    r = y + 1.403 * (cr - 0.5)
    g = y - 0.714 * (cr - 0.5) - 0.344 * (cb - 0.5)
    b = y + 1.773 * (cb - 0.5)
    return torch.cat([r, g, b], 1).clamp(0, 1)


MASK_DRAW_SHAPES = {"p": lambda B, H, W, G: (B,), "cells": lambda B, H, W, G: (B, 6, G, G),
                    "swap": lambda B, H, W, G: (B,), "noise_vi": lambda B, H, W, G: (B, 3, H, W),
                    "noise_ir": lambda B, H, W, G: (B, 1, H, W)}


def stage1_masks(draws, vi, ir, grid=8):
    """Create_dataset2.MSRSData's masks as a pure function of uniform [0, 1) draws:
    p = 0.1 + draws.p / 1.12 per sample; a cell bit is 1 (kept) when its draw < p;
    A = cells[0] * cells[1], B = cells[2] * cells[3], C = cells[4] * cells[5];
    where A = B = 0: A += C, B += 1 - C (every cell visible in at least one modality);
    (m_vi, m_ir) = (A, B) if draws.swap < 0.5 else (B, A); cells nearest-upsampled to H x W;
    inputs I m + noise (1 - m). Returns keep masks m_vi, m_ir (B,1,H,W) and the masked vi, ir."""
    b, _, h, w = vi.shape
    if h % grid or w % grid:
        raise ValueError(f"stage-I masks need H, W divisible by the grid {grid}, got {h}x{w}")
    p = (0.1 + draws["p"] / 1.12).view(b, 1, 1, 1)
    bits = (draws["cells"] < p).to(vi.dtype)
    A, Bm, C = bits[:, 0] * bits[:, 1], bits[:, 2] * bits[:, 3], bits[:, 4] * bits[:, 5]
    neither = ((A == 0) & (Bm == 0)).to(vi.dtype)
    A, Bm = A + C * neither, Bm + (1 - C) * neither
    keep_first = (draws["swap"] < 0.5).view(b, 1, 1)
    m_vi = torch.where(keep_first, A, Bm)[:, None]
    m_ir = torch.where(keep_first, Bm, A)[:, None]
    up = lambda m: m.repeat_interleave(h // grid, dim=2).repeat_interleave(w // grid, dim=3)
    m_vi, m_ir = up(m_vi), up(m_ir)
    vi_in = vi * m_vi + draws["noise_vi"] * (1 - m_vi)
    ir_in = ir * m_ir + draws["noise_ir"] * (1 - m_ir)
    return m_vi, m_ir, vi_in, ir_in


SOBEL_X = [[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]
SOBEL_Y = [[1.0, 2.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -2.0, -1.0]]


def sobel_abs(x):
    """losses.Sobelxy: |Sx x|, |Sy x| (cross-correlation, zero padding 1) of a (B,1,H,W) batch."""
    kx = torch.tensor(SOBEL_X, dtype=x.dtype, device=x.device).view(1, 1, 3, 3)
    ky = torch.tensor(SOBEL_Y, dtype=x.dtype, device=x.device).view(1, 1, 3, 3)
    return F.conv2d(x, kx, padding=1).abs(), F.conv2d(x, ky, padding=1).abs()


def reconstruction_loss(rec, target, keep, weights=(5.0, 5.0)):
    """Stage I, one modality (Eq. 11-13): M = 1 - keep (the masked cells);
    L = 5 mean|M rec - M target| + 5 (mean| |Sx(M rec)| - |Sx(M target)| | + mean| |Sy(M rec)| - |Sy(M target)| |)."""
    m = 1 - keep
    intensity = (m * rec - m * target).abs().mean()
    gx_r, gy_r = sobel_abs(m * rec)
    gx_t, gy_t = sobel_abs(m * target)
    gradient = (gx_r - gx_t).abs().mean() + (gy_r - gy_t).abs().mean()
    return weights[0] * intensity + weights[1] * gradient, intensity, gradient


def fusion_loss(fused, vi_y, ir):
    """Stage II fusion loss (Eq. 15-16): L_int = mean|Y_f - max(I_ir, Y_vi)|,
    L_grad = mean| |Sx Y_f| - max(|Sx Y_vi|, |Sx I_ir|) | + the same in y."""
    intensity = (fused - torch.maximum(ir, vi_y)).abs().mean()
    fx, fy = sobel_abs(fused)
    vx, vy = sobel_abs(vi_y)
    ix, iy = sobel_abs(ir)
    gradient = (fx - torch.maximum(vx, ix)).abs().mean() + (fy - torch.maximum(vy, iy)).abs().mean()
    return intensity, gradient


def ohem_ce(logits, labels, thresh=0.75, n_min=512, ignore_index=255):
    """losses.OhemCELoss: per-pixel CE (0 at ignored pixels) sorted descending over the whole batch;
    if the value at index n_min (0-based) exceeds -log(thresh), the mean of all values > -log(thresh),
    else the mean of the n_min largest. Requires n_min < B H W."""
    loss = F.cross_entropy(logits, labels, ignore_index=ignore_index, reduction="none").reshape(-1)
    if n_min >= loss.numel():
        raise ValueError(f"OHEM n_min {n_min} must be below the pixel count {loss.numel()}")
    threshold = -math.log(thresh)
    loss, _ = torch.sort(loss, descending=True)
    if loss[n_min] > threshold:
        return loss[loss > threshold].mean()
    return loss[:n_min].mean()


def weighted_ce(logits, target, weight=None, ignore_index=255):
    """F.cross_entropy with class weights: sum_i w[y_i] CE_i / sum_i w[y_i] over non-ignored pixels."""
    w = None if weight is None else torch.tensor(weight, dtype=logits.dtype, device=logits.device)
    return F.cross_entropy(logits, target, weight=w, ignore_index=ignore_index)


def kd_loss(student, teacher, temperature=4.0):
    """losses.CriterionKD: T^2 * mean over pixels of KL(softmax(t/T) || softmax(s/T)) (kl_div batchmean
    over the (B H W, K) rows)."""
    k = student.shape[1]
    s = student.permute(0, 2, 3, 1).reshape(-1, k)
    t = teacher.permute(0, 2, 3, 1).reshape(-1, k)
    return F.kl_div(F.log_softmax(s / temperature, 1), F.softmax(t / temperature, 1), reduction="batchmean") * temperature ** 2


def binary_labels(label, ignore_index=255):
    """INFERRED: bi = 1 where label > 0 (a foreground class), 0 at class 0; ignore_index kept."""
    bi = (label > 0).long()
    return torch.where(label == ignore_index, torch.full_like(label, ignore_index), bi)


def boundary_labels(label, ignore_index=255):
    """INFERRED: bd = 1 where a pixel of the 3x3 neighbourhood (clipped at the image border) has another
    label value (an ignore_index neighbour counts as another value), else 0; ignore_index kept."""
    x = label[:, None].double()
    local_max = F.max_pool2d(x, 3, 1, 1)
    local_min = -F.max_pool2d(-x, 3, 1, 1)
    bd = ((local_max != x) | (local_min != x))[:, 0].long()
    return torch.where(label == ignore_index, torch.full_like(label, ignore_index), bd)


BINARY_CLASS_WEIGHTS = (1.5121, 10.2388)     # losses.eeemodelLoss (commented MFNet weights)
BOUNDARY_CLASS_WEIGHTS = (1.4459, 23.7228)   # same source; the paper uses plain CE for the boundary loss


def alpha_fair(loss, alpha=0.8):
    """Eq. 20: L -> L^(1 - alpha) / (1 - alpha); alpha = 0.8 gives 5 L^0.2 (L must be > 0)."""
    return loss ** (1 - alpha) / (1 - alpha)


def dwa_weights(history, temperature=500.0):
    """Eq. 21 (DWA): history = raw [L_f, L_s] of the iterations so far (oldest first). With fewer than
    two entries lambda = 1; else w_k = L_k(t) / L_k(t-1) from the last two, lambda_k = K softmax(w / T)_k."""
    k = len(history[0]) if history else 2
    if len(history) < 2:
        return [1.0] * k
    w = [a / b for a, b in zip(history[-1], history[-2])]
    e = [math.exp(v / temperature) for v in w]
    return [k * v / sum(e) for v in e]


@dataclass
class Stage2LossConfig:
    ohem_thresh: float = 0.75
    ohem_n_min: int = 512                 # B H W // 16 at the fixture size (PSFusion: 16 * 256 * 256 // 16)
    kd_temperature: float = 4.0
    binary_weights: Optional[tuple] = BINARY_CLASS_WEIGHTS
    boundary_weights: Optional[tuple] = None
    alpha: float = 0.8
    dwa_temperature: float = 500.0
    ignore_index: int = 255


def stage2_losses(outputs, vi, ir, label, teacher_logits, lambdas, cfg: Stage2LossConfig = Stage2LossConfig()):
    """All stage-II terms. outputs = NetworkStage2 output tuple; label (B,H,W) int64; lambdas = [l_f, l_s].
    Binary heads: out1, out3 (INFERRED); boundary head: out5 (INFERRED); K-class aux: out2, out4, out6."""
    logits, out1, out2, out3, out4, out5, out6, fused = outputs
    vi_y = rgb_to_ycbcr(vi)[0]
    ir1 = ir[:, :1]
    bi, bd = binary_labels(label, cfg.ignore_index), boundary_labels(label, cfg.ignore_index)
    ohem = lambda x: ohem_ce(x, label, cfg.ohem_thresh, cfg.ohem_n_min, cfg.ignore_index)
    t = {}
    t["intensity"], t["gradient"] = fusion_loss(fused, vi_y, ir1)
    t["fusion"] = t["intensity"] + t["gradient"]
    t["seg"] = ohem(logits)
    t["kd"] = kd_loss(logits, teacher_logits, cfg.kd_temperature)
    t["aux_binary1"] = weighted_ce(out1, bi, cfg.binary_weights, cfg.ignore_index)
    t["aux_binary3"] = weighted_ce(out3, bi, cfg.binary_weights, cfg.ignore_index)
    t["aux_boundary5"] = weighted_ce(out5, bd, cfg.boundary_weights, cfg.ignore_index)
    t["aux_seg2"], t["aux_seg4"], t["aux_seg6"] = ohem(out2), ohem(out4), ohem(out6)
    t["aux"] = (t["aux_binary1"] + t["aux_binary3"] + t["aux_boundary5"]
                + t["aux_seg2"] + t["aux_seg4"] + t["aux_seg6"])
    t["segmentation"] = t["seg"] + t["kd"] + t["aux"]
    t["fair_fusion"] = alpha_fair(t["fusion"], cfg.alpha)
    t["fair_segmentation"] = alpha_fair(t["segmentation"], cfg.alpha)
    t["total"] = lambdas[0] * t["fair_fusion"] + lambdas[1] * t["fair_segmentation"]
    return t, bi, bd


def stage1_losses(rec_vi, rec_ir, vi, ir, m_vi, m_ir):
    """Stage I total L_vi + L_ir; targets: visible Y (INFERRED) and the infrared channel."""
    vi_y = rgb_to_ycbcr(vi)[0]
    t = {}
    t["vi"], t["vi_intensity"], t["vi_gradient"] = reconstruction_loss(rec_vi, vi_y, m_vi)
    t["ir"], t["ir_intensity"], t["ir_gradient"] = reconstruction_loss(rec_ir, ir[:, :1], m_ir)
    t["total"] = t["vi"] + t["ir"]
    return t


# ----------------------------------------------------------------------------------------------------
# Deterministic weights (the project's DeterministicValues.state(for:) scheme, plus the Glow LU exception)
# ----------------------------------------------------------------------------------------------------

def name_offset(name):
    return sum(ord(ch) for ch in name) % 97


def wave(name, count):
    """sin(0.61 i + (sum of the name's unicode scalars mod 97)), i = 0..count-1, in float64 (math.sin,
    the C library's, like Swift's Foundation sin) for counts up to 2M, torch's float64 sin above."""
    offset = name_offset(name)
    if count <= 2_000_000:
        return torch.tensor([math.sin(0.61 * i + offset) for i in range(count)], dtype=torch.float64)
    return torch.sin(0.61 * torch.arange(count, dtype=torch.float64) + offset)


def deterministic_value(name, shape):
    """float64 value of one state-dict entry:
    num_batches_tracked -> 0; running_var -> 1 + 0.5 |wave|; 1-D '.weight' -> 1 + 0.1 wave;
    other rank <= 1 -> 0.1 wave; else wave / sqrt(count / rows), rows = shape[0].
    Exception (the scheme would make W = P L U singular, P being a rank-2 'matrix'):
    '.invconv.p' -> the reversal permutation P[i, C-1-i] = 1; '.invconv.sign_s' -> +1 where wave >= 0, else -1."""
    shape = tuple(shape)
    count = math.prod(shape) if shape else 1
    if name.endswith("num_batches_tracked"):
        return torch.zeros(shape, dtype=torch.float64)
    if name.endswith(".invconv.p"):
        return torch.flip(torch.eye(shape[0], dtype=torch.float64), [0])
    w = wave(name, count).view(shape)
    if name.endswith(".invconv.sign_s"):
        return torch.where(w >= 0, 1.0, -1.0).to(torch.float64)
    if name.endswith("running_var"):
        return 1 + 0.5 * w.abs()
    if len(shape) == 1 and name.endswith(".weight"):
        return 1 + 0.1 * w
    if len(shape) <= 1:
        return 0.1 * w
    rows = shape[0]
    return w / math.sqrt(count / rows)


def load_deterministic_state(model: nn.Module, prefix=""):
    """Fills every parameter and buffer of `model` (names prefixed by `prefix`, e.g. 'encoder.EAEF3.' for a
    block taken out of the whole network) with deterministic_value rounded to float32, then cast to the
    model's dtype."""
    state = {}
    for name, t in model.state_dict().items():
        v = deterministic_value(prefix + name, t.shape)
        if t.dtype == torch.int64:
            state[name] = v.to(torch.int64)
        else:
            state[name] = v.to(torch.float32).to(t.dtype)
    model.load_state_dict(state, strict=True)
    return model


# ----------------------------------------------------------------------------------------------------
# Parameter counts
# ----------------------------------------------------------------------------------------------------

def count(module):
    return sum(p.numel() for p in module.parameters())


def part_counts(net: NetworkStage2):
    e, s = net.encoder, net.seg_decoder
    parts = {f"EAEF{k}": getattr(e, f"EAEF{k}") for k in (2, 3, 4, 5)}
    parts.update({n: getattr(e, n) for n in ("high_fuse6", "high_fuse5", "high_fuse4", "low_fuse3")})
    parts.update({"SFM rgb": e.encoder_rgb_conv1, "SFM thermal": e.encoder_thermal_conv1,
                  "SDFM low_fuse2": e.low_fuse2, "SDFM low_fuse1": e.low_fuse1, "SIM1": e.SIM1, "SIM2": e.SIM2,
                  "DSRM": e.rec_decoder, "ResNet rgb layers": nn.ModuleList(
                      [getattr(e, f"encoder_rgb_layer{k}") for k in range(3, 7)]),
                  "INN decoder": net.fuse_decoder, "FPN": s.pixel_decoder, "ASPP": s.aspp, "InvPT": s.invpt,
                  "ARM2": s.ARM, "arm1": s.arm1, "arm2": s.arm2, "arm3": s.arm3, "SegHead": s.seg_head,
                  "encoder ARM (unused)": e.ARM})
    return {k: count(v) for k, v in parts.items()}


if __name__ == "__main__":
    for name, cfg in CONFIGURATIONS.items():
        net = NetworkStage2(cfg)
        print(f"{name}: {count(net):,} parameters ({cfg.num_classes} classes), "
              f"{len(net.state_dict())} state-dict tensors")
        for part, n in part_counts(net).items():
            print(f"  {part}: {n:,}")
