"""Times one training step's forward + backward of the PyTorch transcription (mrfs_reference.py),
to set against FuseKit's in the same run (Tests/MRFSTests/MRFSSpeedTests.swift, enabled by
MRFS_SPEED=1). Both sides: batch 1, 480x640 RGB and infrared, train mode (BN on batch statistics,
stochastic depth and dropout on), the full MRFS loss (MFNet constants) with random labels, the
official initialisation, float32, 2 threads; median of --runs after one warm-up.

    python3 bench_mrfs_reference.py --variant minimal --runs 5
"""
import argparse
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mrfs_reference as ref  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--variant", default="minimal", choices=sorted(ref.CONFIGS))
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--compile", action="store_true", help="torch.compile the model first")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = ref.MRFS(ref.CONFIGS[args.variant])
    ref.official_init_(model)
    model.train()
    net = torch.compile(model) if args.compile else model
    b, h, w = args.batch, args.height, args.width
    rgb = torch.rand(b, 3, h, w)
    ir = torch.rand(b, 1, h, w).expand(b, 3, h, w).contiguous()
    mask = torch.ones(b, 3, h, w)
    labels = torch.randint(0, model.cfg.classes, (b, h, w))
    constants = ref.DATASET_CONSTANTS["MFNet"]

    def step():
        model.zero_grad(set_to_none=True)
        logits, fused = net(rgb, ir)
        loss = ref.mrfs_loss(fused, logits, rgb, ir, mask, labels, constants)["total"]
        loss.backward()
        return loss.item()

    step()
    times = []
    for _ in range(args.runs):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    params = sum(p.numel() for p in model.parameters())
    print(f"pytorch {torch.__version__} mrfs {args.variant} ({params:,} parameters) forward+backward {b}x3x{h}x{w}: "
          f"median {statistics.median(times):.3f} s (min {min(times):.3f}, max {max(times):.3f}, {args.runs} runs, "
          f"{torch.get_num_threads()} threads{', compiled' if args.compile else ''})")


if __name__ == "__main__":
    main()
