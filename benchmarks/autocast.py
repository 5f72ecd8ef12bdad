"""Every attention mechanism under bf16 / fp16 autocast against its float32 output, in one table.

    python benchmarks/autocast.py                  # CPU: bf16 only (fp16 autocast is a GPU thing)
    python benchmarks/autocast.py --device cuda    # bf16 and fp16

For each mechanism (C = 64, batch 4, an odd 23 x 17 map; parameters that start
at zero, such as the identity-at-init output scales, are given random values so
that every path counts) it runs the float32 forward, then the same forward
under ``torch.autocast`` and prints: the output's dtype, the largest error
relative to the float32 output's largest magnitude, whether the output and
the gradients of the input and of every parameter are finite, and the time of one autocast
forward + backward.
"""
from __future__ import annotations

import argparse
import time

import torch

import attnzoo
from measure import machine

CHANNELS, BATCH, SIZE = 64, 4, (23, 17)


def example(name: str, device: torch.device) -> torch.Tensor:
    placement = attnzoo.attention_info(name).placement
    if name == "sta":  # frames: (B, T, C, H, W)
        return torch.randn(BATCH, 4, CHANNELS, *SIZE, device=device)
    if placement == "pool":  # a set of items: (B, N, C)
        return torch.randn(BATCH, 6, CHANNELS, device=device)
    return torch.randn(BATCH, CHANNELS, *SIZE, device=device)


def build(name: str, device: torch.device) -> torch.nn.Module:
    torch.manual_seed(0)
    module = attnzoo.create_attention(name, CHANNELS).to(device)
    with torch.no_grad():
        for p in module.parameters():
            if not p.abs().sum():
                p.normal_(0, 0.5)
    return module.eval()


def first_tensor(out: object) -> torch.Tensor:
    return out[0] if isinstance(out, (tuple, list)) else out


def row(name: str, dtype: torch.dtype, device: torch.device) -> str:
    module, x = build(name, device), example(name, device).requires_grad_()
    with torch.no_grad():
        reference = first_tensor(module(x)).float()
    module.zero_grad()
    start = time.perf_counter()
    with torch.autocast(device.type, dtype=dtype):
        out = first_tensor(module(x))
    out.float().square().mean().backward()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elapsed = (time.perf_counter() - start) * 1e3
    error = (out.detach().float() - reference).abs().max().item() / reference.abs().max().clamp_min(1e-6).item()
    grads = [x.grad, *(p.grad for p in module.parameters() if p.grad is not None)]
    grads_finite = all(torch.isfinite(g).all().item() for g in grads)
    finite = torch.isfinite(out).all().item()
    return (
        f"| {name} | {str(dtype).removeprefix('torch.')} | {str(out.dtype).removeprefix('torch.')} | {error:.1e} "
        f"| {'yes' if finite else 'NO'} | {'yes' if grads_finite else 'NO'} | {elapsed:.1f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    dtypes = [torch.bfloat16] + ([torch.float16] if device.type == "cuda" else [])
    print(f"# autocast against float32, {machine(device)}\n")
    print("| mechanism | autocast | output dtype | max error / max abs | output finite | grads finite | fwd+bwd ms |")
    print("|---|---|---|---:|---|---|---:|")
    for name in attnzoo.list_attentions():
        for dtype in dtypes:
            print(row(name, dtype, device), flush=True)


if __name__ == "__main__":
    main()
