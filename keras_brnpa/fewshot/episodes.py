"""N-way K-shot episode evaluation with cosine prototypes."""


import numpy as np

from keras_brnpa._checks import check_positive_int
from keras_brnpa._checks import check_seed
from keras_brnpa._checks import invalid
from keras_brnpa._checks import to_numpy


def embed(model_or_fn, images, batch_size=64):
    """Embeddings of ``images`` by a Keras model or a function, as NumPy.

    A ``keras.Model`` runs ``predict``; another callable is called on
    batches of ``batch_size`` images. A dict output (a training model from
    ``keras_brnpa.models.with_id_logits``) gives its ``"embedding"``.

    Example:

    >>> import numpy as np, keras_brnpa
    >>> keras_brnpa.fewshot.embed(lambda x: x.reshape(len(x), -1), np.ones((3, 2, 2))).shape
    (3, 4)
    """
    import keras

    batch_size = check_positive_int("batch_size", batch_size)
    if isinstance(model_or_fn, keras.Model):
        out = model_or_fn.predict(images, batch_size=batch_size, verbose=0)
        if isinstance(out, dict):
            out = out["embedding"]
        return to_numpy("model_or_fn", out).reshape(len(images), -1).astype("float32")
    if not callable(model_or_fn):
        raise invalid("model_or_fn", model_or_fn, "a keras.Model or a function images -> embeddings")
    parts = []
    for start in range(0, len(images), batch_size):
        out = model_or_fn(images[start : start + batch_size])
        if isinstance(out, dict):
            out = out["embedding"]
        out = to_numpy("model_or_fn", out)
        parts.append(out.reshape(len(out), -1))
    return np.concatenate(parts).astype("float32")


def evaluate_episodes(
    model_or_fn,
    images,
    labels,
    n_way=5,
    k_shot=1,
    n_query=15,
    episodes=600,
    seed=0,
    batch_size=64,
):
    """Few-shot accuracy over random N-way K-shot episodes.

    Every image is embedded once (``model_or_fn``), then each episode draws
    ``n_way`` classes among those with at least ``k_shot + n_query``
    images, and ``k_shot`` support plus ``n_query`` query images of each
    (without replacement). The prototype of a class is the mean of its
    support embeddings; a query is given the class of the nearest
    prototype by cosine similarity. The accuracy is the mean over the
    episodes, with the usual 95% confidence interval
    ``1.96 * std / sqrt(episodes)`` of the episode accuracies (the few-shot
    literature's convention, e.g. e3bm, the BR-NPA authors' few-shot code).
    Deterministic given ``seed``.

    Args:
        model_or_fn: a ``keras.Model`` (e.g. from
            ``keras_brnpa.models.build_embedding_model``) or a function
            mapping a batch of images to ``(B, D)`` embeddings.
        images: array ``(N, ...)`` of images (or anything ``model_or_fn``
            takes).
        labels: integer array ``(N,)`` of classes (classes unseen in
            training, for meta-test).
        n_way: int >= 2, classes per episode.
        k_shot: int >= 1, support images per class.
        n_query: int >= 1, query images per class.
        episodes: int >= 1, number of episodes.
        seed: int, seed of the episode draws.
        batch_size: images per forward pass.

    Returns:
        ``{"accuracy": float, "ci95": float}``.

    Example:

    >>> import numpy as np, keras_brnpa
    >>> labels = np.repeat(np.arange(6), 10)
    >>> one_hot = np.eye(6, dtype="float32")[labels]       # separates the classes
    >>> keras_brnpa.fewshot.evaluate_episodes(
    ...     lambda x: x, one_hot, labels, n_way=5, k_shot=1, n_query=5, episodes=20)
    {'accuracy': 1.0, 'ci95': 0.0}
    """
    labels = to_numpy("labels", labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise invalid("labels", f"<array of shape {labels.shape} and dtype {labels.dtype}>",
                      "an integer array (N,)")
    if len(images) != len(labels):
        raise invalid("labels", f"<array of length {len(labels)}>",
                      f"one label per image ({len(images)} images)")
    n_way = check_positive_int("n_way", n_way)
    if n_way < 2:
        raise invalid("n_way", n_way, "an integer >= 2")
    k_shot = check_positive_int("k_shot", k_shot)
    n_query = check_positive_int("n_query", n_query)
    episodes = check_positive_int("episodes", episodes)
    seed = check_seed(seed)
    classes, counts = np.unique(labels, return_counts=True)
    eligible = classes[counts >= k_shot + n_query]
    if len(eligible) < n_way:
        raise invalid(
            "n_way",
            n_way,
            f"at most the number of classes with k_shot + n_query = {k_shot + n_query} "
            f"images or more ({len(eligible)})",
        )
    features = embed(model_or_fn, images, batch_size).astype("float64")
    if len(features) != len(labels) or not np.all(np.isfinite(features)):
        raise invalid("model_or_fn", model_or_fn, "a model giving one finite embedding per image")
    features /= np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    members = {c: np.flatnonzero(labels == c) for c in eligible}
    rng = np.random.default_rng(seed)
    accuracies = np.empty(episodes)
    for episode in range(episodes):
        chosen = rng.choice(eligible, n_way, replace=False)
        picks = np.stack([rng.choice(members[c], k_shot + n_query, replace=False) for c in chosen])
        support = features[picks[:, :k_shot]]  # (n_way, k_shot, D)
        queries = features[picks[:, k_shot:]].reshape(n_way * n_query, -1)
        prototypes = support.mean(axis=1)
        prototypes /= np.maximum(np.linalg.norm(prototypes, axis=1, keepdims=True), 1e-12)
        predicted = np.argmax(queries @ prototypes.T, axis=1)
        truth = np.repeat(np.arange(n_way), n_query)
        accuracies[episode] = np.mean(predicted == truth)
    return {
        "accuracy": float(accuracies.mean()),
        "ci95": float(1.96 * accuracies.std() / np.sqrt(episodes)),
    }
