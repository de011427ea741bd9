# Run: python3 segformer_reference.py  (prints the expected figures hard-coded in SegFormerParityTests.swift)
# Faithful PyTorch transcription of TDFusion's SegFormer (nets/Segformer.py + nets/backbone_SS.py,
# themselves NVlabs' MixVisionTransformer + SegFormerHead), used for the parameter count and a
# parity check of the Swift plugin with deterministic weights.
import math, sys, torch, torch.nn as nn, torch.nn.functional as F
from functools import partial

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
    def __init__(s, dim, heads, sr, act):
        super().__init__(); s.norm1 = nn.LayerNorm(dim, eps=1e-6); s.attn = Attention(dim, heads, sr); s.norm2 = nn.LayerNorm(dim, eps=1e-6); s.mlp = Mlp(dim, 4 * dim, act)
    def forward(s, x, H, W):
        x = x + s.attn(s.norm1(x), H, W); return x + s.mlp(s.norm2(x), H, W)

class MiT(nn.Module):
    def __init__(s, dims, heads, depths, srs, in_chans, act):
        super().__init__()
        for i in range(4):
            setattr(s, f"patch_embed{i+1}", OverlapPatchEmbed(7 if i == 0 else 3, 4 if i == 0 else 2, in_chans if i == 0 else dims[i-1], dims[i]))
            setattr(s, f"block{i+1}", nn.ModuleList([Block(dims[i], heads[i], srs[i], act) for _ in range(depths[i])]))
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
    def forward(s, x): return s.act(s.bn(s.conv(x)))

class Head(nn.Module):
    def __init__(s, classes, ins, e):
        super().__init__()
        s.linear_c4 = MLP(ins[3], e); s.linear_c3 = MLP(ins[2], e); s.linear_c2 = MLP(ins[1], e); s.linear_c1 = MLP(ins[0], e)
        s.linear_fuse = ConvModule(4 * e, e); s.linear_pred = nn.Conv2d(e, classes, 1); s.dropout = nn.Dropout2d(0.1)
    def forward(s, inputs):
        c1, c2, c3, c4 = inputs; n = c4.shape[0]
        def up(m, c): return F.interpolate(m(c).permute(0, 2, 1).reshape(n, -1, c.shape[2], c.shape[3]), size=c1.shape[2:], mode='bilinear', align_corners=False)
        _c = s.linear_fuse(torch.cat([up(s.linear_c4, c4), up(s.linear_c3, c3), up(s.linear_c2, c2), up(s.linear_c1, c1)], 1))
        return s.linear_pred(s.dropout(_c))

class SegFormer(nn.Module):
    def __init__(s, classes=9, variant="b0", in_chans=1, act=nn.GELU):
        super().__init__()
        dims = {"b0": [32, 64, 160, 256], "b1": [64, 128, 320, 512]}[variant]
        s.backbone = MiT(dims, [1, 2, 5, 8], [2, 2, 2, 2], [8, 4, 2, 1], in_chans, act)
        s.decode_head = Head(classes, dims, 256)
    def forward(s, x):  # logits at 1/4
        return s.decode_head(s.backbone(x))

def deterministic_(model):
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
    return (0.5 + 0.4 * torch.sin(0.1 * i) * torch.cos(0.037 * i)).reshape(shape).float()

def deterministic_labels(shape, classes):
    i = torch.arange(math.prod(shape))
    lab = ((i * 7 + (i // 13) * 3) % classes)
    lab[i % 11 == 0] = 255
    return lab.reshape(shape)

if __name__ == "__main__":
    torch.set_printoptions(precision=8)
    for variant in ["b0", "b1"]:
        for classes in [9, 6]:
            m = SegFormer(classes, variant)
            print(variant, classes, "params", sum(p.numel() for p in m.parameters()), "state", len(m.state_dict()))
    for act_name, act in [("exact", nn.GELU), ("tanh", TanhGELU)]:
        m = SegFormer(9, "b0", 1, act).eval(); deterministic_(m)
        x = deterministic_input((2, 1, 64, 96))
        params = dict(m.named_parameters())
        logits = m(x)
        print(act_name, "logits", tuple(logits.shape), "sum %.6f abs %.6f sq %.6f" % (logits.sum().item(), logits.abs().sum().item(), (logits**2).sum().item()))
        flat = logits.flatten()
        print(act_name, "samples", [round(flat[j].item(), 6) for j in [0, 1, 100, 1000, 3333, 5000, 6911]])
        labels = deterministic_labels((2, 64, 96), 9)
        up = F.interpolate(logits, size=(64, 96), mode="bilinear", align_corners=True)
        loss = F.cross_entropy(up, labels, ignore_index=255)
        loss.backward()
        print(act_name, "loss %.7f" % loss.item())
        for n in ["backbone.patch_embed1.proj.weight", "backbone.block1.0.attn.kv.weight", "backbone.block4.1.mlp.dwconv.dwconv.weight", "decode_head.linear_fuse.conv.weight", "decode_head.linear_c1.proj.bias"]:
            g = params[n].grad
            print(act_name, "grad", n, "sum %.7e sq %.7e" % (g.sum().item(), (g**2).sum().item()))
        pred = up.argmax(1)
        print(act_name, "pred hist", torch.bincount(pred.flatten(), minlength=9).tolist())
