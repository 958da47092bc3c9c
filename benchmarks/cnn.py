"""ResNet-18 training-step time with NSR on the logits vs vanilla (target ratio ≤ 1.03), images/s.

    .venv/bin/python benchmarks/cnn.py                          # CUDA if present: 300 steps each
    .venv/bin/python benchmarks/cnn.py --device cpu --blocks 4 --block-steps 2 --batch-size 32

The trial's own step is timed (trials/cnn.py: augmentation on the batch's device, bf16 autocast and
channels-last on CUDA, SGD with momentum), on CIFAR-shaped random uint8 images held on the device.
Vanilla and NSR are two models from the same initial weights, timed in interleaved blocks (vanilla,
NSR, vanilla, NSR, ...) over the same batches, so machine noise and clock changes hit both alike;
the figures are the ratio of the medians of the per-block times and the median of the ratios of
adjacent blocks. Warm-up steps (cuDNN autotuning, allocator growth) are not timed. On a shared
CPU, check the noise first with ``--layers none`` (an A/A run: the ratio should read 1.00).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trials.cifar import augment, synthetic_cifar  # noqa: E402
from trials.cnn import CNNParams, autocast_for, make_optimizer, prepare_model  # noqa: E402
from trials.engine import Batch, train_step  # noqa: E402
from trials.nsr import NeuronSteadiness  # noqa: E402
from trials.runtime import pick_device  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="resnet18", choices=["resnet18", "vgg19"])
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto")
    parser.add_argument("--blocks", type=int, default=30, help="timed blocks per variant")
    parser.add_argument("--block-steps", type=int, default=10, help="training steps per block")
    parser.add_argument("--warmup", type=int, default=20, help="untimed steps per variant first")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument(
        "--layers", default="last", help="NSR layers: last, 5, 4,5; none = an A/A noise check"
    )
    parser.add_argument("--lam", type=float, default=1.0, help="λ of every NSR layer")
    parser.add_argument("--no-amp", action="store_true", help="float32 on CUDA too")
    parser.add_argument("--verbose", action="store_true", help="print every block's time")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest kernels
    autocast = autocast_for(device, not args.no_amp)
    params = CNNParams(model=args.model)

    data = synthetic_cifar(5_000, seed=0).to(device)
    gen = torch.Generator(device=device).manual_seed(0)

    def make(nsr: bool) -> tuple[torch.nn.Module, NeuronSteadiness, torch.optim.Optimizer]:
        torch.manual_seed(0)
        model = prepare_model(args.model, 10, device).train()
        names = model.regularizable_layers()
        spec = args.layers.strip().lower()
        if spec == "none":
            ks: list[int] = []
        else:
            ks = [max(names)] if spec == "last" else [int(k) for k in spec.split(",")]
        layers = {names[k]: args.lam for k in ks} if nsr else {}
        return model, NeuronSteadiness(model, layers, 10), make_optimizer(model, [], params)

    variants = {"vanilla": make(False), "nsr": make(True)}
    n = len(data.train_x)

    def batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        # Batch i is the same images for both variants (fresh augmentation each: it is part of
        # the step the trial pays for).
        start = (step * args.batch_size) % (n - args.batch_size)
        idx = torch.arange(start, start + args.batch_size, device=device)  # (B,)
        return augment(data.train_x[idx], gen), data.train_y[idx]

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    def block(name: str, first_step: int, steps: int) -> float:
        model, reg, opt = variants[name]
        sync()
        t0 = time.perf_counter()
        for s in range(first_step, first_step + steps):
            xb, yb = batch(s)
            train_step(model, reg, opt, Batch((xb,), yb), autocast)
        sync()
        return time.perf_counter() - t0

    for name in variants:
        block(name, 0, args.warmup)
    times: dict[str, list[float]] = {name: [] for name in variants}
    for b in range(args.blocks):
        # Alternate which variant goes first, so neither always follows the other.
        order = list(variants) if b % 2 == 0 else list(reversed(variants))
        for name in order:
            times[name].append(block(name, args.warmup + b * args.block_steps, args.block_steps))

    per_step = {name: statistics.median(t) / args.block_steps for name, t in times.items()}
    amp = "bf16 autocast, channels-last" if device.type == "cuda" and not args.no_amp else "fp32"
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"{args.model}, batch {args.batch_size}, {where} ({amp}), NSR on layers {args.layers} "
        f"(λ={args.lam:g}); {args.blocks} interleaved blocks x {args.block_steps} steps per "
        f"variant after {args.warmup} warm-up steps"
    )
    for name, t in per_step.items():
        spread = statistics.pstdev(times[name]) / statistics.mean(times[name])
        print(
            f"  {name:<8} {1000 * t:9.2f} ms/step  {args.batch_size / t:9.1f} images/s  "
            f"(block-time spread {100 * spread:.1f} %)"
        )
        if args.verbose:
            print(
                "    block ms/step:",
                " ".join(f"{1000 * b / args.block_steps:.0f}" for b in times[name]),
            )
    ratio = per_step["nsr"] / per_step["vanilla"]
    # Adjacent blocks share the machine's state: the median of their ratios resists bursts of
    # load from other processes better than the ratio of the medians does.
    paired = statistics.median(n / v for n, v in zip(times["nsr"], times["vanilla"], strict=True))
    print(
        f"  step-time ratio NSR / vanilla: {ratio:.3f} (ratio of medians), "
        f"{paired:.3f} (median of adjacent-block ratios); target <= 1.03"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
