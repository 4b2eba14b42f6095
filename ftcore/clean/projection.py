"""The map of the photos: every photo's vector placed on a plane so that alike photos sit close together."""

from __future__ import annotations

import numpy as np

MAP_DIMENSIONS = 50  # PCA keeps this many directions before t-SNE lays them out (t-SNE's usual first step)
TSNE_LIMIT = 5000  # above this many photos the map is PCA's first two directions: t-SNE's time grows past a minute
SEED = 0  # the same photos give the same map


def photo_map(vectors: np.ndarray) -> np.ndarray:
    """(x, y) of every photo: t-SNE of the vectors, or PCA above TSNE_LIMIT photos (or below 3)."""
    # here: listing and editing photos needs no scikit-learn
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    n = len(vectors)
    if n < 3:
        return np.zeros((n, 2))
    reduced = PCA(min(MAP_DIMENSIONS, n - 1, vectors.shape[1]), random_state=SEED).fit_transform(vectors)
    if n > TSNE_LIMIT:
        return reduced[:, :2]
    return TSNE(2, init="pca", perplexity=min(30.0, (n - 1) / 3), random_state=SEED).fit_transform(reduced)
