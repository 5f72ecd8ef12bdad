"""Time attnzoo's FCOS against torchvision's fcos_resnet50_fpn, and each attention's cost in FCOS.

    python benchmarks/detection.py                       # CUDA if present, else CPU
    python benchmarks/detection.py --device cpu --size 320 --rounds 5
    python benchmarks/detection.py --only pairs          # table 1 only

Defaults: batch 4 at 800 x 800 and 5 rounds on CUDA; batch 2 at 256 x 256 and
3 rounds on the CPU, where the whole run takes about 4 minutes on 2 idle cores.
Both detectors get min_size = max_size = --size, so the transform keeps the
square images (standard-normal noise, as in backbones.py) at that size.

Table 1 pairs attnzoo's ``fcos-resnet50`` with torchvision's
``fcos_resnet50_fpn(weights=None, weights_backbone=None)``, both with 91
classes. Both are built from random weights, so in both the BatchNorm layers
are live (torchvision's BatchNorm2d, not FrozenBatchNorm2d) and every backbone
layer trains; torchvision's state dict is then loaded into attnzoo's, so the
two compute the same function: the check is the largest difference of the
head's raw outputs on one batch in eval mode (box regression, and the score
sqrt(sigmoid(class logit) * sigmoid(centerness)) that FCOS ranks boxes by).
Images/s for inference (eval, no grad, postprocessing included: with random
weights no score passes the 0.2 threshold, so NMS has nothing to do) and for a
training step (train mode, 3 random valid boxes per image, sum of FCOS's three
losses, backward, SGD step), and the ratio attnzoo / torchvision (>= 1 means
attnzoo is at least as fast).

Table 2 gives, for FCOS on ResNet-50 with each attention, the images/s relative
to plain fcos-resnet50 and the extra parameters; SK is built on ResNeXt-50
32x4d (SKNet-50), so it is also given relative to fcos-resnext50_32x4d.

Timing is benchmarks/backbones.py's: the models are timed in rounds, A, B, ...
then ... B, A, each round timing torch.utils.benchmark.Timer blocks of at least
--min-run-time seconds; images/s come from the median over rounds, a ratio is
the median of the per-round ratios, with their range.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch
import torchvision
from torch import nn

import attnzoo
from backbones import KINDS, OWN_BACKBONE, Runner, interleaved, load, params_m, ratio
from measure import machine

ATTENTIONS = ("se", "cbam", "eca", "gc", "sk", "nl", "gsop")
NUM_CLASSES = 91  # COCO's 90 categories and the background
BOXES_PER_IMAGE = 3
PLAIN = "fcos-resnet50"


class DetectionRunner(Runner):
    """A detector with a batch of images and their target boxes; inference and a training step as in Runner."""

    def __init__(self, model: nn.Module, batch: int, size: int, device: torch.device):
        super().__init__(model, batch, size, device, channels_last=False)
        self.images = list(self.x)
        self.targets = random_targets(batch, size, device)

    def infer(self) -> None:
        with torch.no_grad():
            self.model(self.images)
        self.sync()

    def train(self) -> None:
        sum(self.model(self.images, self.targets).values()).backward()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        self.sync()


def random_targets(batch: int, size: int, device: torch.device) -> list[dict[str, torch.Tensor]]:
    """BOXES_PER_IMAGE boxes per image, each 10 to 40 % of the side and inside the image; the same for every model."""
    generator = torch.Generator().manual_seed(0)
    targets = []
    for _ in range(batch):
        corner = torch.rand(BOXES_PER_IMAGE, 2, generator=generator) * 0.6 * size
        extent = (0.1 + 0.3 * torch.rand(BOXES_PER_IMAGE, 2, generator=generator)) * size
        labels = torch.randint(1, NUM_CLASSES, (BOXES_PER_IMAGE,), generator=generator)
        targets.append({"boxes": torch.cat([corner, corner + extent], 1).to(device), "labels": labels.to(device)})
    return targets


def head_outputs(model: nn.Module, images: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """The FCOS head's raw outputs for ``images`` in eval mode: box regression and per-location score."""
    out: dict[str, torch.Tensor] = {}
    handle = model.head.register_forward_hook(lambda module, args, output: out.update(output))
    try:
        with torch.no_grad():
            model.eval()(images)
    finally:
        handle.remove()
    score = torch.sqrt(torch.sigmoid(out["cls_logits"]) * torch.sigmoid(out["bbox_ctrness"]))
    return {"box": out["bbox_regression"], "score": score}


def build(name: str, size: int) -> nn.Module:
    return attnzoo.create_model(name, num_classes=NUM_CLASSES, min_size=size, max_size=size)


def pairs_table(args: argparse.Namespace, device: torch.device) -> str:
    print(f"timing {PLAIN} vs torchvision fcos_resnet50_fpn", file=sys.stderr, flush=True)
    torch.manual_seed(0)
    theirs = torchvision.models.detection.fcos_resnet50_fpn(
        weights=None, weights_backbone=None, num_classes=NUM_CLASSES, min_size=args.size, max_size=args.size
    )
    ours = build(PLAIN, args.size)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    runners = {m: DetectionRunner(model, args.batch, args.size, device) for m, model in (("ours", ours), ("tv", theirs))}
    outputs = [head_outputs(r.model, runners["ours"].images) for r in runners.values()]
    diff = {k: (outputs[0][k] - outputs[1][k]).abs().max().item() for k in ("box", "score")}
    times = interleaved(runners, args.rounds, args.min_run_time)
    ips = {m: {k: args.batch / statistics.median(times[m][k]) for k in KINDS} for m in runners}
    return "\n".join([
        (
            "| attnzoo | torchvision | params M | max abs d box | max abs d score | infer img/s attnzoo "
            "| infer img/s torchvision | infer ratio (range) | train img/s attnzoo | train img/s torchvision "
            "| train ratio (range) |"
        ),
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        (
            f"| `{PLAIN}` | `fcos_resnet50_fpn` | {params_m(ours):.2f} | {diff['box']:.1e} | {diff['score']:.1e} "
            f"| {ips['ours']['infer']:.2f} | {ips['tv']['infer']:.2f} "
            f"| {ratio(times['ours']['infer'], times['tv']['infer'])} "
            f"| {ips['ours']['train']:.2f} | {ips['tv']['train']:.2f} "
            f"| {ratio(times['ours']['train'], times['tv']['train'])} |"
        ),
    ])


def attention_table(args: argparse.Namespace, device: torch.device) -> str:
    own = {a: f"fcos-{b}" for a, b in OWN_BACKBONE.items() if a in ATTENTIONS}
    names = [PLAIN, *sorted(set(own.values())), *(f"{PLAIN}-{a}" for a in ATTENTIONS)]
    print(f"timing {', '.join(names)}", file=sys.stderr, flush=True)
    torch.manual_seed(0)
    runners = {n: DetectionRunner(build(n, args.size), args.batch, args.size, device) for n in names}
    times = interleaved(runners, args.rounds, args.min_run_time)
    params = {n: params_m(r.model) for n, r in runners.items()}
    lines = [
        (
            f"| model | params M | extra params M | infer img/s | infer vs {PLAIN} (range) | train img/s "
            f"| train vs {PLAIN} (range) |"
        ),
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name in names:
        attention = name.removeprefix(f"{PLAIN}-") if name.startswith(f"{PLAIN}-") else None
        backbone = own.get(attention, PLAIN) if attention else name
        cells = [f"`{name}`", f"{params[name]:.2f}", "-" if backbone == name else f"{params[name] - params[backbone]:+.2f}"]
        for kind in KINDS:
            mine = times[name][kind]
            cell = "-" if name == PLAIN else ratio(mine, times[PLAIN][kind])
            if backbone not in (name, PLAIN):
                cell += f"; {ratio(mine, times[backbone][kind])} vs `{backbone}`"
            cells += [f"{args.batch / statistics.median(mine):.2f}", cell]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, help="images per step (default: 2 on the CPU, 4 on CUDA)")
    parser.add_argument("--size", type=int, help="image height and width, the detectors' min_size and max_size "
                                                 "(default: 800 on CUDA, 256 on the CPU)")
    parser.add_argument("--rounds", type=int, help="alternating rounds per measurement (default: 3 on the CPU, 5 on CUDA)")
    parser.add_argument("--min-run-time", type=float, default=0.5, help="seconds per timed block in each round")
    parser.add_argument("--threads", type=int, help="CPU threads (default: torch's, one per core)")
    parser.add_argument("--only", choices=("pairs", "attentions"), help="print one table only")
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = device.type == "cuda"
    args.batch = args.batch or (4 if cuda else 2)
    args.size = args.size or (800 if cuda else 256)
    args.rounds = args.rounds or (5 if cuda else 3)
    if cuda:
        torch.backends.cudnn.benchmark = True

    start = time.perf_counter()
    print(f"## {device.type}: {machine(device)}, torch {torch.__version__}, torchvision {torchvision.__version__}, "
          f"{torch.get_num_threads()} threads, batch {args.batch}, {args.size}x{args.size} (min_size = max_size), "
          f"random weights with live BatchNorm, every layer training, {args.rounds} rounds, "
          f"min run time {args.min_run_time} s, load average at start {load()}", flush=True)
    if args.only != "attentions":
        print(f"\n### attnzoo vs torchvision FCOS (images/s ratio attnzoo / torchvision)\n\n{pairs_table(args, device)}",
              flush=True)
    if args.only != "pairs":
        print(f"\n### Attention overhead in FCOS ResNet-50-FPN (images/s ratio model / {PLAIN})\n\n"
              f"{attention_table(args, device)}", flush=True)
    print(f"\nload average at end {load()}; {time.perf_counter() - start:.0f} s in all", flush=True)


if __name__ == "__main__":
    main()
