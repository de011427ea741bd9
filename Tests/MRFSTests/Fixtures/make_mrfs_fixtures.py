"""Generates the MRFS parity fixtures from mrfs_reference.py (no official code needed).

    python3 make_mrfs_fixtures.py            # writes mrfs_minimal.safetensors, mrfs_blocks.safetensors
    python3 make_mrfs_fixtures.py --check    # regenerates in memory and compares with the files

Every reference value is computed in float64 from float32-rounded weights and inputs, then rounded
to float32 for storage; the float32 PyTorch run's distance from it is printed (what a float32
implementation can expect). README.md beside this file documents every tensor name.
"""
import argparse
import json
import math
import os
import sys
from dataclasses import asdict, replace

import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mrfs_reference as ref  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
MINIMAL_FILE = os.path.join(HERE, "mrfs_minimal.safetensors")
BLOCKS_FILE = os.path.join(HERE, "mrfs_blocks.safetensors")

BATCH, HEIGHT, WIDTH, CLASSES = 2, 64, 80, 9
DATASET = "MFNet"
# Sample 0 is padded as TrainPre pads a down-scaled image: margins (top, bottom, left, right).
SAMPLE0_MARGINS = (3, 3, 2, 2)


# ------------------------------------------------------------------------------------ inputs --

def formula(shape, f):
    """float64 tensor with value f(i) at flat row-major index i, rounded to float32 (then float64)."""
    n = math.prod(shape)
    return torch.tensor([f(i) for i in range(n)], dtype=torch.float64).reshape(shape).float().double()


def rgb_formula(i):
    return 0.5 + 0.4 * math.sin(0.1 * i) * math.cos(0.037 * i)


def ir_formula(i):
    return 0.5 + 0.45 * math.sin(0.043 * i + 1.0) * math.cos(0.0071 * i)


def label_formula(i, classes):
    return 255 if i % 11 == 0 else (i * 7 + (i // 13) * 3) % classes


def valid_mask(batch, height, width, margins_sample0):
    """(B, 3, H, W) 1 inside the image, 0 on padding; sample 0 has the margins, others none."""
    mask = torch.ones(batch, 3, height, width, dtype=torch.float64)
    top, bottom, left, right = margins_sample0
    mask[0] = 0
    mask[0, :, top:height - bottom, left:width - right] = 1
    return mask


def network_inputs(batch=BATCH, height=HEIGHT, width=WIDTH, classes=CLASSES, margins=SAMPLE0_MARGINS):
    """rgb[i] = 0.5 + 0.4 sin(0.1 i) cos(0.037 i) over the flat (B,3,H,W) index;
    grey[i] = 0.5 + 0.45 sin(0.043 i + 1) cos(0.0071 i) over the flat (B,1,H,W) index, ir = grey
    in all three channels; both times the mask (zero padding, as the dataloader pads);
    labels[i] = 255 if i % 11 == 0 else (7 i + 3 (i // 13)) % K over the flat (B,H,W) index, and
    255 where the mask is 0."""
    mask = valid_mask(batch, height, width, margins)
    rgb = formula((batch, 3, height, width), rgb_formula) * mask
    grey = formula((batch, 1, height, width), ir_formula)
    ir = grey.repeat(1, 3, 1, 1) * mask
    n = batch * height * width
    labels = torch.tensor([label_formula(i, classes) for i in range(n)], dtype=torch.int64).reshape(batch, height, width)
    labels[mask[:, 0] == 0] = 255
    return rgb, ir, mask, labels


def cotangent(shape, phase):
    """Deterministic upstream gradient for block VJPs: 0.3 sin(0.37 i + phase) + 0.05."""
    return formula(shape, lambda i: 0.3 * math.sin(0.37 * i + phase) + 0.05)


def tangent(shape, phase):
    """Deterministic input tangent for block JVPs: 0.2 cos(0.29 i + phase)."""
    return formula(shape, lambda i: 0.2 * math.cos(0.29 * i + phase))


# ------------------------------------------------------------------------------- the network --

QUADRATIC_PHASE = {"quadratic": ref.FIXTURE_QUADRATIC_PHASE, "project": 0.0}
SCHEME = "quadratic"  # set by --scheme


def build_model(dtype, train_mode, classes=CLASSES):
    model = ref.MRFS(replace(ref.CONFIGS["minimal"], classes=classes))
    ref.deterministic_(model, QUADRATIC_PHASE[SCHEME])  # float32 rounding of the float64 formula
    model = model.to(dtype)
    model.train(train_mode)
    ref.set_stochastic(model, False)  # no drop path, no Dropout2d, in either mode
    return model


def run_network(model, rgb, ir, mask, labels, constants):
    taps = {}
    logits, fused = model(rgb, ir, taps)
    logits.retain_grad()
    fused.retain_grad()
    losses = ref.mrfs_loss(fused, logits, rgb, ir, mask, labels, constants)
    model.zero_grad(set_to_none=True)
    losses["total"].backward()
    grads = {name: p.grad.detach().clone() for name, p in model.named_parameters()}
    return {"logits": logits.detach(), "fused": fused.detach(), "taps": {k: v.detach() for k, v in taps.items()},
            "losses": {k: v.detach() for k, v in losses.items()}, "grads": grads,
            "grad_output": {"logits": logits.grad.detach(), "fused": fused.grad.detach()}}


# Train-mode gradients are stored for these parameters only (whole tensors): the two heads, where
# the batch-statistics BatchNorms are, and the first layer of each stream plus stage-1 IGM/PC-Att,
# whose gradients pass back through every BatchNorm, every stage and both heads. The eval-mode
# part of the file has every parameter's gradient.
def train_gradient_names(names):
    keep = ("decode_head.", "aux_head.", "backbone.patch_embed1.", "backbone.extra_patch_embed1.",
            "backbone.IGMAVCs.0.", "backbone.PCASCs.0.")
    return [n for n in names if n.startswith(keep)]


# With BatchNorm on batch statistics, a per-channel constant added before a BN cancels exactly, so
# these parameters' train-mode gradients are 0 in exact arithmetic (rounding noise in practice).
# Each adds the same vector at every position, and only affine maps follow it up to a head BN:
# conv biases right before a BN; decode_head.linear_c*.proj.bias; PC-Att's last projection biases;
# the LayerNorm bias of CA_x2toX1's key/value source (keys shift by a constant, which softmax
# ignores; values shift by a constant, which passes through); in stage 4 (sr 1, no SR conv/LN) also
# SA_x2.proj.bias, for the same reason. They are not stored; the test asserts them ~0 instead.
# network_fixture checks this list against the float64 run.
TRAIN_ZERO_GRADIENTS = sorted(
    [f"aux_head.PointConv_{k}_{s}.pconv.0.bias" for k in range(1, 5) for s in ("rgb", "ir")]
    + ["aux_head.CNN_fuse.0.bias", "decode_head.linear_fuse.0.bias"]
    + [f"decode_head.linear_c{k}.proj.bias" for k in range(1, 5)]
    + [f"backbone.PCASCs.{k}.{name}" for k in range(4) for name in ("proj.bias", "CA_x2toX1.proj.bias")]
    + [f"backbone.PCASCs.{k}.CA_x2toX1.norm.bias" for k in range(3)]
    + ["backbone.PCASCs.3.SA_x2.proj.bias"])


def network_fixture(dtype):
    rgb, ir, mask, labels = network_inputs()
    rgb, ir, mask = rgb.to(dtype), ir.to(dtype), mask.to(dtype)
    constants = ref.DATASET_CONSTANTS[DATASET]
    out = {}
    evaluation = run_network(build_model(dtype, False), rgb, ir, mask, labels, constants)
    out["input.rgb"], out["input.ir"], out["input.mask"], out["input.labels"] = rgb, ir, mask, labels
    out["logits"], out["fused"] = evaluation["logits"], evaluation["fused"]
    out["logits_quarter"] = evaluation["taps"].pop("logits_quarter")
    for name, t in evaluation["taps"].items():
        out[f"tap.{name}"] = t
    for name, t in evaluation["losses"].items():
        out[f"loss.{name}"] = t
    for name, t in evaluation["grad_output"].items():
        out[f"grad_output.{name}"] = t
    for name, t in evaluation["grads"].items():
        out[f"grad.{name}"] = t

    model = build_model(dtype, True)
    training = run_network(model, rgb, ir, mask, labels, constants)
    out["train.logits_quarter"], out["train.fused"] = training["taps"]["logits_quarter"], training["fused"]
    for name, t in training["losses"].items():
        out[f"train.loss.{name}"] = t
    for name in train_gradient_names(list(training["grads"])):
        if name not in TRAIN_ZERO_GRADIENTS:
            out[f"train.grad.{name}"] = training["grads"][name]
    largest = max(g.abs().max().item() for g in training["grads"].values())
    zero = sorted(n for n, g in training["grads"].items() if g.abs().max().item() <= 1e-12 * largest)
    if dtype == torch.float64 and SCHEME == "quadratic":  # the project scheme adds near-zero ones (README)
        assert zero == TRAIN_ZERO_GRADIENTS, (sorted(set(zero) ^ set(TRAIN_ZERO_GRADIENTS)))
    out["_train_zero_gradient_ratio"] = max(training["grads"][n].abs().max().item() for n in TRAIN_ZERO_GRADIENTS) / largest
    for name, t in model.state_dict().items():
        if name.endswith(("running_mean", "running_var")):
            out[f"train.{name}"] = t.detach().clone()
    return out


# --------------------------------------------------------------------------------- the blocks --

def block_fixture(prefix, module, inputs, call, dtype):
    """Stores the block's deterministic parameters, inputs, outputs, a JVP and a VJP."""
    ref.deterministic_(module, QUADRATIC_PHASE[SCHEME])
    module = module.to(dtype)
    out = {}
    for name, t in module.state_dict().items():
        out[f"{prefix}.param.{name}"] = t.detach().clone()
    xs = [x.detach().clone().to(dtype).requires_grad_(True) for x in inputs]  # fresh leaves: no shared .grad
    for j, x in enumerate(xs):
        out[f"{prefix}.input.{j}"] = x.detach().clone()
    ys = call(module, *xs)
    for j, y in enumerate(ys):
        out[f"{prefix}.output.{j}"] = y.detach().clone()
    # VJP: loss = sum_j <y_j, cotangent_j>
    cts = [cotangent(tuple(y.shape), phase=0.5 + j).to(dtype) for j, y in enumerate(ys)]
    module.zero_grad(set_to_none=True)
    sum((y * c).sum() for y, c in zip(ys, cts)).backward()
    for j, c in enumerate(cts):
        out[f"{prefix}.cotangent.{j}"] = c
    for j, x in enumerate(xs):
        out[f"{prefix}.vjp.input.{j}"] = x.grad.detach().clone()
    for name, p in module.named_parameters():
        out[f"{prefix}.vjp.param.{name}"] = p.grad.detach().clone()
    # JVP with respect to the inputs (parameters held fixed)
    tans = [tangent(tuple(x.shape), phase=0.25 + j).to(dtype) for j, x in enumerate(xs)]
    primals = tuple(x.detach() for x in xs)
    _, jvps = torch.func.jvp(lambda *a: tuple(call(module, *a)), primals, tuple(tans))
    for j, (t, jv) in enumerate(zip(tans, jvps)):
        out[f"{prefix}.tangent.{j}"] = t
        out[f"{prefix}.jvp.output.{j}"] = jv.detach().clone()
    return out


def blocks_fixture(dtype):
    out = {}
    torch.manual_seed(0)  # unused by the formulas; only so nothing random could leak in
    C = 8
    x1 = formula((2, C, 5, 6), lambda i: math.sin(0.13 * i + 0.3) + 0.2 * math.cos(0.71 * i))
    x2 = formula((2, C, 5, 6), lambda i: math.cos(0.11 * i - 0.4) - 0.3 * math.sin(0.53 * i))
    out.update(block_fixture("igm", ref.IGMAVC(C, reduction=4), [x1, x2], lambda m, a, b: m(a, b), dtype))
    out.update(block_fixture("pc_sr2", ref.PCASC(C, num_heads=2, sr_ratio=2), [x1, x2],
                             lambda m, a, b: (m(a, b),), dtype))
    y1 = formula((2, C, 3, 4), lambda i: math.sin(0.17 * i + 1.1))
    y2 = formula((2, C, 3, 4), lambda i: math.cos(0.23 * i + 0.7) * 0.8)
    out.update(block_fixture("pc_sr1", ref.PCASC(C, num_heads=2, sr_ratio=1), [y1, y2],
                             lambda m, a, b: (m(a, b),), dtype))

    # The losses alone, for each dataset's constants, at 2x3x12x16 with 5 classes.
    b, h, w, k = 2, 12, 16, 5
    rgb, ir, mask, labels = network_inputs(b, h, w, k, margins=(1, 2, 2, 1))
    fused = formula((b, 3, h, w), lambda i: 0.5 + 0.45 * math.sin(0.19 * i + 0.6))
    logits = formula((b, k, h, w), lambda i: 2.0 * math.sin(0.07 * i) + math.cos(0.31 * i))
    rgb, ir, mask, fused, logits = (t.to(dtype) for t in (rgb, ir, mask, fused, logits))
    out["loss.input.fused"], out["loss.input.logits"] = fused, logits
    out["loss.input.rgb"], out["loss.input.ir"], out["loss.input.mask"], out["loss.input.labels"] = rgb, ir, mask, labels
    for dataset in ("MFNet", "FMB", "PST900"):
        constants = ref.DATASET_CONSTANTS[dataset]
        f = fused.clone().requires_grad_(True)
        z = logits.clone().requires_grad_(True)
        terms = ref.mrfs_loss(f, z, rgb, ir, mask, labels, constants)
        terms["total"].backward()
        r_vis, r_ir = ref.fusion_targets(rgb, ir, constants)
        out[f"loss.{dataset}.target_vis"], out[f"loss.{dataset}.target_ir"] = r_vis, r_ir
        for name, t in terms.items():
            out[f"loss.{dataset}.{name}"] = t.detach()
        out[f"loss.{dataset}.grad.fused"] = f.grad.detach().clone()
        out[f"loss.{dataset}.grad.logits"] = z.grad.detach().clone()
    return out


# ------------------------------------------------------------------------------------ output --

def to_storage(tensors):
    """float -> float32; labels and the mask -> uint8 (exact); everything contiguous."""
    stored = {}
    for name, t in tensors.items():
        if name.endswith((".labels", ".mask")):
            stored[name] = t.to(torch.uint8).contiguous()
        else:
            stored[name] = t.detach().to(torch.float32).contiguous()
    return stored


def is_gradient(name):
    return ".grad." in "." + name or ".vjp." in name or ".jvp." in name


def relative_error(a, b):
    """max |a - b| / max |b| (max |a - b| when b is all zero)."""
    scale = b.abs().max().item()
    diff = (a - b).abs().max().item()
    return diff / scale if scale > 0 else diff


def float32_errors(reference, single):
    """For every stored float tensor: max|float32 PyTorch - float64 reference| / max|reference|."""
    return {n: relative_error(single[n].double(), reference[n].double()) for n in reference
            if not n.endswith((".labels", ".mask")) and not n.startswith("_")}


def metadata(kind, errors, extras):
    cfg = replace(ref.CONFIGS["minimal"], classes=CLASSES)
    meta = {
        "generator": "make_mrfs_fixtures.py", "reference": "mrfs_reference.py", "torch": torch.__version__,
        "weight_scheme": SCHEME, "quadratic_phase": repr(QUADRATIC_PHASE[SCHEME]),
        "precision": "computed in float64 from float32-rounded weights and inputs, stored as float32",
        "float32_pytorch_error": json.dumps({n: float(f"{e:.2e}") for n, e in sorted(errors.items())}),
    }
    if kind == "minimal":
        meta.update({
            "config": json.dumps(asdict(cfg)), "dataset": DATASET,
            "dataset_constants": json.dumps(asdict(ref.DATASET_CONSTANTS[DATASET])),
            "batch": str(BATCH), "height": str(HEIGHT), "width": str(WIDTH),
            "sample0_margins_top_bottom_left_right": json.dumps(SAMPLE0_MARGINS),
            "eval": "model.eval(): BatchNorm uses the deterministic running stats; drop path and Dropout2d off",
            "train": "model.train() with drop path and Dropout2d off: BatchNorm uses batch statistics "
                     "(biased variance) and updates running stats (momentum 0.01, unbiased variance)",
            "train_zero_gradients": json.dumps(TRAIN_ZERO_GRADIENTS),
            "train_zero_gradient_ratio": f"{extras['_train_zero_gradient_ratio']:.2e}",
        })
    return meta


def summarise(errors, label):
    grads = sorted((e, n) for n, e in errors.items() if is_gradient(n))
    others = sorted((e, n) for n, e in errors.items() if not is_gradient(n))
    line = f"{label}: float32 PyTorch vs float64 reference (max|d|/max|ref|): outputs and losses worst {others[-1][0]:.1e} ({others[-1][1]})"
    if grads:
        line += (f"; {len(grads)} gradient tensors: median {grads[len(grads) // 2][0]:.1e}, worst {grads[-1][0]:.1e} ({grads[-1][1]}), "
                 f"over 1e-5: {sum(e > 1e-5 for e, _ in grads)}, over 1e-4: {sum(e > 1e-4 for e, _ in grads)}")
    print(line)


def main():
    global SCHEME
    parser = argparse.ArgumentParser()
    parser.add_argument("--check", action="store_true", help="compare with the committed files instead of writing")
    parser.add_argument("--scheme", choices=sorted(QUADRATIC_PHASE), default="quadratic",
                        help="weight scheme: 'quadratic' (the fixtures') or 'project' (SegFormer's, rank-2 weights)")
    parser.add_argument("--out", default=HERE, help="folder to write to (default: beside this script)")
    args = parser.parse_args()
    SCHEME = args.scheme
    torch.set_num_threads(2)
    outputs = {"mrfs_minimal.safetensors": (network_fixture, "minimal"), "mrfs_blocks.safetensors": (blocks_fixture, "blocks")}
    for filename, (make, kind) in outputs.items():
        path = os.path.join(args.out, filename)
        reference = make(torch.float64)
        single = make(torch.float32)
        extras = {n: reference.pop(n) for n in list(reference) if n.startswith("_")}
        errors = float32_errors(reference, single)
        summarise(errors, filename)
        if extras:
            print(f"  train-mode gradients that are 0 in exact arithmetic: {len(TRAIN_ZERO_GRADIENTS)}, "
                  f"largest |g| / largest train |g| = {extras['_train_zero_gradient_ratio']:.1e}")
        stored = to_storage(reference)
        for name, t in stored.items():
            if is_gradient(name) and t.abs().max().item() == 0:
                print(f"warning: {name} is all zero")
        if args.check:
            committed = load_file(path)
            assert set(committed) == set(stored), set(committed) ^ set(stored)
            bad = [n for n in stored if not torch.equal(committed[n], stored[n])]
            print(f"{filename}: {len(stored)} tensors, {len(bad)} differ bit-wise" + (f": {bad[:5]}" if bad else ""))
        else:
            save_file(stored, path, metadata=metadata(kind, errors, extras))
            print(f"wrote {path}: {len(stored)} tensors, {os.path.getsize(path):,} bytes")


if __name__ == "__main__":
    main()
