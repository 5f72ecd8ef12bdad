"""Person re-identification ranking metrics: CMC and mAP by the Market-1501 / MARS protocol, in torch.

The protocol is the one of Market-1501 (Zheng et al., "Scalable Person
Re-identification: A Benchmark", ICCV 2015) that MARS (Zheng et al., "MARS: A
Video Benchmark for Large-Scale Person Re-identification", ECCV 2016) keeps for
video (one embedding per tracklet). torchreid's ``eval_market1501``
(``torchreid/metrics/rank.py``) is the reference implementation it reproduces:

- each query ranks the whole gallery by distance, nearest first: squared
  Euclidean by default, or ``"cosine"`` (1 - cosine similarity);
- the gallery items of the query's person seen by the query's camera are
  dropped from its ranking (they would be too easy a match);
- junk gallery items (person id -1) are dropped for every query, as
  torchreid's datasets drop them before evaluation (a query of person -1 thus
  has no true match); Market-1501's distractors (person id 0) stay, as
  ordinary false matches;
- a true match is a remaining gallery item of the query's person; a query
  left with none is skipped, not counted as a failure;
- CMC: ``cmc[k]`` is the fraction of the valid queries whose first true match
  is within the top k + 1 of the remaining ranking;
- AP of a query: the mean, over its true matches, of the precision at the
  match's rank (true matches in the top i, over i); mAP: the mean AP over the
  valid queries.

Ties in distance keep the gallery's order (a stable sort), so that results do
not depend on the device or on the sort's algorithm. torchreid's ``argsort``
is not stable, which matters only for exactly tied distances.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from attnzoo._checks import check_int

__all__ = ["evaluate_ranking", "pairwise_distance"]

METRICS = ("euclidean", "cosine")
JUNK_PID = -1


def _check_metric(owner: str, metric: str) -> None:
    if metric not in METRICS:
        raise ValueError(f"{owner}: metric must be one of {', '.join(METRICS)}, got {metric!r}")


def _check_features(owner: str, name: str, features: object) -> None:
    if not isinstance(features, Tensor) or features.dim() != 2:
        shape = tuple(features.shape) if isinstance(features, Tensor) else type(features).__name__
        raise ValueError(f"{owner}: {name} must be a 2-D tensor (items, dims), got {shape}")
    if not features.is_floating_point():
        raise ValueError(f"{owner}: {name} must be a floating-point tensor, got {features.dtype}")


def _check_pair(owner: str, names: tuple[str, str], query: object, gallery: object) -> None:
    """Both 2-D floating-point tensors with the same number of dims."""
    _check_features(owner, names[0], query)
    _check_features(owner, names[1], gallery)
    if query.shape[1] != gallery.shape[1]:
        raise ValueError(
            f"{owner}: {names[0]} and {names[1]} must have the same number of dims, "
            f"got {query.shape[1]} and {gallery.shape[1]}"
        )


def pairwise_distance(query: Tensor, gallery: Tensor, metric: str = "euclidean") -> Tensor:
    """Distances (Q, G) from each query row (Q, D) to each gallery row (G, D), in float32.

    ``"euclidean"``: the squared Euclidean distance, ``||q||^2 + ||g||^2 - 2 q.g``
    clamped at 0 (the expansion can round below 0 for near-identical rows);
    ``"cosine"``: 1 - cosine similarity (a zero row has similarity 0 to all).
    """
    owner = "pairwise_distance"
    _check_pair(owner, ("query", "gallery"), query, gallery)
    _check_metric(owner, metric)
    # Half-precision embeddings would tie and reorder neighbours that float32 tells apart.
    query, gallery = query.float(), gallery.float()
    if metric == "cosine":
        return 1 - F.normalize(query, dim=1) @ F.normalize(gallery, dim=1).T
    squares = query.square().sum(dim=1, keepdim=True) + gallery.square().sum(dim=1)
    return torch.addmm(squares, query, gallery.T, alpha=-2).clamp_min_(0)


def _check_labels(owner: str, name: str, labels: object, count: int, features_name: str) -> None:
    if not isinstance(labels, Tensor) or labels.dim() != 1:
        shape = tuple(labels.shape) if isinstance(labels, Tensor) else type(labels).__name__
        raise ValueError(f"{owner}: {name} must be a 1-D tensor, got {shape}")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise ValueError(f"{owner}: {name} must be an integer tensor, got {labels.dtype}")
    if len(labels) != count:
        raise ValueError(f"{owner}: {name} has {len(labels)} entries but {features_name} has {count} rows")


def _rank_chunk(
    distances: Tensor, query_pids: Tensor, query_camids: Tensor, gallery_pids: Tensor, gallery_camids: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Each query's 0-based rank of its first true match, its AP and whether it has a true match."""
    num_rows = len(distances)
    order = torch.sort(distances, dim=1, stable=True).indices
    # Only the gallery items of the query's own person count: its true matches and those dropped for
    # sharing its camera. They are a handful per query, so past the sort the work is done on a
    # (rows, most such items in a row) table of them, nearest first, not on (rows, G) ones.
    same_pid = (query_pids[:, None] == gallery_pids).gather(1, order)
    row, position = same_pid.nonzero(as_tuple=True)  # by row, then nearest first
    # Where each row's items start in that list (searchsorted: bincount is not deterministic on CUDA).
    starts = torch.searchsorted(row, torch.arange(num_rows + 1, device=row.device))
    width = int(starts.diff().max())
    if width == 0:
        zeros = torch.zeros(num_rows, dtype=torch.int64, device=row.device)
        return zeros, zeros.double(), zeros.bool()
    column = torch.arange(len(row), device=row.device) - starts[row]
    other_cam = gallery_camids[order[row, position]] != query_camids[row]
    true = torch.zeros(num_rows, width, dtype=torch.bool, device=row.device)
    true[row, column] = other_cam
    dropped = torch.zeros_like(true)
    dropped[row, column] = ~other_cam
    ranked = torch.zeros(num_rows, width, dtype=torch.int64, device=row.device)
    ranked[row, column] = position
    # Ranks count the kept items only: each dropped item nearer than a true match moves it up one.
    rank = ranked + 1 - dropped.cumsum(dim=1)
    found = true.cumsum(dim=1)
    num_true = found[:, -1]
    # argmax gives the first maximum, here the first true match (0 for a query with none, masked by valid).
    first = rank.gather(1, true.to(torch.uint8).argmax(dim=1, keepdim=True)).squeeze(1) - 1
    precision = torch.where(true, found.double() / rank, 0)
    # A running sum adds each row's terms in one order, whatever the table's width, where sum's vector
    # lanes would group them by it: a query's AP then does not change with the queries chunked with it.
    ap = precision.cumsum(dim=1)[:, -1] / num_true.clamp_min(1)
    return first, ap, num_true > 0


@torch.no_grad()  # a metric: features that require grad must not build a graph through the sort
def evaluate_ranking(
    query_features: Tensor,
    query_pids: Tensor,
    query_camids: Tensor,
    gallery_features: Tensor,
    gallery_pids: Tensor,
    gallery_camids: Tensor,
    max_rank: int = 20,
    metric: str = "euclidean",
    chunk_size: int = 1024,
) -> dict[str, Tensor | float | int]:
    """CMC and mAP of a query set against a gallery by the Market-1501 / MARS protocol (see the module).

    Features are (Q, D) and (G, D) floating-point tensors on one device, where
    the work is done; ids and camera ids are 1-D integer tensors of Q and G
    entries (moved to that device if elsewhere). Queries are ranked
    ``chunk_size`` at a time, so memory grows as chunk_size x G (about 20 bytes
    per pair at the peak: some 200 MiB for the default 1024 rows against a
    10,000-item gallery), not as Q x G. Ties in distance are broken by gallery
    order (stable sort).

    Returns ``{"cmc": (max_rank,) float32 CPU tensor, "mAP": float,
    "num_valid_queries": int}``. Where max_rank exceeds the gallery size,
    torchreid warns and shortens the CMC; here it keeps max_rank entries, those
    past the gallery's end repeating the last one (1.0, as every valid query
    finds its first true match within the gallery), so its shape does not
    depend on the data. A ValueError if no query has a true match.
    """
    owner = "evaluate_ranking"
    _check_pair(owner, ("query_features", "gallery_features"), query_features, gallery_features)
    if query_features.device != gallery_features.device:
        raise ValueError(
            f"{owner}: query_features and gallery_features must be on one device, "
            f"got {query_features.device} and {gallery_features.device}"
        )
    num_queries, num_gallery = len(query_features), len(gallery_features)
    _check_labels(owner, "query_pids", query_pids, num_queries, "query_features")
    _check_labels(owner, "query_camids", query_camids, num_queries, "query_features")
    _check_labels(owner, "gallery_pids", gallery_pids, num_gallery, "gallery_features")
    _check_labels(owner, "gallery_camids", gallery_camids, num_gallery, "gallery_features")
    check_int(owner, "max_rank", max_rank, 1)
    check_int(owner, "chunk_size", chunk_size, 1)
    _check_metric(owner, metric)

    device = query_features.device
    query_pids, query_camids = query_pids.to(device), query_camids.to(device)
    gallery_pids, gallery_camids = gallery_pids.to(device), gallery_camids.to(device)
    # Dropping junk before ranking keeps the other items' relative order, so ranks are as if it were skipped.
    useful = gallery_pids != JUNK_PID
    gallery_features, gallery_pids, gallery_camids = (
        gallery_features[useful], gallery_pids[useful], gallery_camids[useful]
    )

    ranks = torch.arange(max_rank, device=device)
    hits = torch.zeros(max_rank, dtype=torch.int64, device=device)
    aps = []
    for start in range(0, num_queries, chunk_size):
        stop = start + chunk_size
        distances = pairwise_distance(query_features[start:stop], gallery_features, metric)
        first, ap, valid = _rank_chunk(
            distances, query_pids[start:stop], query_camids[start:stop], gallery_pids, gallery_camids
        )
        hits += (first[valid, None] <= ranks).sum(dim=0)
        aps.append(ap[valid])
    # Averaged on the CPU, so that mAP does not depend on the device's reductions.
    aps = torch.cat(aps).cpu() if aps else torch.zeros(0, dtype=torch.float64)
    num_valid = len(aps)
    if num_valid == 0:
        raise ValueError(
            f"{owner}: no query has a true match in the gallery (a gallery item of its person id, not junk, "
            "from another camera), so CMC and mAP are undefined"
        )
    return {
        "cmc": (hits.cpu().double() / num_valid).float(),
        "mAP": aps.mean().item(),
        "num_valid_queries": num_valid,
    }
