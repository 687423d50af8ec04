"""Independent NumPy implementations used as references by the tests."""

import numpy as np


def brnpa_numpy(features, n_parts, refine=True, epsilon=1e-5, start_indices=None,
                clamp_negative=False):
    """DESIGN.md section 1.1, written directly in float64 NumPy.

    ``clamp_negative=True``: negative similarities count as 0 (the layer's
    rule for signed features; no effect on non-negative features).

    ``features``: (B, H, W, C). ``start_indices``: optional (n_parts, B)
    locations to use instead of the argmax (for the random ablation).
    Returns (vectors (B, n_parts*C), maps (B, H, W, n_parts), norm (B, H, W)).
    """
    f = np.asarray(features, dtype=np.float64)
    b, h, w, c = f.shape
    flat = f.reshape(b, h * w, c)
    norm = np.linalg.norm(flat, axis=-1) + epsilon
    out_vectors = np.zeros((b, n_parts * c))
    out_maps = np.zeros((b, h * w, n_parts))
    for i in range(b):
        score = norm[i].copy()
        for k in range(n_parts):
            j = int(np.argmax(score)) if start_indices is None else int(start_indices[k][i])
            r = flat[i, j]
            s = flat[i] @ r / (norm[i] * norm[i, j])
            if clamp_negative:
                s = np.maximum(s, 0.0)
            total = s.sum()
            if abs(total) > 1e-12:
                a = s / total
            else:
                a = np.full(h * w, 1.0 / (h * w))
            v = a @ flat[i] if refine else r
            out_vectors[i, k * c:(k + 1) * c] = v
            out_maps[i, :, k] = a
            score = (1 - s) * score
    return out_vectors, out_maps.reshape(b, h, w, n_parts), norm.reshape(b, h, w)
