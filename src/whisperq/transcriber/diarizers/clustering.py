"""Speaker clustering over the embeddings of a whole recording.

Agglomerative clustering (average linkage on cosine distance) proposes a grouping for each number of
speakers the hints allow; each proposal is refined by moving every piece to its nearest centroid (a few
rounds of spherical k-means, pieces weighted by their speech); the number kept is the one whose grouping
separates best (the mean silhouette), or one speaker when no grouping separates clearly (even the two
furthest groups are closer than a voice is to itself). A voice heard too little to be a speaker of its own
(a cough, a laugh) joins its nearest voice, unless the hints ask for that many speakers.
"""

from __future__ import annotations

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage

from whisperq.core.speakers import SpeakerHints

# Average-linkage cosine distance under which the whole recording is taken for one voice (sentences read by
# the benchmark's six voices are 0.26 to 0.52 apart from voice to voice, 0.07 within one: docs/diarization.md).
ONE_VOICE_DISTANCE = 0.3
# A grouping must reach this mean silhouette to count more than one speaker.
MIN_SILHOUETTE = 0.1
# The most speakers tried when the client gives no maximum (a meeting seldom has more).
DEFAULT_MOST = 8
MIN_SPEAKER_S = 2.0
MIN_SPEAKER_SHARE = 0.02
REFINE_ROUNDS = 5
# Linkage needs a distance matrix (n^2): past this many pieces, the grouping runs on an even sample of
# them and the rest go to the nearest centroid (a 2-hour recording is ~2,500 pieces of 3 s).
MAX_LINKED = 3000


def _onehot(labels: np.ndarray, k: int) -> np.ndarray:
    return np.eye(k, dtype=np.float64)[labels]


def _refine(vectors: np.ndarray, labels: np.ndarray, weights: np.ndarray, k: int) -> np.ndarray:
    """Spherical k-means from `labels` (0..k-1): every piece to its nearest weighted centroid."""
    for _ in range(REFINE_ROUNDS):
        sums = _onehot(labels, k).T @ (vectors * weights[:, None])
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        alive = norms[:, 0] > 0
        centroids = sums[alive] / norms[alive]
        moved = np.argmax(vectors @ centroids.T, axis=1)
        if len(centroids) == k and np.array_equal(moved, labels):
            break
        labels, k = moved, len(centroids)
    return labels


def _silhouette(distances: np.ndarray, labels: np.ndarray) -> float:
    k = int(labels.max()) + 1
    if k < 2:
        return -1.0
    onehot = _onehot(labels, k)
    counts = onehot.sum(axis=0)
    mean_to = distances @ onehot  # n x k: summed distance to each cluster
    own = labels
    own_count = counts[own] - 1
    a = np.where(own_count > 0, mean_to[np.arange(len(labels)), own] / np.maximum(own_count, 1), 0.0)
    others = mean_to / np.maximum(counts, 1)
    others[np.arange(len(labels)), own] = np.inf
    b = others.min(axis=1)
    s = np.where(own_count > 0, (b - a) / np.maximum(np.maximum(a, b), 1e-9), 0.0)
    return float(s.mean())


def _dense(labels: np.ndarray) -> np.ndarray:
    """Labels renumbered 0..k-1 in order of first appearance."""
    order: dict[int, int] = {}
    for name in labels:
        order.setdefault(int(name), len(order))
    return np.array([order[int(name)] for name in labels], dtype=int)


def _centroids(vectors: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> np.ndarray:
    sums = _onehot(labels, int(labels.max()) + 1).T @ (vectors * weights[:, None])
    return sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-9)


def _merge_minor(vectors: np.ndarray, labels: np.ndarray, weights: np.ndarray, minor_s: float,
                 keep_at_least: int) -> np.ndarray:
    """Voices heard for less than `minor_s` join their nearest voice (while more than `keep_at_least` remain)."""
    while True:
        k = int(labels.max()) + 1
        heard = _onehot(labels, k).T @ weights
        smallest = int(np.argmin(heard))
        if k <= keep_at_least or heard[smallest] >= minor_s:
            return labels
        member = labels == smallest
        scores = vectors[member] @ _centroids(vectors, labels, weights).T
        scores[:, smallest] = -np.inf
        labels = labels.copy()
        labels[member] = np.argmax(scores, axis=1)
        labels = _dense(labels)


def cluster(vectors: np.ndarray, durations_s: np.ndarray, hints: SpeakerHints) -> np.ndarray:
    """A speaker index for each embedding (rows of `vectors`, L2-normed; `durations_s` the speech each
    stands for), numbered by first appearance."""
    count = len(vectors)
    if count == 0:
        return np.zeros(0, dtype=int)
    usable = np.isfinite(vectors).all(axis=1) & (np.linalg.norm(np.nan_to_num(vectors), axis=1) > 1e-6)
    if not usable.all():
        # A piece with no usable embedding (digital silence, a broken sample) takes its neighbour's voice.
        if not usable.any():
            return np.zeros(count, dtype=int)
        labels = np.full(count, -1)
        labels[usable] = cluster(vectors[usable], durations_s[usable], hints)
        for index in range(count):
            if labels[index] < 0:
                near = np.flatnonzero(usable)
                labels[index] = labels[near[np.argmin(np.abs(near - index))]]
        return _dense(labels)
    most = min(hints.count or hints.most or max(DEFAULT_MOST, hints.least), count)
    if count == 1 or most == 1:
        return np.zeros(count, dtype=int)
    sample = np.linspace(0, count - 1, min(count, MAX_LINKED)).round().astype(int)
    linked, weights = vectors[sample].astype(np.float64), durations_s[sample].astype(np.float64)
    tree = linkage(linked, method="average", metric="cosine")
    distances = np.clip(1.0 - linked @ linked.T, 0.0, 2.0)
    candidates = [most] if hints.count is not None else list(range(min(max(hints.least, 2), most), most + 1))
    best, best_score = np.zeros(len(sample), dtype=int), -1.0
    for k in candidates:
        labels = _refine(linked, fcluster(tree, k, criterion="maxclust") - 1, weights, k)
        score = _silhouette(distances, _dense(labels))
        if score > best_score:
            best, best_score = _dense(labels), score
    one_voice = tree[-1, 2] < ONE_VOICE_DISTANCE or best_score < MIN_SILHOUETTE
    if hints.count is None and hints.least <= 1 and one_voice:
        best = np.zeros(len(sample), dtype=int)
    if hints.count is None:
        minor_s = max(MIN_SPEAKER_S, MIN_SPEAKER_SHARE * float(weights.sum()))
        best = _merge_minor(linked, best, weights, minor_s, keep_at_least=hints.least)
    return _dense(np.argmax(vectors @ _centroids(linked, best, weights).T, axis=1))
