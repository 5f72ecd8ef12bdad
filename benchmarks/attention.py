"""Time every block/stage attention mechanism against a naive non-local reference.

    python benchmarks/attention.py                       # CPU (and CUDA when present)
    python benchmarks/attention.py --device cuda --sizes 32 64 128

For each mechanism (C = 256, batch 2 by default) and each map size it prints
the forward time (eval, no grad), the forward + backward time (train mode),
the peak memory of forward + backward, and the forward + backward time as a
ratio to the naive reference measured in the same run: an embedded-Gaussian
non-local written as matmul -> softmax -> matmul, which materialises the
(HW) x (HW) matrix (what nl would cost without a fused attention kernel).

Times come from torch.utils.benchmark (median of blocked runs). Peak memory is
torch.cuda.max_memory_allocated on CUDA; on the CPU it is the peak of the
profiler's memory timeline over one forward + backward (tensors only, above
what was alive before).
"""
from __future__ import annotations

import argparse
import sys

import torch
from torch import nn
from torch.utils.benchmark import Timer

import attnzoo
from measure import machine, peak_mib

REFERENCE = "naive-nl"


class NaiveNonLocal(nn.Module):
    """Embedded-Gaussian non-local with the attention matrix written out (the baseline)."""

    def __init__(self, channels: int):
        super().__init__()
        inner = channels // 2
        self.theta, self.phi, self.g = (nn.Conv2d(channels, inner, 1) for _ in range(3))
        self.out = nn.Conv2d(inner, channels, 1)
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, x):
        b, c, h, w = x.shape
        q, k, v = (m(x).flatten(2) for m in (self.theta, self.phi, self.g))
        attn = torch.softmax(q.transpose(1, 2) @ k, dim=-1)
        y = (v @ attn.transpose(1, 2)).view(b, -1, h, w)
        return x + self.bn(self.out(y))


def build(name: str, channels: int) -> nn.Module:
    return NaiveNonLocal(channels) if name == REFERENCE else attnzoo.create_attention(name, channels)


def seconds(fn, min_run_time: float) -> float:
    timer = Timer("fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())
    return timer.blocked_autorange(min_run_time=min_run_time).median


def measure(name: str, channels: int, batch: int, size: int, device: torch.device, min_run_time: float) -> dict:
    module = build(name, channels).to(device)
    # Inside a network the input carries gradient; parameter-free mechanisms need it to backpropagate.
    x = torch.randn(batch, channels, size, size, device=device, requires_grad=True)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def forward():
        with torch.no_grad():
            module(x)
        sync()

    def train_step():
        module(x).sum().backward()
        module.zero_grad(set_to_none=True)
        x.grad = None
        sync()

    module.eval()
    forward()
    fwd = seconds(forward, min_run_time)
    module.train()
    train_step()
    both = seconds(train_step, min_run_time)
    return {"fwd_ms": fwd * 1e3, "train_ms": both * 1e3, "peak_mib": peak_mib(train_step, device)}


def table(results: dict, sizes: list[int]) -> str:
    head = "| mechanism |" + "".join(
        f" fwd ms {s}² | fwd+bwd ms {s}² | peak MiB {s}² | vs naive {s}² |" for s in sizes
    )
    lines = [head, "|---|" + "---:|" * (4 * len(sizes))]
    for name, by_size in results.items():
        cells = []
        for s in sizes:
            r, ref = by_size[s], results[REFERENCE][s]
            cells += [f"{r['fwd_ms']:.2f}", f"{r['train_ms']:.2f}", f"{r['peak_mib']:.1f}",
                      f"{r['train_ms'] / ref['train_ms']:.2f}x"]
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=256)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--device", action="append", help="cpu and/or cuda (default: cpu, plus cuda if present)")
    parser.add_argument("--min-run-time", type=float, default=0.5, help="seconds per timing")
    parser.add_argument("--only", nargs="+", help="mechanisms to time (default: every block/stage one)")
    args = parser.parse_args()

    names = args.only or [
        n for n in attnzoo.list_attentions() if attnzoo.attention_info(n).placement in ("block", "stage")
    ]
    devices = args.device or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    for dev in devices:
        device = torch.device(dev)
        what = machine(device)
        print(f"\n## {dev}: {what}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
              f"C = {args.channels}, batch {args.batch}\n")
        results = {}
        for name in [REFERENCE, *names]:
            print(f"timing {name}", file=sys.stderr, flush=True)
            results[name] = {s: measure(name, args.channels, args.batch, s, device, args.min_run_time) for s in args.sizes}
        print(table(results, args.sizes), flush=True)


if __name__ == "__main__":
    main()
