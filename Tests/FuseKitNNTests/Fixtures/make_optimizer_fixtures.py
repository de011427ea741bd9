#!/usr/bin/env python3
"""Regenerates the PyTorch reference fixtures read by the FuseKitNN tests.

    pip install torch safetensors
    python3 Tests/FuseKitNNTests/Fixtures/make_optimizer_fixtures.py

Writes, next to this script:

optimizer_reference.safetensors
    Three parameters (`layer.weight` [3, 4], `layer.bias` [4], `norm.weight` [4]), a sequence of
    five gradients per parameter (`grad.<name>`, shape [5, ...]), a presence mask
    (`present.<name>`, shape [5]; 0 means the parameter had no gradient at that step, as after
    `zero_grad(set_to_none=True)` with an unused parameter), the learning rate of each step
    (`lr`, shape [5]) and, for every optimizer configuration below, the parameters after each
    step (`<config>.<name>`, shape [5, ...]). The configurations are listed in the
    `__metadata__` entry "configs" (JSON).

schedule_reference.json
    Learning rates over 40 steps from torch.optim.lr_scheduler (StepLR, MultiStepLR,
    CosineAnnealingLR stepped recursively as in training, and LinearLR warm-up chained with
    StepLR / CosineAnnealingLR through ChainedScheduler).

python_dtypes.safetensors
    Tensors in F16, BF16, I64, I32, F64 and F32, written by the `safetensors` package, with the
    expected Float32 values alongside (`<name>.expected`), and a metadata map.
"""
import json
import os

import torch
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
STEPS = 5
NAMES = ["layer.weight", "layer.bias", "norm.weight"]
SHAPES = {"layer.weight": (3, 4), "layer.bias": (4,), "norm.weight": (4,)}
NO_DECAY = {"layer.bias", "norm.weight"}

# name -> (optimizer class, per-group keyword arguments for the decay group and the no-decay
# group); learning rates here are the base learning rate times the group's scale.
CONFIGS = {
    "sgd_nesterov": ("SGD", dict(momentum=0.9, nesterov=True, weight_decay=1e-2), None),
    "sgd_dampening": ("SGD", dict(momentum=0.8, dampening=0.3, weight_decay=0.0), None),
    "sgd_plain": ("SGD", dict(), None),
    "adam": ("Adam", dict(), None),
    "adam_wd": ("Adam", dict(weight_decay=0.1, eps=1e-10), None),
    "adamw_groups": ("AdamW", dict(weight_decay=0.05, betas=(0.8, 0.99)), dict(lr_scale=0.5, weight_decay=0.0)),
}
BASE_LR = {"SGD": 0.1, "Adam": 0.01, "AdamW": 0.01}
LR_FACTORS = [1.0, 1.0, 0.5, 0.5, 0.25]


def main():
    g = torch.Generator().manual_seed(20250611)
    initial = {n: torch.randn(SHAPES[n], generator=g) for n in NAMES}
    grads = {n: torch.randn((STEPS,) + SHAPES[n], generator=g) * (0.5 + torch.rand(STEPS, *([1] * len(SHAPES[n])), generator=g)) for n in NAMES}
    # One exact zero gradient element and one missing gradient, to cover those paths.
    grads["layer.weight"][1, 0, 0] = 0.0
    present = {n: torch.ones(STEPS) for n in NAMES}
    present["norm.weight"][2] = 0.0

    out = {}
    for n in NAMES:
        out[f"init.{n}"] = initial[n]
        out[f"grad.{n}"] = grads[n]
        out[f"present.{n}"] = present[n]

    described = {}
    for config, (kind, kwargs, no_decay) in CONFIGS.items():
        base_lr = BASE_LR[kind]
        params = {n: torch.nn.Parameter(initial[n].clone()) for n in NAMES}
        if no_decay is None:
            groups = [dict(params=[params[n] for n in NAMES], lr=base_lr)]
        else:
            groups = [
                dict(params=[params[n] for n in NAMES if n not in NO_DECAY], lr=base_lr),
                dict(params=[params[n] for n in NAMES if n in NO_DECAY],
                     lr=base_lr * no_decay["lr_scale"], weight_decay=no_decay["weight_decay"]),
            ]
        opt = getattr(torch.optim, kind)(groups, foreach=False, **kwargs)
        initial_lrs = [group["lr"] for group in opt.param_groups]
        history = {n: [] for n in NAMES}
        for step in range(STEPS):
            for group, lr0 in zip(opt.param_groups, initial_lrs):
                group["lr"] = lr0 * LR_FACTORS[step]
            for n in NAMES:
                params[n].grad = grads[n][step].clone() if present[n][step] else None
            opt.step()
            for n in NAMES:
                history[n].append(params[n].detach().clone())
        for n in NAMES:
            out[f"{config}.{n}"] = torch.stack(history[n])
        described[config] = dict(optimizer=kind, base_lr=base_lr, **{k: v for k, v in kwargs.items()},
                                 no_decay_group=no_decay)

    out["lr_factors"] = torch.tensor(LR_FACTORS)
    metadata = {"configs": json.dumps(described, sort_keys=True), "torch": torch.__version__,
                "no_decay": ",".join(sorted(NO_DECAY))}
    save_file({k: v.contiguous() for k, v in out.items()},
              os.path.join(HERE, "optimizer_reference.safetensors"), metadata=metadata)

    # Dtype fixture: values that exercise subnormals, infinities, NaN and rounding.
    half_values = torch.tensor([0.0, -0.0, 1.0, -2.5, 65504.0, 6.103515625e-05, 5.960464477539063e-08,
                                -3.0517578125e-05, float("inf"), float("-inf"), float("nan"), 0.333251953125],
                               dtype=torch.float16)
    bf16_values = torch.tensor([0.0, -0.0, 1.0, -2.5, 3.3895313892515355e38, 1.1754943508222875e-38,
                                9.183549615799121e-41, float("inf"), float("-inf"), float("nan"), 0.333984375, 1e-3],
                               dtype=torch.bfloat16)
    dtypes = {
        "half": half_values.reshape(3, 4),
        "brain": bf16_values.reshape(2, 6),
        "long": torch.tensor([0, 1, -7, 2 ** 40, -(2 ** 31) - 5], dtype=torch.int64),
        "int": torch.tensor([[3, -4], [2 ** 31 - 1, -(2 ** 31)]], dtype=torch.int32),
        "double": torch.tensor([1.0 / 3.0, -1e-300, 1e300, 2.5], dtype=torch.float64),
        "single": torch.tensor([[1.5, -2.25, 3.0e-39]], dtype=torch.float32),
        "num_batches_tracked": torch.tensor(1234, dtype=torch.int64),
        "empty": torch.zeros(0, 3, dtype=torch.float16),
    }
    tensors = dict(dtypes)
    for name, value in dtypes.items():
        tensors[f"{name}.expected"] = value.to(torch.float32).clone()
    save_file(tensors, os.path.join(HERE, "python_dtypes.safetensors"),
              metadata={"format": "pt", "note": "written by safetensors \u2713", "empty": ""})


def schedules():
    def run(make, steps=40, base=0.1):
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=base)
        scheduler = make(opt)
        rates = []
        for _ in range(steps):
            rates.append(opt.param_groups[0]["lr"])
            opt.step()
            scheduler.step()
        return rates

    S = torch.optim.lr_scheduler
    reference = {
        "step": dict(schedule=dict(kind="step", step=7, gamma=0.5),
                     rates=run(lambda o: S.StepLR(o, step_size=7, gamma=0.5))),
        "multistep": dict(schedule=dict(kind="multistep", milestones=[5, 12, 12, 30], gamma=0.3),
                          rates=run(lambda o: S.MultiStepLR(o, milestones=[5, 12, 12, 30], gamma=0.3))),
        "cosine": dict(schedule=dict(kind="cosine", tMax=25, etaMin=0.002),
                       rates=run(lambda o: S.CosineAnnealingLR(o, T_max=25, eta_min=0.002), steps=25)),
        "warmup_step": dict(schedule=dict(kind="step", step=10, gamma=0.1, warmup=6, warmupStartFactor=0.25),
                            rates=run(lambda o: S.ChainedScheduler([S.LinearLR(o, start_factor=0.25, total_iters=6),
                                                                    S.StepLR(o, step_size=10, gamma=0.1)]))),
        "warmup_cosine": dict(schedule=dict(kind="cosine", tMax=30, etaMin=0.0, warmup=4, warmupStartFactor=0.1),
                              rates=run(lambda o: S.ChainedScheduler([S.LinearLR(o, start_factor=0.1, total_iters=4),
                                                                      S.CosineAnnealingLR(o, T_max=30)]), steps=30)),
    }
    with open(os.path.join(HERE, "schedule_reference.json"), "w") as f:
        json.dump(reference, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    schedules()
    main()
