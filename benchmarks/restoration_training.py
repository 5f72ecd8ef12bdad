"""Training throughput of a restoration network by batch size, precision and memory layout, in one table.

    python benchmarks/restoration_training.py                        # the zoo's rir-se recipe, on the CPU
    python benchmarks/restoration_training.py --device cuda --compile
    python benchmarks/restoration_training.py --network rir --batch-sizes 32 128

One training step as ``ImageRestorer`` takes it (the network on a batch of noisy
patches, L1 loss against the clean ones, backward, an Adam step), on random
patches already on the device, so the data loader and Lightning's own overhead
are left out. The defaults are the sigma-25 zoo recipe's network and patches
(``rir-se``, 56 channels, 4 groups of 4 blocks, ``unshuffle=2``, grey, 96 x 96,
batch 32). Each row: milliseconds a step, patches a second, and that rate
against the first row (float32, contiguous, the first batch size). On a GPU
a small network is often bound by launching kernels rather than by arithmetic:
then larger batches cost little more a step, and the patches a second say how
much longer a recipe's epoch count can be in the same time.
"""
from __future__ import annotations

import argparse
import itertools
import time

import torch
import torch.nn.functional as F

import attnzoo
from measure import machine

RECIPE = dict(channels=56, groups=4, blocks=4, unshuffle=2)


def step_ms(
    network: str, batch: int, patch: int, dtype: torch.dtype, layout: torch.memory_format, compiled: bool,
    device: torch.device, steps: int,
) -> float:
    torch.manual_seed(0)
    model = attnzoo.create_model(network, in_channels=1, **RECIPE).to(device, memory_format=layout).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-4)
    forward = torch.compile(model) if compiled else model
    clean = torch.rand(batch, 1, patch, patch, device=device).contiguous(memory_format=layout)
    noisy = clean + torch.randn_like(clean) * 25 / 255

    def one_step() -> None:
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            loss = F.l1_loss(forward(noisy).float(), clean)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(3 if not compiled else 5):  # warm-up: cuDNN's choices, the compiler, the allocator
        one_step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        one_step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) * 1e3 / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--network", default="rir-se", help="a restoration network name (default: rir-se)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 64, 128])
    parser.add_argument("--patch", type=int, default=96)
    parser.add_argument("--steps", type=int, help="timed steps a row (default: 20 on a GPU, 3 on the CPU)")
    parser.add_argument("--compile", action="store_true", help="also each setting under torch.compile")
    args = parser.parse_args()
    device = torch.device(args.device)
    steps = args.steps or (20 if device.type == "cuda" else 3)
    print(
        f"# {args.network} ({', '.join(f'{k} {v}' for k, v in RECIPE.items())}), grey {args.patch} x {args.patch} "
        f"patches, one training step (L1, Adam), {steps} steps a row; {machine(device)}\n"
    )
    print("| batch | precision | layout | compiled | ms / step | patches / s | rate against the first row |")
    print("|---:|---|---|---|---:|---:|---:|")
    first = None
    settings = itertools.product(
        args.batch_sizes,
        (torch.float32, torch.bfloat16),
        (torch.contiguous_format, torch.channels_last),
        (False, True) if args.compile else (False,),
    )
    for batch, dtype, layout, compiled in settings:
        ms = step_ms(args.network, batch, args.patch, dtype, layout, compiled, device, steps)
        rate = batch * 1e3 / ms
        first = first or rate
        print(
            f"| {batch} | {'float32' if dtype == torch.float32 else 'bf16 autocast'} "
            f"| {'channels_last' if layout == torch.channels_last else 'contiguous'} | {'yes' if compiled else 'no'} "
            f"| {ms:.1f} | {rate:.0f} | {rate / first:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
