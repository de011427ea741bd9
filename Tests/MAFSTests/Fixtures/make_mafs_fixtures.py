# Writes mafs_minimal.safetensors, the parity fixture of the MAFS plugin (README.md lists every key).
#
#   python3 make_mafs_fixtures.py            # ~1 minute on 2 cores; prints the figures quoted in README.md
#
# The minimal configuration, 9 classes, batch 2, 64x64. Weights are not stored: every parameter and buffer
# comes from its state-dict name (mafs_reference.deterministic_value, the project's DeterministicValues scheme
# with the Glow LU exception), rounded to float32. Everything is computed in float64 from those float32
# weights and float32 inputs, then stored as float32 (labels as int64); the script also runs the same
# computation in float32 PyTorch and prints how far that lands from the float64 reference, which is the
# scale of error a float32 implementation should expect.
import json
import math
import os
import sys
from dataclasses import asdict

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import mafs_reference as ref  # noqa: E402

CFG = ref.MINIMAL
LOSS = ref.Stage2LossConfig()
B, H, W = 2, 64, 64
K = CFG.num_classes
DWA_HISTORY = [[0.80, 3.00], [0.60, 2.70]]        # raw [L_f, L_s] of two earlier iterations
OUTPUT_NAMES = ["logits"] + [f"out{k}" for k in range(1, 7)] + ["fused"]
BLOCKS = [  # fixture name, module inside the minimal NetworkStage2 (weights by its full names), input shapes
    ("eaef_per_sample", "encoder.EAEF3", [(B, 32, 8, 8)]),
    ("eaef_released", "encoder.EAEF3", [(B, 32, 8, 8)]),
    ("cam", "encoder.high_fuse4", [(B, 32, 8, 8), (B, 32, 8, 8)]),
    ("sdfm", "encoder.low_fuse2", [(B, 16, 16, 16), (B, 16, 16, 16)]),
    ("sim", "encoder.SIM1", [(B, 8, 16, 16), (B, 16, 8, 8)]),
    ("invblock", "fuse_decoder.fuse_decoder.operations.0", [(B, 8, 8, 8)]),
    ("mdta", "seg_decoder.invpt.invpt_stages.1.blocks.0.attn", [(B, 16, 8, 8)]),
    ("leff", "seg_decoder.invpt.invpt_stages.1.blocks.0.ffn", [(B, 16, 8, 8)]),
]


def make_inputs():
    g = torch.Generator().manual_seed(2025)
    smooth = lambda c: F.interpolate(torch.rand(B, c, 8, 8, generator=g), size=(H, W), mode="bilinear", align_corners=False)
    vi = 0.6 * smooth(3) + 0.4 * torch.rand(B, 3, H, W, generator=g)
    ir = 0.6 * smooth(1) + 0.4 * torch.rand(B, 1, H, W, generator=g)
    cells = torch.randint(0, K, (B, 1, 8, 8), generator=g).float()
    label = F.interpolate(cells, size=(H, W), mode="nearest")[:, 0].long()
    label[0, 40:48, 8:20] = 255                   # an ignored region
    label[1, 0:3, :] = 255
    teacher = 2 * torch.randn(B, K, H, W, generator=g)
    return vi, ir, label, teacher, g


def network(dtype, train):
    torch.manual_seed(0)
    net = ref.load_deterministic_state(ref.NetworkStage2(CFG)).to(dtype)
    return net.train(train)


def stage2_pass(dtype, train, vi, ir, label, teacher):
    net = network(dtype, train)
    vi, ir, teacher = vi.to(dtype), ir.to(dtype), teacher.to(dtype).requires_grad_(True)
    outputs = net(vi, ir)
    lambdas = ref.dwa_weights(DWA_HISTORY, LOSS.dwa_temperature)
    terms, bi, bd = ref.stage2_losses(outputs, vi, ir, label, teacher, lambdas, LOSS)
    terms["total"].backward()
    grads = {n: (p.grad if p.grad is not None else torch.zeros_like(p)) for n, p in net.named_parameters()}
    unused = [n for n, p in net.named_parameters() if p.grad is None]
    _, cb, cr = ref.rgb_to_ycbcr(vi)
    fused_rgb = ref.ycbcr_to_rgb(outputs[-1], cb, cr)
    result = dict(outputs=dict(zip(OUTPUT_NAMES, outputs), fused_rgb=fused_rgb), terms=terms, grads=grads,
                  teacher_grad=teacher.grad, buffers=dict(net.named_buffers()), unused=unused, lambdas=lambdas,
                  bi=bi, bd=bd)
    return result


def max_relative(a, b):
    return ((a.double() - b.double()).abs().max() / b.double().abs().max().clamp_min(1e-30)).item()


def report_float32(label, r64, r32):
    outs = ", ".join(f"{n} {max_relative(r32['outputs'][n], r64['outputs'][n]):.1e}" for n in OUTPUT_NAMES)
    loss = max(abs(r32["terms"][n].item() - r64["terms"][n].item()) / abs(r64["terms"][n].item()) for n in r64["terms"])
    num = sum(((r32["grads"][n].double() - g) ** 2).sum().item() for n, g in r64["grads"].items())
    den = sum((g ** 2).sum().item() for g in r64["grads"].values())
    per = sorted(((((r32["grads"][n].double() - g).norm() / g.norm()).item(), n)
                  for n, g in r64["grads"].items() if g.norm() > 0), reverse=True)
    above = sum(1 for r, _ in per if r > 1e-3)
    print(f"[{label}] float32 PyTorch vs float64 reference: outputs max-relative ({outs}); losses <= {loss:.1e}; "
          f"gradients: all parameters together |dg| / |g| = {math.sqrt(num / den):.1e}, per tensor worst "
          f"{per[0][0]:.1e} ({per[0][1]}), median {per[len(per) // 2][0]:.1e}, {above} of {len(per)} tensors above 1e-3")


def stage1_fixture(vi, ir, g, tensors):
    draws = {"p": torch.rand(B, generator=g), "cells": torch.rand(B, 6, 8, 8, generator=g),
             "swap": torch.tensor([0.25, 0.75]),   # sample 0 keeps (A, B), sample 1 swaps
             "noise_vi": torch.rand(B, 3, H, W, generator=g), "noise_ir": torch.rand(B, 1, H, W, generator=g)}
    d64 = {k: v.double() for k, v in draws.items()}
    vi64, ir64 = vi.double(), ir.double()
    m_vi, m_ir, vi_in, ir_in = ref.stage1_masks(d64, vi64, ir64)
    for k, v in draws.items():
        tensors[f"stage1.draws.{k}"] = v
    tensors.update({"stage1.mask.vi": m_vi, "stage1.mask.ir": m_ir, "stage1.input.vi": vi_in, "stage1.input.ir": ir_in})
    both = (m_vi + m_ir).min().item()
    print(f"[stage I] p = {[round(0.1 + x / 1.12, 4) for x in draws['p'].tolist()]}, kept fraction vi "
          f"{m_vi.mean().item():.3f}, ir {m_ir.mean().item():.3f}, min(m_vi + m_ir) = {both:.0f}")
    for head in ("inn", "rec_decoder"):
        torch.manual_seed(0)
        net = ref.load_deterministic_state(ref.NetworkStage1(CFG, ir_head=head)).double().eval()
        rec_vi, rec_ir = net(vi_in, ir_in)
        terms = ref.stage1_losses(rec_vi, rec_ir, vi64, ir64, m_vi, m_ir)
        prefix = "stage1" if head == "inn" else "stage1_rec_decoder"
        if head == "inn":
            gv, gi = torch.autograd.grad(terms["total"], [rec_vi, rec_ir])
            tensors.update({"stage1.output.rec_vi": rec_vi, "stage1.grad_output.rec_vi": gv,
                            "stage1.grad_output.rec_ir": gi})
        tensors[f"{prefix}.output.rec_ir"] = rec_ir
        for k, v in terms.items():
            tensors[f"{prefix}.loss.{k}"] = v
        print(f"[stage I, ir head {head}] " + ", ".join(f"{k} {v.item():.6f}" for k, v in terms.items()))


def block_fixtures(g, tensors):
    net = network(torch.float64, False)
    modules = dict(net.named_modules())
    for fixture, name, shapes in BLOCKS:
        block = modules[name]
        if fixture.startswith("eaef"):
            block.gate = fixture[len("eaef_"):]
        inputs = [torch.randn(s, generator=g).double().requires_grad_(True) for s in shapes]
        out = block(*inputs)
        cot = torch.randn(out.shape, generator=g).double()
        params = dict(block.named_parameters())
        grads = torch.autograd.grad((out * cot).sum(), inputs + list(params.values()))
        p = f"block.{fixture}"
        for i, x in enumerate(inputs):
            tensors[f"{p}.input.{i}"] = x.detach()
            tensors[f"{p}.grad_input.{i}"] = grads[i]
        tensors[f"{p}.output"] = out.detach()
        tensors[f"{p}.cotangent"] = cot
        for (n, _), gp in zip(params.items(), grads[len(inputs):]):
            tensors[f"{p}.grad.{n}"] = gp
        if fixture == "invblock":
            back = block.inverse(out)
            tensors[f"{p}.inverse_of_output"] = back.detach()
            print(f"[block invblock] max |inverse(forward(x)) - x| = {(back - inputs[0]).abs().max().item():.1e} (float64)")
            y = torch.randn(shapes[0], generator=g).double().requires_grad_(True)
            x = block.inverse(y)
            cot2 = torch.randn(x.shape, generator=g).double()
            (gy,) = torch.autograd.grad((x * cot2).sum(), [y])
            tensors.update({"block.invblock_inverse.input.0": y.detach(), "block.invblock_inverse.output": x.detach(),
                            "block.invblock_inverse.cotangent": cot2, "block.invblock_inverse.grad_input.0": gy})
            w = block.invconv.weight().detach()
            print(f"[block invblock] cond(W) of the 1x1 convolution: {torch.linalg.cond(w).item():.2f}")
        if fixture == "eaef_released":
            block.gate = CFG.eaef_gate


def loss_cases(g, tensors):
    """Small OHEM cases on both branches (the network fixture only reaches the threshold branch)."""
    logits = 2 * torch.randn(2, K, 8, 8, generator=g).double()
    labels = torch.randint(0, K, (2, 8, 8), generator=g)
    labels[0, 0, :] = 255
    confident = 6 * F.one_hot(labels.clamp(max=K - 1), K).permute(0, 3, 1, 2).double() + 0.3 * logits
    for case, x, n_min in (("threshold", logits, 16), ("top_n_min", confident, 16)):
        x = x.clone().requires_grad_(True)
        value = ref.ohem_ce(x, labels, LOSS.ohem_thresh, n_min)
        (gx,) = torch.autograd.grad(value, [x])
        p = f"loss_case.ohem_{case}"
        tensors.update({f"{p}.logits": x.detach(), f"{p}.labels": labels, f"{p}.n_min": torch.tensor(n_min),
                        f"{p}.value": value.detach(), f"{p}.grad_logits": gx})
        ce = F.cross_entropy(x, labels, ignore_index=255, reduction="none").flatten().sort(descending=True)[0]
        print(f"[loss case ohem_{case}] value {value.item():.6f}; CE[n_min] = {ce[n_min].item():.4f} vs -log 0.75 = 0.2877")


def dwa_example():
    print("[DWA / alpha-fair worked example] T = 500, K = 2, alpha = 0.8")
    history = []
    for it, (lf, ls) in enumerate([(0.80, 3.00), (0.60, 2.70), (0.55, 2.00), (0.50, 2.10)], start=1):
        lam = ref.dwa_weights(history, 500.0)
        ff, fs = ref.alpha_fair(torch.tensor(lf, dtype=torch.float64)).item(), ref.alpha_fair(torch.tensor(ls, dtype=torch.float64)).item()
        print(f"  iteration {it}: L_f {lf}, L_s {ls}; lambda = ({lam[0]:.10f}, {lam[1]:.10f}); "
              f"5 L^0.2 = ({ff:.10f}, {fs:.10f}); total = {lam[0] * ff + lam[1] * fs:.10f}; "
              f"d total / d L = ({lam[0] * lf ** -0.8:.10f}, {lam[1] * ls ** -0.8:.10f})")
        history.append([lf, ls])


def main():
    torch.set_num_threads(2)
    vi, ir, label, teacher, g = make_inputs()
    tensors = {"input.vi": vi, "input.ir": ir, "input.label": label, "input.teacher_logits": teacher,
               "dwa.history": torch.tensor(DWA_HISTORY), "dwa.lambdas": torch.tensor(ref.dwa_weights(DWA_HISTORY, 500.0))}
    results = {}
    for mode in ("eval", "train"):
        r64 = stage2_pass(torch.float64, mode == "train", vi, ir, label, teacher)
        r32 = stage2_pass(torch.float32, mode == "train", vi, ir, label, teacher)
        report_float32(mode, r64, r32)
        results[mode] = r64
        # How far float32 PyTorch lands from the reference: the noise floor a float32 implementation shares.
        for n in r64["outputs"]:
            tensors[f"{mode}.float32_deviation.output.{n}"] = torch.tensor(max_relative(r32["outputs"][n], r64["outputs"][n]))
        for n, g64 in r64["grads"].items():
            tensors[f"{mode}.float32_deviation.grad.{n}"] = (r32["grads"][n].double() - g64).norm()
        for n, t in r64["outputs"].items():
            tensors[f"{mode}.output.{n}"] = t
        for n, t in r64["terms"].items():
            tensors[f"{mode}.loss.{n}"] = t
        for n, t in r64["grads"].items():
            tensors[f"{mode}.grad.{n}"] = t
        if mode == "eval":
            tensors["eval.grad_input.teacher_logits"] = r64["teacher_grad"]
            tensors["derived.bi"], tensors["derived.bd"] = r64["bi"], r64["bd"]
            tensors["derived.vi_y"] = ref.rgb_to_ycbcr(vi.double())[0]
        else:
            for n, t in r64["buffers"].items():
                tensors[f"train.buffer.{n}"] = t
        print(f"[{mode}] " + ", ".join(f"{k} {v.item():.6f}" for k, v in r64["terms"].items()))
        print(f"[{mode}] output std: " + ", ".join(f"{n} {t.std().item():.3g}" for n, t in r64["outputs"].items()))
    unused = results["eval"]["unused"]
    assert unused == results["train"]["unused"]
    print(f"[network] {ref.count(ref.NetworkStage2(CFG)):,} parameters; {len(unused)} parameter tensors get no gradient "
          f"(stored as zeros): {sorted(set(n.rsplit('.', 1)[0] for n in unused))}")
    ce = F.cross_entropy(results["eval"]["outputs"]["logits"], label, ignore_index=255, reduction="none").flatten().sort(descending=True)[0]
    print(f"[eval] OHEM: CE[n_min={LOSS.ohem_n_min}] = {ce[LOSS.ohem_n_min].item():.4f} -> "
          f"{'threshold' if ce[LOSS.ohem_n_min] > -math.log(LOSS.ohem_thresh) else 'top-n_min'} branch; "
          f"{(ce > -math.log(LOSS.ohem_thresh)).sum().item()} of {ce.numel()} pixels above -log 0.75")
    print(f"[labels] foreground (bi = 1) {(results['eval']['bi'] == 1).float().mean().item():.3f}, "
          f"boundary (bd = 1) {(results['eval']['bd'] == 1).float().mean().item():.3f}, ignored {(label == 255).float().mean().item():.3f}")
    stage1_fixture(vi, ir, g, tensors)
    block_fixtures(g, tensors)
    loss_cases(g, tensors)
    dwa_example()
    stored = {}
    for k, v in tensors.items():
        v = v.detach()
        stored[k] = v.to(torch.int64) if v.dtype in (torch.int64, torch.int32) else v.to(torch.float32)
        stored[k] = stored[k].clone().contiguous()
    # One metadata entry: safetensors writes several in hash order, which would change the file's bytes.
    metadata = {"mafs": json.dumps({"config": asdict(CFG), "loss_config": asdict(LOSS), "unused_parameters": unused,
                                    "generator": "Tests/MAFSTests/Fixtures/make_mafs_fixtures.py"}, sort_keys=True)}
    path = os.path.join(HERE, "mafs_minimal.safetensors")
    save_file(stored, path, metadata=metadata)
    groups = {}
    for k, v in stored.items():
        top = k.split(".")[0] if not k.startswith(("eval.", "train.")) else ".".join(k.split(".")[:2])
        groups[top] = groups.get(top, 0) + v.numel() * v.element_size()
    print(f"[file] {path}: {os.path.getsize(path):,} bytes, {len(stored)} tensors; " +
          ", ".join(f"{k} {v / 1e6:.2f} MB" for k, v in sorted(groups.items())))


if __name__ == "__main__":
    main()
