"""Clustering a pool of sentence vectors: principal components, then scikit-learn's HDBSCAN.

HDBSCAN finds clusters of any number and density and leaves the rest as noise, which is what a
pool of survey sentences needs: most sentences belong to no new theme. scikit-learn's
implementation is maintained, deterministic for a given input order and needs nothing compiled
beyond scikit-learn (BERTopic's default UMAP step uses random projections that differ between
runs unless seeded, and between CPUs even then). A few principal components first keep the
density estimate meaningful and the tree search fast; they come from the eigendecomposition of
the pool's 384 × 384 covariance (numpy's ``eigh``: milliseconds, where a full SVD of the pool
takes half a second), with each component's sign fixed, so the same pool gives the same
projection.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def find_clusters(vectors: NDArray[np.float32], min_size: int, dimensions: int) -> list[NDArray[np.int64]]:
    """Clusters of rows of ``vectors`` (each a sorted index array), largest first; noise left out."""
    from sklearn.cluster import HDBSCAN

    if len(vectors) < 2 * min_size:
        return []
    reduced = principal_components(vectors, min(dimensions, vectors.shape[1], len(vectors) - 1))
    labels = HDBSCAN(min_cluster_size=min_size, min_samples=max(1, min_size // 2), copy=True).fit_predict(
        reduced
    )
    clusters = [np.flatnonzero(labels == label) for label in range(int(labels.max()) + 1)]
    return sorted(clusters, key=lambda c: (-len(c), int(c[0])))


def principal_components(vectors: NDArray[np.float32], count: int) -> NDArray[np.float64]:
    """``vectors`` projected on their ``count`` largest principal axes (signs fixed so the largest
    coefficient of each axis is positive)."""
    centred = vectors.astype(np.float64) - vectors.mean(axis=0, dtype=np.float64)
    _, axes = np.linalg.eigh(centred.T @ centred)
    top = axes[:, ::-1][:, :count]
    top *= np.sign(top[np.abs(top).argmax(axis=0), np.arange(count)])
    return centred @ top
