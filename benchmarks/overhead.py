"""Training-step time of NSR on the logits vs vanilla, MLP-4 on MNIST-shaped data (target ≤ 1.05).

Both are measured in one run, interleaved in short blocks (vanilla, NSR, vanilla, NSR, ...) from
the same initial weights and the same batches, so machine noise hits both alike; the ratio of the
medians of the block times is the figure.

    python benchmarks/overhead.py [--blocks 40] [--steps 50] [--layers 4] [--threads N]
                                  [--torch-ops] [--aa]

NSR runs through the compiled CPU kernel (trials/csrc/nsr_cpu.cpp) unless ``--torch-ops``, which
measures the op-by-op PyTorch path instead; ``--aa`` measures the noise floor (vanilla vs vanilla).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trials.engine import PlainSGD  # noqa: E402
from trials.mlp import HIDDEN, MLP  # noqa: E402
from trials.nsr import NeuronSteadiness  # noqa: E402
from trials.nsr_kernel import cpu_kernel  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--blocks", type=int, default=40, help="timed blocks per variant")
    parser.add_argument("--steps", type=int, default=50, help="training steps per block")
    parser.add_argument("--layers", default="4", help="NSR layers of MLP-4, e.g. 4 or 3,4")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    parser.add_argument("--aa", action="store_true",
                        help="A/A check: both variants vanilla (the noise floor of the ratio)")
    parser.add_argument("--torch-ops", action="store_true",
                        help="NSR through PyTorch ops instead of the compiled CPU kernel")
    args = parser.parse_args()
    if args.blocks < 1 or args.steps < 1 or args.threads < 0:
        parser.error("--blocks and --steps must be >= 1, --threads >= 0")
    use_kernel = not args.torch_ops
    if use_kernel and cpu_kernel() is None:
        sys.exit("the C++ CPU kernel could not be built (see the warning above); "
                 "run with --torch-ops to measure the PyTorch path")
    if args.threads:
        torch.set_num_threads(args.threads)

    gen = torch.Generator().manual_seed(0)
    x = torch.rand(50_000, 784, generator=gen)  # MNIST-shaped: 50,000 training images, 28x28
    y = torch.randint(0, 10, (50_000,), generator=gen)
    batch = 100

    def make(nsr: bool) -> tuple[MLP, NeuronSteadiness, PlainSGD]:
        torch.manual_seed(0)
        model = MLP(784, HIDDEN["mlp4"], 10)
        names = model.regularizable_layers()
        layers = {names[int(k)]: 7.4865 for k in args.layers.split(",")} if nsr else {}
        return (
            model,
            NeuronSteadiness(model, layers, 10, kernel=use_kernel),
            PlainSGD(model.parameters(), lr=0.01),  # the MLP trial's optimizer
        )

    variants = {"vanilla": make(False), "nsr": make(not args.aa)}
    cursor = {"vanilla": 0, "nsr": 0}

    def block(name: str) -> float:
        model, reg, opt = variants[name]
        t0 = time.perf_counter()
        for _ in range(args.steps):
            i = cursor[name]
            xb, yb = x[i : i + batch], y[i : i + batch]
            cursor[name] = (i + batch) % len(x)
            reg.set_targets(yb)
            loss = reg.add_penalty(F.cross_entropy(model(xb), yb))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return (time.perf_counter() - t0) / args.steps

    for name in variants:  # warm-up: allocator, MKL/OpenMP threads, the NSR buffers
        block(name)
    times: dict[str, list[float]] = {"vanilla": [], "nsr": []}
    for b in range(args.blocks):
        order = ("vanilla", "nsr") if b % 2 == 0 else ("nsr", "vanilla")
        for name in order:
            times[name].append(block(name))

    med = {k: statistics.median(v) for k, v in times.items()}
    # Each NSR block is paired with the vanilla block run next to it: the median of the paired
    # ratios cancels slow phases of the machine that the medians of the two columns would not.
    paired = statistics.median(n / v for n, v in zip(times["nsr"], times["vanilla"], strict=True))
    best = {k: min(v) for k, v in times.items()}
    ratio = med["nsr"] / med["vanilla"]
    print(
        f"MLP-4, batch {batch}, NSR on layer(s) {args.layers} "
        f"({'PyTorch ops' if args.torch_ops else 'C++ CPU kernel'}), "
        f"torch threads {torch.get_num_threads()}, "
        f"{args.blocks} blocks x {args.steps} steps per variant"
    )
    print(
        f"  vanilla step: median {med['vanilla'] * 1e3:.3f} ms   min {best['vanilla'] * 1e3:.3f} ms"
    )
    print(f"  NSR step:     median {med['nsr'] * 1e3:.3f} ms   min {best['nsr'] * 1e3:.3f} ms")
    label = "A/A vanilla/vanilla" if args.aa else "NSR/vanilla"
    print(
        f"  ratio {label}: {paired:.3f} (median of paired blocks)  {ratio:.3f} (medians)  "
        f"{best['nsr'] / best['vanilla']:.3f} (mins)"
    )
    if not args.aa:
        print(f"  target <= 1.05 (paired): {'PASS' if paired <= 1.05 else 'FAIL'}")


if __name__ == "__main__":
    main()
