"""Video person re-identification: attnzoo's ranking evaluation (CMC, mAP) against a numpy reference, and the
throughput of each temporal aggregation.

    python benchmarks/reid.py                                  # CPU, and CUDA if present
    python benchmarks/reid.py --device cpu --repeats 1
    python benchmarks/reid.py --device cuda --queries 4000 --gallery 40000
    python benchmarks/reid.py --only ranking
    python benchmarks/reid.py --only temporal --backbone resnet18n --frame-size 64 32
    python benchmarks/reid.py --only entries --corrupted 0.25 0.5

Entries (``--only entries``): each re-ID zoo entry (or ``--models``) on
TrackletsData's test split, rebuilt with each ``--corrupted`` share of
corrupted frames (the entries were trained at 0.25): rank-1 and mAP in
percent, as ``attnzoo test`` ranks them. More corrupted frames is where
weighting the frames should matter.

Temporal aggregation (``--only temporal``): tracklets/s at inference of
``<backbone>+<temporal>`` for each of ``avg``, ``max``, ``sta``, ``soft`` and
``hard`` (random weights, eval mode, no gradient; torch.utils.benchmark's
median of blocked runs), and the ratio to ``avg``: the same backbone and
BNNeck, so the ratio is the aggregation's own cost. Defaults: ResNet-50
(last stride 1), batches of 8 tracklets of 4 frames of 256 x 128, as the
video re-ID papers feed MARS.

Ranking (``--only ranking``): ``attnzoo.tasks.reid_metrics.evaluate_ranking``
on --queries query and --gallery gallery embeddings of --dim dims (default
2,000 x 10,000 x 2,048, about MARS's test split: 1,980 query and 9,330
gallery tracklets), against the Market-1501 evaluation as torchreid's numpy
``eval_market1501`` does it, written here: squared Euclidean distances in
float32, one ``argsort`` of the whole matrix, then a loop over the queries
that drops the gallery items of the query's person and camera and computes
the query's CMC and AP (vectorised within the query, where torchreid's AP
goes through a Python list comprehension, slower still). Both are timed
from the features to CMC and mAP: distances included, the features already
on the device.

The data: person ids drawn over 600 ids (so that almost every query has true
matches), 3 % of the gallery junk (id -1, which both implementations drop),
6 cameras; Gaussian features rounded to multiples of 1/16. The rounding makes
every float32 distance exact whatever the order of the matrix product's sums
(each product is a multiple of 1/256 and, for --dim up to about 15,000,
every partial sum stays below 2^24 / 256), so the two implementations rank
on equal distances and must agree to the rounding of the averages: the table
shows their largest CMC difference and their mAP difference, and the script
fails if either exceeds 1e-6. (With continuous features float32 rounding could reorder neighbours
whose distances differ by ~1e-4 relative, and the figures would differ there.)
Ties, a few hundred per query here, keep the gallery's order in both (stable
sorts).

Each implementation runs --repeats times, in rounds that alternate their
order so that load from other processes falls on all alike, after one
untimed warm-up call of the torch one per device; seconds are the median,
with the range over rounds. The ratio is numpy's median seconds over the
implementation's (> 1: faster than numpy).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np
import torch

from attnzoo.tasks.reid_metrics import evaluate_ranking
from measure import machine

NUM_IDS = 600
NUM_CAMS = 6
JUNK_FRACTION = 0.03
QUANTUM = 16  # features are multiples of 1 / QUANTUM, so that float32 distances are exact
MAX_RANK = 20
KEYS = ("query_features", "query_pids", "query_camids", "gallery_features", "gallery_pids", "gallery_camids")
TOLERANCE = 1e-6


def market1501_numpy(
    qf: np.ndarray, q_pids: np.ndarray, q_cams: np.ndarray, gf: np.ndarray, g_pids: np.ndarray, g_cams: np.ndarray,
    max_rank: int, parts: dict[str, float],
) -> tuple[np.ndarray, float]:
    """CMC and mAP the way torchreid's numpy eval_market1501 gets them; ``parts`` receives the seconds of each step."""
    start = time.perf_counter()
    useful = g_pids != -1  # torchreid's datasets drop the junk before evaluating
    gf, g_pids, g_cams = gf[useful], g_pids[useful], g_cams[useful]
    distances = (qf * qf).sum(1)[:, None] + (gf * gf).sum(1)[None, :] - 2 * qf @ gf.T
    np.maximum(distances, 0, out=distances)
    parts["distances"] = time.perf_counter() - start
    order = np.argsort(distances, axis=1, kind="stable")
    parts["argsort"] = time.perf_counter() - start - parts["distances"]
    matches = g_pids[order] == q_pids[:, None]
    cmcs, aps = [], []
    for i, ranked in enumerate(order):
        kept = ~((g_pids[ranked] == q_pids[i]) & (g_cams[ranked] == q_cams[i]))
        hits = matches[i][kept]
        if not hits.any():
            continue
        cmc = np.cumsum(hits[:max_rank]) > 0
        # Padded with its last value where the kept gallery is shorter than max_rank, as attnzoo reports it.
        cmcs.append(np.pad(cmc, (0, max_rank - len(cmc)), mode="edge"))
        ranks = np.flatnonzero(hits) + 1
        aps.append((np.arange(1, len(ranks) + 1) / ranks).mean())
    parts["loop"] = time.perf_counter() - start - parts["distances"] - parts["argsort"]
    return np.mean(cmcs, axis=0), float(np.mean(aps))


def ranking_data(args: argparse.Namespace) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    data = {}
    for side, count in (("query", args.queries), ("gallery", args.gallery)):
        features = np.round(rng.standard_normal((count, args.dim), dtype=np.float32) * QUANTUM) / QUANTUM
        data[f"{side}_features"] = features
        data[f"{side}_pids"] = rng.integers(0, NUM_IDS, count)
        data[f"{side}_camids"] = rng.integers(0, NUM_CAMS, count)
    data["gallery_pids"][rng.random(args.gallery) < JUNK_FRACTION] = -1
    return data


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def seconds_cell(times: list[float]) -> str:
    return f"{statistics.median(times):.3f} ({min(times):.3f}-{max(times):.3f})"


def ranking_section(args: argparse.Namespace) -> tuple[str, bool]:
    """The ranking table, and whether every implementation agrees with numpy within TOLERANCE."""
    print("ranking: making the data", file=sys.stderr, flush=True)
    data = ranking_data(args)
    on_device = {}
    for name in args.device:
        device = torch.device(name)
        on_device[name] = {key: torch.from_numpy(value).to(device) for key, value in data.items()}

    def run_torch(name: str) -> dict:
        return evaluate_ranking(**on_device[name], max_rank=MAX_RANK, chunk_size=args.chunk_size)

    numpy_parts: list[dict[str, float]] = []

    def run_numpy() -> tuple[np.ndarray, float]:
        numpy_parts.append({})
        return market1501_numpy(*(data[key] for key in KEYS), max_rank=MAX_RANK, parts=numpy_parts[-1])

    runners: dict[str, Callable[[], object]] = {"numpy": run_numpy}
    for name in args.device:
        run_torch(name)  # warm-up: CUDA context and kernels, allocator
        runners[name] = lambda name=name: run_torch(name)
    times: dict[str, list[float]] = {key: [] for key in runners}
    results: dict[str, object] = {}
    for index in range(args.repeats):
        order = list(runners) if index % 2 == 0 else list(runners)[::-1]
        for key in order:
            seconds, results[key] = timed(runners[key])
            times[key].append(seconds)
        print(f"  round {index + 1}/{args.repeats} done", file=sys.stderr, flush=True)

    numpy_cmc, numpy_map = results["numpy"]
    reference = statistics.median(times["numpy"])
    lines = [
        "| implementation | device | seconds (range) | ratio vs numpy | max abs diff CMC | abs diff mAP |",
        "|---|---|---:|---:|---:|---:|",
        f"| numpy reference (per-query loop) | cpu | {seconds_cell(times['numpy'])} | 1.00 | - | - |",
    ]
    agree = True
    for name in args.device:
        result = results[name]
        cmc_diff = float(np.abs(result["cmc"].double().numpy() - numpy_cmc).max())
        map_diff = abs(result["mAP"] - numpy_map)
        agree &= cmc_diff <= TOLERANCE and map_diff <= TOLERANCE
        lines.append(
            f"| `evaluate_ranking` | {name} | {seconds_cell(times[name])} "
            f"| {reference / statistics.median(times[name]):.2f} | {cmc_diff:.1e} | {map_diff:.1e} |"
        )
    result = results[args.device[0]]
    parts = {key: statistics.median(p[key] for p in numpy_parts) for key in numpy_parts[0]}
    cmc = result["cmc"]
    lines += [
        "",
        f"numpy's median seconds by step: {', '.join(f'{key} {value:.3f}' for key, value in parts.items())}.",
        f"{result['num_valid_queries']} valid queries of {args.queries}; rank-1 {cmc[0]:.4f}, rank-5 {cmc[4]:.4f}, "
        f"rank-{MAX_RANK} {cmc[-1]:.4f}, mAP {result['mAP']:.6f} (numpy: rank-1 {numpy_cmc[0]:.4f}, "
        f"mAP {numpy_map:.6f}).",
        f"agreement with numpy within {TOLERANCE:g}: {'yes' if agree else 'NO'}",
    ]
    title = (f"Ranking: CMC (max rank {MAX_RANK}) and mAP, {args.queries} queries x {args.gallery} gallery, "
             f"{args.dim} dims, chunks of {args.chunk_size} queries")
    return f"### {title}\n\n" + "\n".join(lines), agree


def temporal_section(args: argparse.Namespace) -> tuple[str, bool]:
    """Tracklets/s at inference of one network with each temporal aggregation, and each one's cost over
    ``avg`` (the same backbone and BNNeck; only the aggregation differs), on every device; timed in
    --repeats rounds that alternate the order, each ratio the median of the per-round ratios."""
    from torch.utils import benchmark

    import attnzoo
    from attnzoo.backbones import TEMPORAL

    height, width = args.frame_size
    lines = ["| network | device | tracklets/s | vs avg (range) |", "|---|---|---:|---:|"]
    for name in args.device:
        device = torch.device(name)
        x = torch.rand(args.tracklets, args.seq_len, 3, height, width, device=device)
        timers = {}
        for temporal in TEMPORAL:
            model = attnzoo.create_model(f"{args.backbone}+{temporal}").eval().to(device)
            with torch.no_grad():
                model(x)  # warm-up
            timers[temporal] = benchmark.Timer("with torch.no_grad(): model(x)", globals={"model": model, "x": x, "torch": torch})
        seconds: dict[str, list[float]] = {t: [] for t in TEMPORAL}
        for index in range(args.repeats):
            for temporal in TEMPORAL if index % 2 == 0 else TEMPORAL[::-1]:
                seconds[temporal].append(timers[temporal].blocked_autorange(min_run_time=args.min_run_time).median)
            print(f"  temporal round {index + 1}/{args.repeats} on {name} done", file=sys.stderr, flush=True)
        for temporal in TEMPORAL:
            ratios = [a / t for a, t in zip(seconds["avg"], seconds[temporal])]
            rate = args.tracklets / statistics.median(seconds[temporal])
            spread = f"{statistics.median(ratios):.3f} ({min(ratios):.2f}-{max(ratios):.2f})"
            lines.append(f"| `{args.backbone}+{temporal}` | {name} | {rate:.1f} | {spread} |")
    title = (f"Temporal aggregation: tracklets/s at inference (eval, no gradient), batches of {args.tracklets} "
             f"tracklets of {args.seq_len} frames of {height} x {width}; ratio > 1: faster than avg")
    return f"### {title}\n\n" + "\n".join(lines), True


def entries_section(args: argparse.Namespace) -> tuple[str, bool]:
    """Each re-ID zoo entry (or --models) on TrackletsData's test split at each --corrupted fraction of
    corrupted frames (the entries train at 0.25): rank-1 and mAP in percent, dense evaluation."""
    import attnzoo
    from attnzoo.backbones.video import embed_loader
    from attnzoo.data import TrackletsData
    from attnzoo.zoo.catalog import catalog

    names = args.models or sorted(name for name, entry in catalog().items() if entry.task == "reid")
    header = " | ".join(f"{f:g} corrupted: rank-1 / mAP" for f in args.corrupted)
    lines = [f"| entry | {header} |", "|---|" + "---:|" * len(args.corrupted)]
    for name in names:
        model = attnzoo.load(name)
        _, height, width = model.pretrained_cfg["input_size"]
        seq_len = model.pretrained_cfg["seq_len"]
        cells = []
        for fraction in args.corrupted:
            data = TrackletsData(frame_size=(height, width), seq_len=seq_len, corrupted_fraction=fraction)
            data.trainer = None
            query, gallery = (embed_loader(model, loader, seq_len) for loader in data.test_dataloader())
            result = evaluate_ranking(*query, *gallery)
            cells.append(f"{100 * float(result['cmc'][0]):.1f} / {100 * result['mAP']:.1f}")
            print(f"  {name} at {fraction:g} done", file=sys.stderr, flush=True)
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    title = "Zoo entries on TrackletsData's test split (32 identities), by the share of corrupted frames"
    return f"### {title}\n\n" + "\n".join(lines), True


SECTIONS: dict[str, Callable[[argparse.Namespace], tuple[str, bool]]] = {
    "ranking": ranking_section,
    "temporal": temporal_section,
    "entries": entries_section,
}


def load() -> str:
    return " / ".join(f"{v:.1f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=2000, help="query embeddings (default: 2000)")
    parser.add_argument("--gallery", type=int, default=10000, help="gallery embeddings (default: 10000)")
    parser.add_argument("--dim", type=int, default=2048, help="embedding dims (default: 2048)")
    parser.add_argument("--device", choices=("cpu", "cuda"), action="append",
                        help="where evaluate_ranking runs; repeatable (default: cpu, and cuda if present)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each implementation (default: 3)")
    parser.add_argument("--chunk-size", type=int, default=1024, help="evaluate_ranking's queries per chunk")
    parser.add_argument("--only", choices=tuple(SECTIONS), help="print one table only")
    parser.add_argument("--backbone", default="resnet50", help="frame backbone of the temporal table (default: resnet50)")
    parser.add_argument("--tracklets", type=int, default=8, help="tracklets per batch in the temporal table")
    parser.add_argument("--seq-len", type=int, default=4, help="frames per tracklet in the temporal table")
    parser.add_argument("--frame-size", type=int, nargs=2, default=(256, 128), metavar=("H", "W"),
                        help="frame height and width in the temporal table (default: 256 128, MARS's)")
    parser.add_argument("--min-run-time", type=float, default=1.0, help="seconds per timing in the temporal table")
    parser.add_argument("--models", nargs="+", help="entries table: zoo names or folders (default: the zoo's re-ID entries)")
    parser.add_argument("--corrupted", type=float, nargs="+", default=(0.25, 0.5),
                        help="entries table: shares of corrupted frames in the test tracklets (default: 0.25 0.5)")
    args = parser.parse_args()
    args.device = list(dict.fromkeys(args.device or ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]))
    if "cuda" in args.device and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available")
    for name in ("queries", "gallery", "dim", "repeats", "chunk_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")

    start = time.perf_counter()
    machines = "; ".join(f"{name}: {machine(torch.device(name))}" for name in args.device)
    print(f"## {machines}; torch {torch.__version__}, numpy {np.__version__}, {torch.get_num_threads()} torch threads, "
          f"{args.repeats} repeats, load average at start {load()}", flush=True)
    agree = True
    for name, section in SECTIONS.items():
        if args.only in (None, name):
            table, ok = section(args)
            agree &= ok
            print(f"\n{table}", flush=True)
    print(f"\nload average at end {load()}; {time.perf_counter() - start:.0f} s in all", flush=True)
    if not agree:
        sys.exit("some implementation disagrees with the numpy reference")


if __name__ == "__main__":
    main()
