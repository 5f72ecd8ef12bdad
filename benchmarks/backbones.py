"""Time attnzoo's ResNets against the timm networks they reproduce, and each attention's cost in a ResNet-50.

    python benchmarks/backbones.py                       # CUDA if present, else CPU
    python benchmarks/backbones.py --device cpu --size 224 --rounds 3
    python benchmarks/backbones.py --only pairs          # table 1 only

Defaults: batch 64 at 224 x 224 on CUDA; batch 8 at 128 x 128 on the CPU,
where the whole run takes about 6 minutes on 2 idle cores (at 224 x 224
about three times as long).

Table 1 pairs each attnzoo model with the timm model of the same network
(resnet50 / resnet50, resnet50-se / seresnet50, resnet50-sk / skresnext50_32x4d),
loads the timm model's weights into the attnzoo one (the logits then agree,
shown as max |dlogit|), and gives images/s for inference (eval, no grad) and
for a training step (forward, cross-entropy, backward, SGD step; train mode),
the peak memory of the training step, and the ratio attnzoo / timm (images/s:
>= 1 means attnzoo is at least as fast).

Table 2 gives, for ResNet-50 with each block/conv attention, the images/s
relative to plain ResNet-50 and the extra parameters. SKNet-50 is built on
ResNeXt-50 32x4d (the paper's network), so its extra parameters are counted
over that backbone, and its images/s are given relative to it as well.

The models compared are timed in rounds, A, B, ... then ... B, A, and so on,
so that load from other processes falls on all of them alike; each round
times torch.utils.benchmark.Timer blocks of at least --min-run-time seconds.
Images/s come from the median over rounds; a ratio is the median of the
per-round ratios, with their range. Peak memory is
torch.cuda.max_memory_allocated on CUDA; on the CPU it is the peak of the
profiler's memory timeline over one training step (tensors only, above what
was alive before: activations, gradients, temporaries).
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time

import timm
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.benchmark import Timer

import attnzoo
from attnzoo.backbones.checkpoint import map_timm_keys
from measure import machine, peak_mib

PAIRS = (("resnet50", "resnet50"), ("resnet50-se", "seresnet50"), ("resnet50-sk", "skresnext50_32x4d"))
ATTENTIONS = ("se", "cbam", "eca", "srm", "gc", "gsop", "sk")
# SKNet-50 replaces the 3x3 convs of ResNeXt-50 32x4d (Li et al. 2019, table 1), not of ResNet-50.
OWN_BACKBONE = {"sk": "resnext50_32x4d"}
KINDS = ("infer", "train")
NUM_CLASSES = 1000


class Runner:
    """One model with its input, target and optimiser, and timers for inference and a training step."""

    def __init__(self, model: nn.Module, batch: int, size: int, device: torch.device, channels_last: bool):
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        self.model = model.to(device, memory_format=fmt)
        self.x = torch.randn(batch, 3, size, size, device=device).to(memory_format=fmt)
        self.y = torch.randint(0, NUM_CLASSES, (batch,), device=device)
        self.opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=1e-4)
        self.device = device
        self.timers = {kind: Timer("fn()", globals={"fn": getattr(self, kind)}, num_threads=torch.get_num_threads())
                       for kind in KINDS}
        self.number = dict.fromkeys(KINDS, 1)

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def infer(self) -> None:
        with torch.no_grad():
            self.model(self.x)
        self.sync()

    def train(self) -> None:
        F.cross_entropy(self.model(self.x), self.y).backward()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        self.sync()

    def set_mode(self, kind: str) -> None:
        self.model.train(kind == "train")

    def calibrate(self, min_run_time: float) -> None:
        """Warm up (allocator, kernel selection, momentum buffers) and pick calls per timed block."""
        for kind in KINDS:
            self.set_mode(kind)
            getattr(self, kind)()
            once = self.timers[kind].timeit(1).median
            self.number[kind] = max(1, math.ceil(min_run_time / once))

    def seconds(self, kind: str) -> float:
        self.set_mode(kind)
        return self.timers[kind].timeit(self.number[kind]).median

    def peak_mib(self) -> float:
        self.set_mode("train")
        return peak_mib(self.train, self.device)


def interleaved(runners: dict[str, Runner], rounds: int, min_run_time: float) -> dict[str, dict[str, list[float]]]:
    """Seconds per call of each runner and kind, one value per round, the order reversed every other round."""
    for runner in runners.values():
        runner.calibrate(min_run_time)
    times = {name: {kind: [] for kind in KINDS} for name in runners}
    names = list(runners)
    for index in range(rounds):
        order = names if index % 2 == 0 else names[::-1]
        for kind in KINDS:
            for name in order:
                times[name][kind].append(runners[name].seconds(kind))
        print(f"  round {index + 1}/{rounds} done", file=sys.stderr, flush=True)
    return times


def ratio(seconds: list[float], reference: list[float]) -> str:
    """Images/s over the reference's images/s: median and range of the per-round ratios."""
    per_round = [r / s for s, r in zip(seconds, reference)]
    return f"{statistics.median(per_round):.3f} ({min(per_round):.2f}-{max(per_round):.2f})"


def params_m(model: nn.Module) -> float:
    return sum(p.numel() for p in model.parameters()) / 1e6


def pairs_table(args: argparse.Namespace, device: torch.device) -> str:
    lines = [
        "| attnzoo | timm | params M | max abs dlogit | infer img/s attnzoo | infer img/s timm | infer ratio (range) "
        "| train img/s attnzoo | train img/s timm | train ratio (range) | train peak MiB attnzoo | train peak MiB timm |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for ours_name, timm_name in PAIRS:
        print(f"timing {ours_name} vs timm {timm_name}", file=sys.stderr, flush=True)
        torch.manual_seed(0)
        theirs = timm.create_model(timm_name, num_classes=NUM_CLASSES)
        ours = attnzoo.create_model(ours_name, num_classes=NUM_CLASSES)
        ours.load_state_dict(map_timm_keys(theirs.state_dict(), set(ours.state_dict())), strict=True)
        runners = {m: Runner(model, args.batch, args.size, device, args.channels_last)
                   for m, model in (("ours", ours), ("timm", theirs))}
        with torch.no_grad():
            logits = [r.model.eval()(runners["ours"].x) for r in runners.values()]
        dlogit = (logits[0] - logits[1]).abs().max().item()
        times = interleaved(runners, args.rounds, args.min_run_time)
        ips = {m: {k: args.batch / statistics.median(times[m][k]) for k in KINDS} for m in runners}
        peak = {m: r.peak_mib() for m, r in runners.items()}
        lines.append(
            f"| `{ours_name}` | `{timm_name}` | {params_m(ours):.2f} | {dlogit:.1e} "
            f"| {ips['ours']['infer']:.1f} | {ips['timm']['infer']:.1f} | {ratio(times['ours']['infer'], times['timm']['infer'])} "
            f"| {ips['ours']['train']:.1f} | {ips['timm']['train']:.1f} | {ratio(times['ours']['train'], times['timm']['train'])} "
            f"| {peak['ours']:.0f} | {peak['timm']:.0f} |"
        )
        del runners, ours, theirs, logits
    return "\n".join(lines)


def attention_table(args: argparse.Namespace, device: torch.device) -> str:
    names = ["resnet50", *sorted(set(OWN_BACKBONE.values())), *(f"resnet50-{a}" for a in ATTENTIONS)]
    print(f"timing {', '.join(names)}", file=sys.stderr, flush=True)
    torch.manual_seed(0)
    runners = {n: Runner(attnzoo.create_model(n, num_classes=NUM_CLASSES), args.batch, args.size, device,
                         args.channels_last) for n in names}
    times = interleaved(runners, args.rounds, args.min_run_time)
    params = {n: params_m(r.model) for n, r in runners.items()}
    lines = [
        "| model | params M | extra params M | infer img/s | infer vs resnet50 (range) | train img/s | train vs resnet50 (range) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name in names:
        attention = name.removeprefix("resnet50-") if name.startswith("resnet50-") else None
        backbone = OWN_BACKBONE.get(attention, "resnet50") if attention else name
        cells = [f"`{name}`", f"{params[name]:.2f}", "-" if backbone == name else f"{params[name] - params[backbone]:+.2f}"]
        for kind in KINDS:
            own = times[name][kind]
            cell = "-" if name == "resnet50" else ratio(own, times["resnet50"][kind])
            if backbone not in (name, "resnet50"):
                cell += f"; {ratio(own, times[backbone][kind])} vs `{backbone}`"
            cells += [f"{args.batch / statistics.median(own):.1f}", cell]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def load() -> str:
    return " / ".join(f"{v:.1f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, help="images per step (default: 8 on the CPU, 64 on CUDA)")
    parser.add_argument("--size", type=int, help="input height and width (default: 224 on CUDA, 128 on the CPU)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds per measurement")
    parser.add_argument("--min-run-time", type=float, default=0.5, help="seconds per timed block in each round")
    parser.add_argument("--threads", type=int, help="CPU threads (default: torch's, one per core)")
    parser.add_argument("--channels-last", action="store_true", help="models and inputs in channels-last layout")
    parser.add_argument("--only", choices=("pairs", "attentions"), help="print one table only")
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    args.batch = args.batch or (64 if device.type == "cuda" else 8)
    args.size = args.size or (224 if device.type == "cuda" else 128)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True

    start = time.perf_counter()
    print(f"## {device.type}: {machine(device)}, torch {torch.__version__}, timm {timm.__version__}, "
          f"{torch.get_num_threads()} threads, batch {args.batch}, {args.size}x{args.size}, "
          f"{'channels-last' if args.channels_last else 'contiguous'}, {args.rounds} rounds, "
          f"min run time {args.min_run_time} s, load average at start {load()}", flush=True)
    if args.only != "attentions":
        print(f"\n### attnzoo vs timm (images/s ratio attnzoo / timm)\n\n{pairs_table(args, device)}", flush=True)
    if args.only != "pairs":
        print(f"\n### Attention overhead in ResNet-50 (images/s ratio model / resnet50)\n\n{attention_table(args, device)}",
              flush=True)
    print(f"\nload average at end {load()}; {time.perf_counter() - start:.0f} s in all", flush=True)


if __name__ == "__main__":
    main()
