# Checks mafs_reference.py against the official MAFS code (nothing of it is stored in the project).
#
#   pip install --no-deps --target /tmp/mafs_pkgs torchvision==0.29.2 einops   # scratch, for this check only
#   python3 verify_official.py --snapshot /work/.mirror/Abraham-Einstein+MAFS/repo --packages /tmp/mafs_pkgs
#
# The official *.py files are read from the git snapshot into a temporary folder. What the release lacks is
# filled there: util/dual_self_att.py (CAM_Module, inferred from DANet: the same inference as the
# transcription, so not independently checked), util/AST.py (re-exports Fusion_block's Attention,
# LayerNorm, LeFF: official code), inv_utils/utils.py (to_2tuple), and minimal stand-ins for timm
# (to_2tuple, trunc_normal_, DropPath), detectron2 (CfgNode, configurable, Conv2d with norm/activation,
# get_norm('GN') = GroupNorm, the head registry), fvcore's c2_xavier_fill, kornia/skimage/Fusion_losses
# (imported by losses.py, unused here). Patched at run time: torch.cuda.set_device and Tensor.cuda (util/EAEF.py),
# torch.qr / torch.lu (removed in torch 2; util/modules.py) -> torch.linalg,
# the debug print in InvPTBlock, nn.SyncBatchNorm -> nn.BatchNorm2d (single-process CPU training), and
# torchvision's resnet152(pretrained=True) -> random weights (no network). torchvision itself is real.
#
# Checks, in float64 with the deterministic weights of the fixtures:
#  1. official configuration: the official NetworkStage2 (ResNet-152, 15 classes) against
#     NetworkStage2(OFFICIAL, eaef_gate='released'): keys, shapes, parameter count, the 8 outputs and every
#     parameter gradient at 2x3x64x64, in eval and in train mode.
#  2. minimal configuration: the official classes with their hard-coded widths substituted textually
#     (each substitution asserted to match), torchvision BasicBlock stages: the same comparisons, plus the
#     output of every block (forward hooks on both networks, same module names).
#  3. losses: OhemCELoss, CriterionKD, Sobelxy and Fusionloss of losses.py, RGB2YCrCb / YCbCr2RGB of utils.py.
import argparse
import builtins
import functools
import inspect
import os
import subprocess
import sys
import tempfile
import textwrap

import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import mafs_reference as ref  # noqa: E402

STUBS = {
    "timm/__init__.py": "",
    "timm/models/__init__.py": "",
    "timm/models/layers.py": """
import collections.abc, torch.nn as nn
def to_2tuple(x):
    return tuple(x) if isinstance(x, collections.abc.Iterable) else (x, x)
trunc_normal_ = nn.init.trunc_normal_
class DropPath(nn.Module):
    def __init__(self, p=0.0):
        super().__init__(); assert p == 0.0
    def forward(self, x):
        return x
""",
    "inv_utils/__init__.py": "",
    "inv_utils/utils.py": "from timm.models.layers import to_2tuple\n",
    "util/dual_self_att.py": """
import torch, torch.nn as nn
class CAM_Module(nn.Module):
    # DANet channel attention (inferred; LASNet's CAM uses it)
    def __init__(self, in_dim):
        super().__init__(); self.chanel_in = in_dim; self.gamma = nn.Parameter(torch.zeros(1)); self.softmax = nn.Softmax(dim=-1)
    def forward(self, x):
        b, c, h, w = x.size()
        q = x.view(b, c, -1); k = x.view(b, c, -1).permute(0, 2, 1)
        energy = torch.bmm(q, k)
        energy_new = torch.max(energy, -1, keepdim=True)[0].expand_as(energy) - energy
        out = torch.bmm(self.softmax(energy_new), x.view(b, c, -1)).view(b, c, h, w)
        return self.gamma * out + x
""",
    "util/AST.py": """
import torch.nn as nn, torch.nn.functional as F
from Fusion_block import Attention, LayerNorm, LeFF
class FeedForward(nn.Module):   # SMFNet form; unused by InvPT (ffn = LeFF())
    def __init__(self, dim, ffn_factor, bias):
        super().__init__(); h = int(dim * ffn_factor)
        self.project_in = nn.Conv2d(dim, h, 1, bias=bias); self.project_out = nn.Conv2d(h, dim, 1, bias=bias)
    def forward(self, x):
        return self.project_out(F.gelu(self.project_in(x)))
""",
    "detectron2/__init__.py": "",
    "detectron2/config/__init__.py": """
import functools
class CfgNode(dict):
    def __getattr__(self, key):
        if key not in self:
            self[key] = CfgNode()
        return self[key]
    def __setattr__(self, key, value):
        self[key] = value
def get_cfg():
    cfg = CfgNode()
    cfg.MODEL.SEM_SEG_HEAD.NORM = "GN"           # detectron2 default
    cfg.MODEL.SEM_SEG_HEAD.IN_FEATURES = ["res2", "res3", "res4", "res5"]
    return cfg
def configurable(init):
    @functools.wraps(init)
    def wrapped(self, *args, **kwargs):
        if args and isinstance(args[0], CfgNode):
            kwargs = dict(type(self).from_config(*args, **kwargs)); args = ()
        init(self, *args, **kwargs)
    return wrapped
""",
    "detectron2/layers/__init__.py": """
import torch.nn as nn
GN_GROUPS = [32]
class ShapeSpec:
    def __init__(self, channels=None, stride=None):
        self.channels, self.stride = channels, stride
class DeformConv(nn.Module):
    pass
def get_norm(norm, out_channels):
    assert norm == "GN", norm
    return nn.GroupNorm(GN_GROUPS[0], out_channels)
class Conv2d(nn.Conv2d):
    def __init__(self, *args, **kwargs):
        norm = kwargs.pop("norm", None); activation = kwargs.pop("activation", None)
        super().__init__(*args, **kwargs); self.norm = norm; self.activation = activation
    def forward(self, x):
        x = super().forward(x)
        if self.norm is not None: x = self.norm(x)
        if self.activation is not None: x = self.activation(x)
        return x
""",
    "detectron2/modeling/__init__.py": """
class _Registry(dict):
    def register(self):
        def add(cls):
            self[cls.__name__] = cls; return cls
        return add
SEM_SEG_HEADS_REGISTRY = _Registry()
""",
    "fvcore/__init__.py": "",
    "fvcore/nn/__init__.py": "",
    "fvcore/nn/weight_init.py": """
import torch.nn as nn
def c2_xavier_fill(module):
    nn.init.kaiming_uniform_(module.weight, a=1)
    if module.bias is not None: nn.init.constant_(module.bias, 0)
""",
    "position_encoding.py": "class PositionEmbeddingSine: pass\n",
    "transformer.py": "class TransformerEncoder: pass\nclass TransformerEncoderLayer: pass\n"
                      "def _get_clones(*a): pass\ndef _get_activation_fn(*a): pass\n",
    "kornia/__init__.py": "",
    "kornia/filters.py": "def spatial_gradient(*a, **k): raise NotImplementedError\n"
                         "def gaussian_blur2d(*a, **k): raise NotImplementedError\n",
    "skimage/__init__.py": "",
    "skimage/segmentation.py": "",
    "Fusion_losses.py": "",
}


def extract_official(snapshot, folder):
    files = subprocess.run(["git", "--git-dir", snapshot, "ls-tree", "-r", "--name-only", "HEAD"],
                           check=True, capture_output=True, text=True).stdout.split()
    for path in files:
        if path.endswith(".py"):
            text = subprocess.run(["git", "--git-dir", snapshot, "show", f"HEAD:{path}"],
                                  check=True, capture_output=True, text=True).stdout
            os.makedirs(os.path.join(folder, os.path.dirname(path)), exist_ok=True)
            with open(os.path.join(folder, path), "w") as f:
                f.write(text)
    for path, text in STUBS.items():
        os.makedirs(os.path.join(folder, os.path.dirname(path)), exist_ok=True)
        with open(os.path.join(folder, path), "w") as f:
            f.write(textwrap.dedent(text))


def import_official(folder, packages):
    sys.path[:0] = [folder, packages]
    torch.cuda.set_device = lambda *a, **k: None
    torch.Tensor.cuda = lambda self, *a, **k: self
    torch.qr = lambda a, some=True: torch.linalg.qr(a, mode="reduced" if some else "complete")   # removed in torch 2
    torch.lu = lambda a, pivot=True: torch.linalg.lu_factor(a, pivot=pivot)                       # (LU, pivots)
    import torchvision.models as tvm
    original = tvm.resnet152
    tvm.resnet152 = lambda pretrained=False, **kw: original(weights=None, **kw)
    import MayNet_response_final as maynet
    import builder_resnet34_final as builder
    import invpt_AST, Fusion_block, INN_block, pixel_decoder, losses, utils
    import util.EAEF as eaef_module
    import util.CAI_ARM as cai_arm
    import detectron2.layers as d2layers
    invpt_AST.print = lambda *a, **k: None
    invpt_AST.BATCHNORM = nn.BatchNorm2d
    maynet.BATCHNORM = nn.BatchNorm2d
    return dict(maynet=maynet, builder=builder, invpt=invpt_AST, fusion_block=Fusion_block, inn=INN_block,
                pixel_decoder=pixel_decoder, losses=losses, utils=utils, eaef=eaef_module, cai_arm=cai_arm,
                d2layers=d2layers, tvm=tvm)


def patched_class(module, name, replacements, extra=None):
    """The official class `name` of `module` with its hard-coded widths substituted (each (old, new, count)
    must occur exactly `count` times; count None = at least once)."""
    src = textwrap.dedent(inspect.getsource(getattr(module, name)))
    for old, new, n in replacements:
        found = src.count(old)
        assert (found >= 1 if n is None else found == n), f"{name}: {old!r} found {found} times, expected {n}"
        src = src.replace(old, new)
    namespace = dict(vars(module))
    namespace.update(extra or {})
    exec(compile(src, f"<official {name}, minimal widths>", "exec"), namespace)
    return namespace[name]


def minimal_official_network(o):
    """The official NetworkStage2 at the minimal configuration (MINIMAL widths)."""
    tv = o["tvm"].resnet

    def minimal_resnet():
        m = tv.ResNet(tv.BasicBlock, [1, 1, 1, 1])
        m.inplanes = 16
        m.bn1 = nn.BatchNorm2d(16)
        m.layer1 = m._make_layer(tv.BasicBlock, 16, 1)
        m.layer2 = m._make_layer(tv.BasicBlock, 32, 1, stride=2)
        m.layer3 = m._make_layer(tv.BasicBlock, 48, 1, stride=2)
        m.layer4 = m._make_layer(tv.BasicBlock, 64, 1, stride=2)
        return m

    fb, maynet = o["fusion_block"], o["maynet"]
    arm_encoder = patched_class(fb, "ARM", [("ConvBNReLU(256 + 64, 64, dilation=", "ConvBNReLU(64 + 16, 16, dilation=", 4),
                                            ("ConvBNReLU(256, 64, kernel_size=1)", "ConvBNReLU(64, 16, kernel_size=1)", 1)])
    arm2 = patched_class(fb, "ARM2", [("ConvBNReLU(32 + 64, 64, dilation=", "ConvBNReLU(8 + 16, 16, dilation=", 4),
                                      ("ConvBNReLU(256, 64, kernel_size=1)", "ConvBNReLU(64, 16, kernel_size=1)", 1)])
    encoder = patched_class(maynet, "Encoder", [
        ("resnet_raw_model1 = models.resnet152(pretrained=True)", "resnet_raw_model1 = minimal_resnet()", 1),
        ("resnet_raw_model2 = models.resnet152(pretrained=True)", "resnet_raw_model2 = minimal_resnet()", 1),
        ("self.dims = [32, 32, 64, 64, 64, 64]", "self.dims = [8, 8, 16, 16, 16, 16]", 1),
        ("self.decoder_dim_rec = 32", "self.decoder_dim_rec = 8", 1),
        ("self.decoder_dim_seg = 64", "self.decoder_dim_seg = 16", 1),
        ("Feature_extract(1, 64)", "Feature_extract(1, 16)", 1), ("Feature_extract(3, 64)", "Feature_extract(3, 16)", 1),
        ("CAM(2048, 64)", "CAM(64, 16)", 1), ("CAM(1024, 64)", "CAM(48, 16)", 1),
        ("CAM(512, 64)", "CAM(32, 16)", 1), ("CAM(256, 64)", "CAM(16, 16)", 1),
        ("EAEF(1024)", "EAEF(48)", 1), ("EAEF(512)", "EAEF(32)", 1), ("EAEF(256)", "EAEF(16)", 1), ("EAEF(64)", "EAEF(16)", 1),
        ("SDFM(64, 32)", "SDFM(16, 8)", 1), ("SDFM(32, 32)", "SDFM(8, 8)", 1),
        ("SIM(norm_nc=32, label_nc=64, nhidden=32)", "SIM(norm_nc=8, label_nc=16, nhidden=8)", 2),
        ("SIM(norm_nc=32, label_nc=32, nhidden=32)", "SIM(norm_nc=8, label_nc=8, nhidden=8)", 1),
        ("out_rgbt_2[:, 0:64, :, :]", "out_rgbt_2[:, 0:16, :, :]", 1), ("out_rgbt_2[:, 64:128, :, :]", "out_rgbt_2[:, 16:32, :, :]", 1),
        ("out_rgbt_3[:, 0:256, :, :]", "out_rgbt_3[:, 0:16, :, :]", 1), ("out_rgbt_3[:, 256:512, :, :]", "out_rgbt_3[:, 16:32, :, :]", 1),
        ("out_rgbt_4[:, 0:512, :, :]", "out_rgbt_4[:, 0:32, :, :]", 1), ("out_rgbt_4[:, 512:1024, :, :]", "out_rgbt_4[:, 32:64, :, :]", 1),
        ("out_rgbt_5[:, 0:1024, :, :]", "out_rgbt_5[:, 0:48, :, :]", 1), ("out_rgbt_5[:, 1024:2048, :, :]", "out_rgbt_5[:, 48:96, :, :]", 1),
    ], extra=dict(minimal_resnet=minimal_resnet, ARM=arm_encoder))
    subnet = lambda c_in, c_out: o["inn"].DenseBlock(c_in, c_out, "xavier", gc=4)
    fusion_decoder = patched_class(maynet, "FusionDecoder", [
        ("self.decoder_dim_rec = 32", "self.decoder_dim_rec = 8", 1),
        ("self.decoder_dim_spilt = 16", "self.decoder_dim_spilt = 4", 1),
        ("channel_split_num=self.decoder_dim_spilt)", "channel_split_num=self.decoder_dim_spilt, block_num=3, subnet_constructor=minimal_subnet)", 1),
    ], extra=dict(minimal_subnet=subnet))
    pixel = patched_class(o["pixel_decoder"], "BasePixelDecoder", [("ShapeInfo(channels=64,", "ShapeInfo(channels=16,", 4)])
    registry = o["pixel_decoder"].SEM_SEG_HEADS_REGISTRY
    segmentation = patched_class(maynet, "SegmentationDecoder", [
        ("self.decoder_dim_rec = 32", "self.decoder_dim_rec = 8", 1),
        ("self.decoder_dim_seg = 64", "self.decoder_dim_seg = 16", 1),
        ("ShapeInfo(channels=64,", "ShapeInfo(channels=16,", 4),
        ("add_mask_former_config(cfg)", "add_mask_former_config(cfg); cfg.MODEL.SEM_SEG_HEAD.CONVS_DIM = 16; cfg.MODEL.SEM_SEG_HEAD.MASK_DIM = 16", 1),
        ("self.embed_dim = 64", "self.embed_dim = 16", 1),
        ("'NUM_HEADS': [2, 2, 2]", "'NUM_HEADS': [1, 1, 1]", 1),
        ("input_channels = 64", "input_channels = 16", 1), ("task_channels = 64", "task_channels = 16", 1),
        ("self.seg_head = SegHead()", "self.seg_head = SegHead(feature=16, n_classes=9)", 1),
        ("ARM_I(64, 64, 64)", "ARM_I(16, 16, 16)", 1), ("ARM_II(64, 64)", "ARM_II(16, 16)", 2),
        ("ConvBNReLU(64, 64, kernel_size=3, stride=1)", "ConvBNReLU(16, 16, kernel_size=3, stride=1)", None),
        ("nn.Conv2d(64, 15, kernel_size=1)", "nn.Conv2d(16, 9, kernel_size=1)", 3),
        ("nn.Conv2d(64, 2, kernel_size=1)", "nn.Conv2d(16, 2, kernel_size=1)", 3),
        ("self.aspp = ASPP(outchannel=64)", "self.aspp = ASPP(outchannel=16)", 1),
    ], extra=dict(ARM2=arm2))
    builder = o["builder"]
    saved = (builder.Encoder, builder.FusionDecoder, builder.SegmentationDecoder, o["invpt"].LeFF,
             o["d2layers"].GN_GROUPS[0], registry["BasePixelDecoder"])
    builder.Encoder, builder.FusionDecoder, builder.SegmentationDecoder = encoder, fusion_decoder, segmentation
    registry["BasePixelDecoder"] = pixel
    o["invpt"].LeFF = lambda: o["fusion_block"].LeFF(16, 16)
    o["d2layers"].GN_GROUPS[0] = 4
    try:
        return builder.NetworkStage2()
    finally:
        (builder.Encoder, builder.FusionDecoder, builder.SegmentationDecoder, o["invpt"].LeFF,
         o["d2layers"].GN_GROUPS[0], registry["BasePixelDecoder"]) = saved


BLOCKS = (["encoder.encoder_rgb_conv1", "encoder.encoder_thermal_conv1"]
          + [f"encoder.encoder_{s}_layer{k}" for s in ("rgb", "thermal") for k in range(3, 7)]
          + [f"encoder.EAEF{k}" for k in (2, 3, 4, 5)]
          + ["encoder.high_fuse6", "encoder.high_fuse5", "encoder.high_fuse4", "encoder.low_fuse3",
             "encoder.low_fuse2", "encoder.low_fuse1", "encoder.SIM1", "encoder.SIM2", "encoder.rec_decoder",
             "fuse_decoder.fuse_decoder", "fuse_decoder",   # (FeatureExtract calls its InvBlocks via .forward: no hooks)
             "seg_decoder.pixel_decoder", "seg_decoder.arm3", "seg_decoder.arm2", "seg_decoder.arm1"]
          + [f"seg_decoder.classifier_Z{k}" for k in range(1, 7)]
          + ["seg_decoder.aspp", "seg_decoder.invpt.invpt_stages.0", "seg_decoder.invpt.invpt_stages.1",
             "seg_decoder.invpt.invpt_stages.2", "seg_decoder.invpt.invpt_stages.1.blocks.0.attn",
             "seg_decoder.invpt.invpt_stages.1.blocks.0.ffn", "seg_decoder.invpt", "seg_decoder.preliminary_decoder",
             "seg_decoder.ARM", "seg_decoder.seg_head"])


def flatten(x):
    if isinstance(x, torch.Tensor):
        return [x]
    if isinstance(x, (tuple, list)):
        return [t for item in x for t in flatten(item)]
    return []


def record_blocks(net, names):
    records = {n: [] for n in names}
    modules = dict(net.named_modules())
    hooks = []
    for n in names:
        def hook(module, args, out, n=n):
            if n == "seg_decoder.pixel_decoder" and isinstance(out, tuple) and len(out) == 3:
                out = out[2]                         # official: (mask_features, None, multi_scale_features)
            records[n].append([t.detach().clone() for t in flatten(out)])
        hooks.append(modules[n].register_forward_hook(hook))
    return records, hooks


def max_relative(a, b):
    scale = max(b.abs().max().item(), 1e-30)
    return (a - b).abs().max().item() / scale


def compare_networks(label, official, mine, blocks=(), batch=2, size=64, modes=("eval", "train")):
    keys_o, keys_m = official.state_dict(), mine.state_dict()
    assert set(keys_o) == set(keys_m), (set(keys_o) ^ set(keys_m))
    for k in keys_o:
        assert keys_o[k].shape == keys_m[k].shape, (k, keys_o[k].shape, keys_m[k].shape)
    n_o = sum(p.numel() for p in official.parameters())
    n_m = sum(p.numel() for p in mine.parameters())
    print(f"[{label}] state-dict tensors: {len(keys_o)} (same names and shapes); parameters official {n_o:,}, transcription {n_m:,}")
    ref.load_deterministic_state(mine)
    official.load_state_dict(mine.state_dict(), strict=True)
    official.double()
    mine.double()
    g = torch.Generator().manual_seed(7)
    vi = torch.rand(batch, 3, size, size, generator=g, dtype=torch.float64)
    ir = torch.rand(batch, 1, size, size, generator=g, dtype=torch.float64)
    names = ["logits"] + [f"out{k}" for k in range(1, 7)] + ["fused"]
    for mode in modes:
        official.load_state_dict(mine.state_dict())
        official.train(mode == "train")
        mine.train(mode == "train")
        rec_o, hooks_o = record_blocks(official, blocks)
        rec_m, hooks_m = record_blocks(mine, blocks)
        out_o, out_m = official(vi, ir), mine(vi, ir)
        for h in hooks_o + hooks_m:
            h.remove()
        cot = [torch.randn(t.shape, generator=g, dtype=torch.float64) for t in out_m]
        worst = max(max_relative(a, b) for a, b in zip(out_m, out_o))
        detail = ", ".join(f"{n} {max_relative(a, b):.1e}" for n, a, b in zip(names, out_m, out_o))
        print(f"[{label}, {mode}] outputs max |mine - official| / max |official|: {worst:.2e} ({detail})")
        official.zero_grad(set_to_none=True)
        mine.zero_grad(set_to_none=True)
        sum((o * c).sum() for o, c in zip(out_o, cot)).backward()
        sum((o * c).sum() for o, c in zip(out_m, cot)).backward()
        grads_o = dict(official.named_parameters())
        pairs, unused = [], []
        for name, p in mine.named_parameters():
            go, gm = grads_o[name].grad, p.grad
            if go is None and gm is None:
                unused.append(name)
                continue
            pairs.append((name, torch.zeros_like(p) if gm is None else gm, torch.zeros_like(p) if go is None else go))
        overall = max(go.abs().max().item() for _, _, go in pairs)
        worst, worst_name, vanishing, worst_vanishing = 0.0, "", 0, 0.0
        for name, gm, go in pairs:
            scale = go.abs().max().item()
            diff = (gm - go).abs().max().item()
            if scale <= 1e-9 * overall:      # e.g. the bias of a conv followed by BatchNorm in training: exactly 0 in theory
                vanishing += 1
                worst_vanishing = max(worst_vanishing, diff / overall)
            elif diff / scale > worst:
                worst, worst_name = diff / scale, name
        print(f"[{label}, {mode}] parameter gradients ({len(pairs)} tensors): worst max|mine - official| / max|official| "
              f"{worst:.2e} ({worst_name}); {vanishing} tensors with a vanishing gradient (|g| <= 1e-9 of the largest), "
              f"their difference <= {worst_vanishing:.1e} of the largest gradient; {len(unused)} parameters get no gradient in either")
        if mode == "train":
            bo = dict(official.named_buffers())
            diff = [n for n, b in mine.named_buffers() if not torch.equal(b, bo[n]) and
                    (b.dtype == torch.int64 or max_relative(b, bo[n]) > 1e-12)]
            print(f"[{label}, train] BN buffers after the step differing: {len(diff)} "
                  f"({sorted(set(n.rsplit('.', 2)[0] for n in diff))[:12]})")
        for n in blocks:
            a_list, b_list = rec_m[n], rec_o[n]
            if len(a_list) != len(b_list):
                print(f"   block {n}: called {len(a_list)} times here, {len(b_list)} times officially")
                continue
            r = max(max_relative(a, b) for ta, tb in zip(a_list, b_list) for a, b in zip(ta, tb))
            print(f"   block {n} ({mode}, {len(a_list)} call{'s' if len(a_list) > 1 else ''}): {r:.1e}")
    return unused


def compare_losses(o):
    losses, utils = o["losses"], o["utils"]
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 9, 16, 16, generator=g, dtype=torch.float64) * 2
    labels = torch.randint(0, 9, (2, 16, 16), generator=g)
    labels[0, :3] = 255
    confident = torch.nn.functional.one_hot(labels.clamp(max=8), 9).permute(0, 3, 1, 2).double() * 6 + logits * 0.3
    for n_min, x in ((64, logits), (64, confident), (400, confident)):
        off = losses.OhemCELoss(0.75, n_min, "cpu")(x, labels)
        mine = ref.ohem_ce(x, labels, 0.75, n_min)
        ce = torch.sort(torch.nn.functional.cross_entropy(x, labels, ignore_index=255, reduction="none").flatten(), descending=True)[0]
        branch = "threshold" if ce[n_min] > -torch.log(torch.tensor(0.75)) else "top-n_min"
        print(f"[losses] OHEM n_min {n_min} ({branch} branch): official {off.item():.12g}, transcription {mine.item():.12g}")
    teacher = torch.randn(2, 9, 16, 16, generator=g, dtype=torch.float64)
    off = losses.CriterionKD(temperature=4)(logits, teacher)
    print(f"[losses] KD T=4: official {off.item():.12g}, transcription {ref.kd_loss(logits, teacher, 4.0).item():.12g}")
    img = lambda c: torch.rand(2, c, 16, 16, generator=g)   # float32: Sobelxy keeps float32 kernels
    vi, ir, fu = img(1), img(1), img(1)
    sob = losses.Sobelxy("cpu")
    ox, oy = sob(vi)
    mx, my = ref.sobel_abs(vi)
    print(f"[losses] Sobelxy max difference: {max((ox - mx).abs().max().item(), (oy - my).abs().max().item()):.1e}")
    fl = losses.Fusionloss("cpu")
    _, in_o, grad_o = fl(vi, ir, fu, mask=torch.zeros_like(fu))
    in_m, grad_m = ref.fusion_loss(fu, vi, ir)
    print(f"[losses] Fusionloss with mask 0 (= paper Eq. 15-16): intensity {in_o.item():.12g} vs {in_m.item():.12g}, "
          f"gradient {grad_o.item():.12g} vs {grad_m.item():.12g}")
    rgb = img(3)
    y_o, cb_o, cr_o = utils.RGB2YCrCb(rgb)
    y_m, cb_m, cr_m = ref.rgb_to_ycbcr(rgb)
    back_o = utils.YCbCr2RGB(y_o, cb_o, cr_o)
    back_m = ref.ycbcr_to_rgb(y_m, cb_m, cr_m)
    print(f"[losses] RGB2YCrCb / YCbCr2RGB max difference: "
          f"{max((y_o - y_m).abs().max(), (cb_o - cb_m).abs().max(), (cr_o - cr_m).abs().max(), (back_o - back_m).abs().max()).item():.1e}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--snapshot", default="/work/.mirror/Abraham-Einstein+MAFS/repo")
    parser.add_argument("--packages", default="/tmp/mafs_pkgs")
    parser.add_argument("--skip-official", action="store_true", help="skip the ResNet-152 comparison")
    parser.add_argument("--skip-minimal", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(2)
    folder = tempfile.mkdtemp(prefix="mafs_official_")
    extract_official(args.snapshot, folder)
    o = import_official(folder, args.packages)
    compare_losses(o)
    torch.manual_seed(0)
    from dataclasses import replace
    minimal = replace(ref.MINIMAL, eaef_gate="released")
    if not args.skip_minimal:
        compare_networks("minimal", minimal_official_network(o), ref.NetworkStage2(minimal), BLOCKS)
    if not args.skip_official:
        official_cfg = replace(ref.OFFICIAL, eaef_gate="released")
        compare_networks("official", o["builder"].NetworkStage2(), ref.NetworkStage2(official_cfg),
                         [b for b in BLOCKS if "layer" not in b])


if __name__ == "__main__":
    main()
