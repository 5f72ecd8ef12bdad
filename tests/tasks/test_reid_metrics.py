"""Re-id CMC / mAP: a ranking worked by hand, agreement with a per-query numpy implementation on random
data (both metrics, any chunk size, ties), pairwise distances, and the input checks."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from attnzoo.tasks.reid_metrics import evaluate_ranking, pairwise_distance


def reference(distances: np.ndarray, q_pids, q_cams, g_pids, g_cams, max_rank: int) -> tuple[np.ndarray, float, int]:
    """The protocol read literally, one query at a time: (CMC, mAP, number of valid queries)."""
    cmcs, aps = [], []
    for i in range(len(q_pids)):
        ranking = [
            j for j in np.argsort(distances[i], kind="stable")
            if g_pids[j] != -1 and not (g_pids[j] == q_pids[i] and g_cams[j] == q_cams[i])
        ]
        match_ranks = [r + 1 for r, j in enumerate(ranking) if g_pids[j] == q_pids[i]]
        if not match_ranks:
            continue
        cmcs.append([1.0 if match_ranks[0] <= k + 1 else 0.0 for k in range(max_rank)])
        aps.append(np.mean([(n + 1) / r for n, r in enumerate(match_ranks)]))
    return np.mean(cmcs, axis=0), float(np.mean(aps)), len(aps)


def numpy_distances(query: np.ndarray, gallery: np.ndarray, metric: str) -> np.ndarray:
    if metric == "euclidean":
        return ((query[:, None, :] - gallery[None, :, :]) ** 2).sum(-1)
    unit_q = query / np.linalg.norm(query, axis=1, keepdims=True)
    unit_g = gallery / np.linalg.norm(gallery, axis=1, keepdims=True)
    return 1 - unit_q @ unit_g.T


def random_labels(rng: np.random.Generator, num_queries: int, num_gallery: int, num_cams: int):
    # Ids -1 (junk) to 11: many queries have true matches, some none, and some queries are junk too.
    return [torch.from_numpy(rng.integers(low, high, n)) for low, high, n in
            ((-1, 12, num_queries), (0, num_cams, num_queries), (-1, 12, num_gallery), (0, num_cams, num_gallery))]


def exact_features(rng: np.random.Generator, n: int, metric: str) -> np.ndarray:
    """Features whose distances float32 computes exactly, in any summation order, with many ties.

    Euclidean: multiples of 1/4 in [-1, 1]; cosine: +-1 entries in 16 dims (every norm is 4, so the
    unit vectors are +-1/4). Both implementations then rank on equal distances, and the ties test the
    stable sort.
    """
    if metric == "euclidean":
        return rng.integers(-4, 5, (n, 8)) / 4
    return rng.choice([-1.0, 1.0], (n, 16))


def check_agrees(result: dict, expected: tuple[np.ndarray, float, int]) -> None:
    cmc, mean_ap, num_valid = expected
    assert result["num_valid_queries"] == num_valid
    assert result["cmc"].shape == cmc.shape
    np.testing.assert_allclose(result["cmc"].numpy(), cmc, rtol=0, atol=1e-6)
    assert result["mAP"] == pytest.approx(mean_ap, abs=1e-6)


# Gallery on a line, so that squared distances are obvious: item i at (i, 0).
GALLERY = torch.tensor([[0.0, 0], [1, 0], [2, 0], [3, 0], [4, 0], [5, 0]])
GALLERY_PIDS = torch.tensor([1, 2, 1, -1, 3, 1])
GALLERY_CAMS = torch.tensor([0, 1, 1, 1, 1, 2])
QUERIES = torch.tensor([[0.0, 0], [4.2, 0], [4, 0], [3, 0]])
QUERY_PIDS = torch.tensor([1, 2, 3, -1])
QUERY_CAMS = torch.tensor([0, 0, 1, 0])


def test_hand_worked_ranking():
    # q0 (person 1, camera 0) at (0, 0) ranks g0 g1 g2 g3 g4 g5. g0 is person 1 on camera 0: dropped;
    #   g3 is junk: dropped. Left: g1 (2), g2 (1: match), g4 (3), g5 (1: match). First match at rank 2;
    #   AP = (1/2 + 2/4) / 2 = 0.5 (were junk counted, g5 would be 5th: AP 0.45; were g0 kept, AP 1).
    # q1 (person 2, camera 0) at (4.2, 0) ranks g4 g5 g3 g2 g1 g0; g3 dropped. Left: g4 (3), g5 (1),
    #   g2 (1), g1 (2: match, camera 1), g0 (1). First match at rank 4; AP = 1/4.
    # q2 (person 3, camera 1): its only gallery item g4 is on its camera: no true match, skipped.
    # q3 is junk (person -1): junk gallery items are dropped, so g3 does not match it: skipped.
    # max_rank 8 > 6 gallery items: the CMC keeps 8 entries, the last ones repeating 1.
    result = evaluate_ranking(QUERIES, QUERY_PIDS, QUERY_CAMS, GALLERY, GALLERY_PIDS, GALLERY_CAMS, max_rank=8)
    assert result["num_valid_queries"] == 2
    assert result["cmc"].dtype == torch.float32
    assert result["cmc"].tolist() == [0.0, 0.5, 0.5, 1.0, 1.0, 1.0, 1.0, 1.0]
    assert result["mAP"] == pytest.approx((0.5 + 0.25) / 2, abs=1e-7)
    assert isinstance(result["mAP"], float) and isinstance(result["num_valid_queries"], int)


def test_ties_keep_gallery_order():
    # Two gallery items at the query's own distance 1: a false match (person 2) and a true one (person 1).
    query, pids, cams = torch.tensor([[0.0, 0]]), torch.tensor([1]), torch.tensor([0])
    gallery, gallery_cams = torch.tensor([[1.0, 0], [0, 1]]), torch.tensor([1, 1])
    false_first = evaluate_ranking(query, pids, cams, gallery, torch.tensor([2, 1]), gallery_cams, max_rank=2)
    true_first = evaluate_ranking(query, pids, cams, gallery, torch.tensor([1, 2]), gallery_cams, max_rank=2)
    assert false_first["cmc"].tolist() == [0.0, 1.0] and false_first["mAP"] == 0.5
    assert true_first["cmc"].tolist() == [1.0, 1.0] and true_first["mAP"] == 1.0


def test_pairwise_distance_values():
    query = torch.tensor([[1.0, 0], [3, 4]])
    gallery = torch.tensor([[2.0, 0], [0, 2], [-1, 0], [3, 4]])
    torch.testing.assert_close(pairwise_distance(query, gallery), torch.tensor([[1.0, 5, 4, 20], [17, 13, 32, 0]]))
    torch.testing.assert_close(
        pairwise_distance(query, gallery, "cosine"), torch.tensor([[0.0, 1, 2, 0.4], [0.4, 0.2, 1.6, 0]])
    )
    assert pairwise_distance(query.double(), gallery.half()).dtype == torch.float32


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_pairwise_distance_matches_numpy(metric):
    rng = np.random.default_rng(1)
    query, gallery = rng.standard_normal((20, 32)), rng.standard_normal((40, 32))
    ours = pairwise_distance(torch.from_numpy(query), torch.from_numpy(gallery), metric)
    np.testing.assert_allclose(ours.numpy(), numpy_distances(query, gallery, metric), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("num_cams", [2, 6])
@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_agrees_with_reference(metric, num_cams):
    rng = np.random.default_rng(num_cams)
    query, gallery = exact_features(rng, 50, metric), exact_features(rng, 300, metric)
    labels = random_labels(rng, 50, 300, num_cams)
    expected = reference(numpy_distances(query, gallery, metric), *(t.numpy() for t in labels), max_rank=20)
    assert 0 < expected[2] < 50  # some queries are skipped, not all
    q_pids, q_cams, g_pids, g_cams = labels
    args = (torch.from_numpy(query), q_pids, q_cams, torch.from_numpy(gallery), g_pids, g_cams)
    whole = evaluate_ranking(*args, metric=metric)
    check_agrees(whole, expected)
    chunked = evaluate_ranking(*args, metric=metric, chunk_size=7)
    assert torch.equal(chunked["cmc"], whole["cmc"])
    assert chunked["mAP"] == whole["mAP"] and chunked["num_valid_queries"] == whole["num_valid_queries"]


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_agrees_with_reference_on_continuous_features(metric):
    # Gaussian features: no ties; the reference ranks on our distances, which only float32 rounding
    # could otherwise reorder where two are nearly equal.
    rng = np.random.default_rng(7)
    query, gallery = torch.randn(50, 24), torch.randn(300, 24)
    labels = random_labels(rng, 50, 300, 4)
    distances = pairwise_distance(query, gallery, metric).double().numpy()
    expected = reference(distances, *(t.numpy() for t in labels), max_rank=300)
    q_pids, q_cams, g_pids, g_cams = labels
    check_agrees(evaluate_ranking(query, q_pids, q_cams, gallery, g_pids, g_cams, 300, metric, chunk_size=7), expected)


GOOD = dict(
    query_features=QUERIES, query_pids=QUERY_PIDS, query_camids=QUERY_CAMS,
    gallery_features=GALLERY, gallery_pids=GALLERY_PIDS, gallery_camids=GALLERY_CAMS,
)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"query_pids": QUERY_PIDS[:3]}, "query_pids has 3 entries but query_features has 4 rows"),
        ({"gallery_camids": torch.zeros(7, dtype=torch.int64)}, "gallery_camids has 7 entries but gallery_features"),
        ({"query_features": QUERIES[0]}, "query_features must be a 2-D tensor"),
        ({"gallery_features": GALLERY[None]}, "gallery_features must be a 2-D tensor"),
        ({"gallery_features": torch.zeros(6, 3)}, "same number of dims, got 2 and 3"),
        ({"query_features": QUERIES.long()}, "query_features must be a floating-point tensor"),
        ({"query_pids": QUERY_PIDS[:, None]}, "query_pids must be a 1-D tensor"),
        ({"gallery_pids": GALLERY_PIDS.float()}, "gallery_pids must be an integer tensor"),
        ({"query_camids": [0, 0, 1, 0]}, "query_camids must be a 1-D tensor, got list"),
        ({"metric": "manhattan"}, "metric must be one of euclidean, cosine, got 'manhattan'"),
        ({"max_rank": 0}, "max_rank must be a positive integer"),
        ({"chunk_size": 0}, "chunk_size must be a positive integer"),
        ({"query_pids": torch.tensor([4, 4, 4, 4])}, "no query has a true match"),
        ({"gallery_pids": torch.full((6,), -1)}, "no query has a true match"),
        ({"query_features": torch.zeros(0, 2), "query_pids": QUERY_PIDS[:0], "query_camids": QUERY_CAMS[:0]},
         "no query has a true match"),
    ],
)
def test_bad_input(change, message):
    with pytest.raises(ValueError, match=message):
        evaluate_ranking(**{**GOOD, **change})


def test_pairwise_distance_bad_input():
    with pytest.raises(ValueError, match="pairwise_distance: metric must be one of"):
        pairwise_distance(QUERIES, GALLERY, "l1")
    with pytest.raises(ValueError, match="query and gallery must have the same number of dims"):
        pairwise_distance(QUERIES, torch.zeros(6, 3))
    with pytest.raises(ValueError, match="gallery must be a 2-D tensor"):
        pairwise_distance(QUERIES, GALLERY[0])
