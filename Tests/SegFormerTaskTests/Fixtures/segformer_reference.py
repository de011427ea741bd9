"""PyTorch transcription of TDFusion's SegFormer (nets/Segformer.py + nets/backbone_SS.py, themselves
NVlabs' MixVisionTransformer + SegFormerHead) and of the plugin's OHEM cross-entropy, for the
parameter counts and the parity fixture of SegFormerParityTests.swift.

Run: python3 segformer_reference.py          (prints the official parameter counts)
     python3 segformer_reference.py --write  (writes segformer_parity.safetensors next to this file)

The fixture holds deterministic weights (a formula of each name, see deterministic_), the input,
the labels, and for each case the logits, the loss and the gradient of the loss with respect to
every parameter and the input; training cases also hold the BatchNorm statistics after the pass.
Everything is computed in float64 and stored as float32, so the Swift test measures its own
float32 error only; for each tensor the fixture also holds PyTorch's own float32 error on it
(`f32error.*`), the scale of what float32 can reach where the quantity is ill-conditioned
(BatchNorm on batch statistics). The script refuses to write a case that sits on a kink (a
decoder ReLU input or an OHEM loss within 1e-5 of its threshold), where the summation order of a
float32 computation would decide which side it falls. The width is reduced (the official widths are checked by the parameter-count
tests) but every code path runs: four stages, spatial reduction on (stages 1-3) and off (4), a
stage with two blocks, both GELU forms, the decoder's composed and sequential projections, OHEM
on both of its branches, and BatchNorm on running and on batch statistics.
"""
import json, math, os, sys
import torch, torch.nn as nn, torch.nn.functional as F
from safetensors.torch import save_file


class TanhGELU(nn.Module):
    def forward(self, x): return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * torch.pow(x, 3))))


class OverlapPatchEmbed(nn.Module):
    def __init__(s, patch_size, stride, in_chans, embed_dim):
        super().__init__(); s.proj = nn.Conv2d(in_chans, embed_dim, patch_size, stride, patch_size // 2); s.norm = nn.LayerNorm(embed_dim)
    def forward(s, x):
        x = s.proj(x); _, _, H, W = x.shape; return s.norm(x.flatten(2).transpose(1, 2)), H, W


class Attention(nn.Module):
    def __init__(s, dim, heads, sr):
        super().__init__(); s.h = heads; s.scale = (dim // heads) ** -0.5
        s.q = nn.Linear(dim, dim); s.sr_ratio = sr
        if sr > 1: s.sr = nn.Conv2d(dim, dim, sr, sr); s.norm = nn.LayerNorm(dim)
        s.kv = nn.Linear(dim, 2 * dim); s.proj = nn.Linear(dim, dim)
    def forward(s, x, H, W):
        B, N, C = x.shape
        q = s.q(x).reshape(B, N, s.h, C // s.h).permute(0, 2, 1, 3)
        if s.sr_ratio > 1:
            x_ = s.norm(s.sr(x.permute(0, 2, 1).reshape(B, C, H, W)).reshape(B, C, -1).permute(0, 2, 1))
        else: x_ = x
        kv = s.kv(x_).reshape(B, -1, 2, s.h, C // s.h).permute(2, 0, 3, 1, 4); k, v = kv[0], kv[1]
        a = ((q @ k.transpose(-2, -1)) * s.scale).softmax(-1)
        return s.proj((a @ v).transpose(1, 2).reshape(B, N, C))


class DWConv(nn.Module):
    def __init__(s, dim): super().__init__(); s.dwconv = nn.Conv2d(dim, dim, 3, 1, 1, groups=dim)
    def forward(s, x, H, W):
        B, N, C = x.shape; return s.dwconv(x.transpose(1, 2).view(B, C, H, W)).flatten(2).transpose(1, 2)


class Mlp(nn.Module):
    def __init__(s, dim, hidden, act):
        super().__init__(); s.fc1 = nn.Linear(dim, hidden); s.dwconv = DWConv(hidden); s.act = act(); s.fc2 = nn.Linear(hidden, dim)
    def forward(s, x, H, W): return s.fc2(s.act(s.dwconv(s.fc1(x), H, W)))


class Block(nn.Module):
    def __init__(s, dim, heads, sr, mlp_ratio, act):
        super().__init__()
        s.norm1 = nn.LayerNorm(dim, eps=1e-6); s.attn = Attention(dim, heads, sr)
        s.norm2 = nn.LayerNorm(dim, eps=1e-6); s.mlp = Mlp(dim, mlp_ratio * dim, act)
    def forward(s, x, H, W):
        x = x + s.attn(s.norm1(x), H, W); return x + s.mlp(s.norm2(x), H, W)


class MiT(nn.Module):
    def __init__(s, dims, heads, depths, srs, mlp_ratio, in_chans, act):
        super().__init__()
        for i in range(4):
            setattr(s, f"patch_embed{i+1}", OverlapPatchEmbed(7 if i == 0 else 3, 4 if i == 0 else 2, in_chans if i == 0 else dims[i-1], dims[i]))
            setattr(s, f"block{i+1}", nn.ModuleList([Block(dims[i], heads[i], srs[i], mlp_ratio, act) for _ in range(depths[i])]))
            setattr(s, f"norm{i+1}", nn.LayerNorm(dims[i], eps=1e-6))
    def forward(s, x):
        B = x.shape[0]; outs = []
        for i in range(4):
            x, H, W = getattr(s, f"patch_embed{i+1}")(x)
            for blk in getattr(s, f"block{i+1}"): x = blk(x, H, W)
            x = getattr(s, f"norm{i+1}")(x).reshape(B, H, W, -1).permute(0, 3, 1, 2).contiguous(); outs.append(x)
        return outs


class MLP(nn.Module):
    def __init__(s, i, e): super().__init__(); s.proj = nn.Linear(i, e)
    def forward(s, x): return s.proj(x.flatten(2).transpose(1, 2))


class ConvModule(nn.Module):
    def __init__(s, c1, c2):
        super().__init__(); s.conv = nn.Conv2d(c1, c2, 1, bias=False); s.bn = nn.BatchNorm2d(c2, eps=0.001, momentum=0.03); s.act = nn.ReLU()
    def forward(s, x):
        s.pre_activation = s.bn(s.conv(x)); return s.act(s.pre_activation)


class Head(nn.Module):
    def __init__(s, classes, ins, e, dropout):
        super().__init__()
        s.linear_c4 = MLP(ins[3], e); s.linear_c3 = MLP(ins[2], e); s.linear_c2 = MLP(ins[1], e); s.linear_c1 = MLP(ins[0], e)
        s.linear_fuse = ConvModule(4 * e, e); s.linear_pred = nn.Conv2d(e, classes, 1); s.dropout = nn.Dropout2d(dropout)
    def forward(s, inputs):
        c1, c2, c3, c4 = inputs; n = c4.shape[0]
        def up(m, c): return F.interpolate(m(c).permute(0, 2, 1).reshape(n, -1, c.shape[2], c.shape[3]), size=c1.shape[2:], mode='bilinear', align_corners=False)
        _c = s.linear_fuse(torch.cat([up(s.linear_c4, c4), up(s.linear_c3, c3), up(s.linear_c2, c2), up(s.linear_c1, c1)], 1))
        return s.linear_pred(s.dropout(_c))


VARIANTS = {"b0": [32, 64, 160, 256], "b1": [64, 128, 320, 512]}


class SegFormer(nn.Module):
    def __init__(s, classes=9, dims=VARIANTS["b0"], heads=(1, 2, 5, 8), depths=(2, 2, 2, 2), srs=(8, 4, 2, 1), mlp_ratio=4,
                 decoder_embed=256, in_chans=1, act=nn.GELU, dropout=0.1):
        super().__init__()
        s.backbone = MiT(dims, heads, depths, srs, mlp_ratio, in_chans, act)
        s.decode_head = Head(classes, dims, decoder_embed, dropout)
    def forward(s, x):  # logits at 1/4
        return s.decode_head(s.backbone(x))


def deterministic_(model):
    """value[i] from sin(0.61 i + (sum of the name's characters mod 97)), scaled by kind."""
    with torch.no_grad():
        for name, t in model.state_dict().items():
            offset = sum(ord(c) for c in name) % 97
            i = torch.arange(t.numel(), dtype=torch.float64)
            wave = torch.sin(0.61 * i + offset)
            if name.endswith("num_batches_tracked"): v = torch.zeros_like(wave)
            elif name.endswith("running_var"): v = 1 + 0.5 * wave.abs()
            elif t.dim() == 1 and name.endswith(".weight"): v = 1 + 0.1 * wave
            elif t.dim() == 1: v = 0.1 * wave
            else: v = wave / math.sqrt(t.numel() / t.shape[0])
            t.copy_(v.reshape(t.shape).to(t.dtype))


def deterministic_input(shape):
    i = torch.arange(math.prod(shape), dtype=torch.float64)
    return (0.5 + 0.4 * torch.sin(0.1 * i) * torch.cos(0.037 * i)).reshape(shape)


def deterministic_labels(shape, classes):
    i = torch.arange(math.prod(shape))
    lab = ((i * 7 + (i // 13) * 3) % classes)
    lab[i % 11 == 0] = 255
    return lab.reshape(shape)


def segmentation_loss(logits, labels, ohem=None):
    """The plugin's SegmentationLoss: logits resized (bilinear, aligned corners) to the label size,
    cross-entropy ignoring 255; with ohem = (threshold, min_kept), the mean over the labelled pixels
    whose loss exceeds -log(threshold) when there are more than n_min of them (n_min = min_kept, or
    1/16 of the labelled pixels for 0), else over the n_min hardest. Returns the loss and the margin
    of the selection (the smallest distance of a deciding loss to the cut)."""
    up = F.interpolate(logits, size=labels.shape[1:], mode="bilinear", align_corners=True)
    if ohem is None:
        return F.cross_entropy(up, labels, ignore_index=255), None
    threshold, min_kept = ohem
    per_pixel = F.cross_entropy(up, labels, ignore_index=255, reduction="none").flatten()
    losses = per_pixel[labels.flatten() != 255]
    n_min = min(losses.numel(), min_kept if min_kept > 0 else max(1, losses.numel() // 16))
    cut = -math.log(threshold)
    hard = losses > cut
    if int(hard.sum()) > n_min:
        kept, branch = losses[hard], "hard pixels"
        margin = (losses.detach() - cut).abs().min().item()
    else:
        ordered = torch.sort(losses.detach(), descending=True).values
        kept, branch = torch.sort(losses, descending=True).values[:n_min], "hardest n_min"
        margin = (ordered[n_min - 1] - ordered[n_min]).item() if n_min < ordered.numel() else math.inf
    return kept.mean(), (branch, int(kept.numel()), margin)


# The parity configuration: every code path at a width that keeps the fixture small.
PARITY = dict(classes=6, dims=[8, 16, 24, 32], heads=[1, 2, 3, 4], depths=[1, 2, 1, 1], srs=[8, 4, 2, 1], mlp_ratio=4,
              decoder_embed=16, in_chans=1)
INPUT_SHAPE = (2, 1, 64, 96)
# Confident predictions, so that OHEM's selection keeps some pixels and drops others.
CLASSIFIER_GAIN = 8
# name: (GELU, OHEM (threshold, min kept) or None, training mode)
CASES = {
    "exact": ("exact", None, False),
    "tanh": ("tanh", None, False),
    "ohem": ("exact", (0.3, 0), False),
    "train": ("tanh", (0.05, 5000), True),
}


def run_case(state, x0, labels, gelu, ohem, training, dtype):
    """The logits, loss, gradients (and, in training, the BatchNorm statistics) of one case, and how
    far it is from a kink: the smallest |input| of the decoder's ReLU and OHEM's selection margin."""
    m = SegFormer(**PARITY, act=nn.GELU if gelu == "exact" else TanhGELU, dropout=0.0).to(dtype)
    m.load_state_dict(state)
    m.train(training)
    x = x0.to(dtype).requires_grad_(True)
    logits = m(x)
    loss, selection = segmentation_loss(logits, labels, ohem)
    params = dict(m.named_parameters())
    grads = torch.autograd.grad(loss, [x] + list(params.values()))
    out = {"logits": logits.detach(), "loss": loss.detach().reshape(1), "grad.input": grads[0]}
    for name, g in zip(params, grads[1:]):
        out["grad." + name] = g
    if training:
        for name, value in m.state_dict().items():
            if "running" in name or name.endswith("num_batches_tracked"):
                out["buffer." + name] = value.clone()
    margins = dict(relu=m.decode_head.linear_fuse.pre_activation.detach().abs().min().item())
    if selection is not None:
        margins["ohem"] = selection[2]
    return out, margins, selection


def write_fixture(path):
    base = SegFormer(**PARITY, dropout=0.0).double()
    deterministic_(base)
    with torch.no_grad():
        base.decode_head.linear_pred.weight.mul_(CLASSIFIER_GAIN)
    # The values the float32 fixture holds are the ones computed with.
    state = {k: v.float().double() if v.is_floating_point() else v.clone() for k, v in base.state_dict().items()}
    x0 = deterministic_input(INPUT_SHAPE).float().double()
    labels = deterministic_labels((INPUT_SHAPE[0],) + INPUT_SHAPE[2:], PARITY["classes"])
    tensors = {"input": x0, "labels": labels.double()}
    for name, value in state.items():
        tensors["state." + name] = value
    report = {}
    for case, (gelu, ohem, training) in CASES.items():
        exact, margins, selection = run_case(state, x0, labels, gelu, ohem, training, torch.float64)
        # The fixture must not sit on a kink: float32 rounding (about 1e-6 of these O(1) values)
        # must not decide a ReLU's side or OHEM's choice.
        assert min(margins.values()) > 1e-5, f"{case}: too close to a kink: {margins}"
        single, _, _ = run_case({k: v.float() if v.is_floating_point() else v for k, v in state.items()}, x0.float(), labels,
                                gelu, ohem, training, torch.float32)
        for key, value in exact.items():
            tensors[f"{case}.{key}"] = value
            # PyTorch's own float32 error on this tensor: where it is above the fixed tolerances,
            # the Swift test allows twice it (the quantity is ill-conditioned, not the code wrong).
            tensors[f"f32error.{case}.{key}"] = (single[key].double() - value.double()).abs().max().reshape(1)
        report[case] = dict(loss=exact["loss"].item(), margins=margins, selection=selection and selection[:2])
    out = {k: v.to(torch.float32).contiguous() for k, v in tensors.items()}
    metadata = {"configuration": json.dumps(PARITY), "cases": json.dumps({k: list(v) for k, v in CASES.items()}),
                "reference": f"float64, torch {torch.__version__}"}
    save_file(out, path, metadata=metadata)
    return report, sum(v.numel() for v in out.values()), sum(p.numel() for p in base.parameters())


if __name__ == "__main__":
    if "--write" in sys.argv:
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "segformer_parity.safetensors")
        report, floats, parameters = write_fixture(path)
        print(f"wrote {path}: {floats} floats ({os.path.getsize(path)} bytes); parity model {parameters} parameters")
        for case, r in report.items():
            print(case, r)
    else:
        for variant in ["b0", "b1"]:
            for classes in [9, 6]:
                m = SegFormer(classes, VARIANTS[variant])
                print(variant, classes, "params", sum(p.numel() for p in m.parameters()), "state", len(m.state_dict()))
