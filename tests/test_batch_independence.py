"""Every per-image metric gives an image the same value alone or in any batch.

Issue 20 part 1 (DESIGN.md 1.5): the value of an image never depends on
which other images share the call. Each metric and each baseline option
is run on a batch of 6, a batch of 4 (its first images) and on images 0
and 3 alone; their values must agree to 1e-5.
"""

import keras
import numpy as np
import pytest

import keras_brnpa
from keras_brnpa import metrics

SIZE = 24


def bn_model(seed=0):
    """A small classifier with batch normalisation and a final softmax."""
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((SIZE, SIZE, 3)),
            keras.layers.Conv2D(6, 3, strides=2, activation="relu"),
            keras.layers.BatchNormalization(),
            keras.layers.Conv2D(6, 3, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(
                3,
                activation="softmax",
                kernel_initializer=keras.initializers.RandomNormal(stddev=4.0, seed=seed),
            ),
        ]
    )
    # Moving statistics away from (0, 1), so that batch statistics would show.
    bn = model.layers[1]
    bn.set_weights([w + 0.5 for w in bn.get_weights()])
    return model


@pytest.fixture(scope="module")
def case():
    rng = np.random.default_rng(0)
    # Images with different mean colours: a batch mean differs from each one.
    images = (rng.random((6, SIZE, SIZE, 3)) + rng.random((6, 1, 1, 3)) * 2).astype("float32")
    saliency = rng.random((6, 4, 4))
    model = bn_model()
    inner = keras.Sequential(model.layers[:-1] + [keras.layers.Dense(3)])

    def logits_callable(x):  # no layers to read: its outputs decide from_logits
        return inner(x)

    return images, saliency, model, logits_callable


RNG = np.random.default_rng(1)
PER_IMAGE_BASELINE = RNG.random((6, SIZE, SIZE, 3)).astype("float32")

# (name, function(model, images, saliency, index) -> per-image values)
CASES = {
    "deletion_zero": lambda m, x, s, i: metrics.deletion_auc(m, x, s, steps=4, baseline=0.0),
    "deletion_number": lambda m, x, s, i: metrics.deletion_auc(m, x, s, steps=4, baseline=0.7),
    "deletion_mean": lambda m, x, s, i: metrics.deletion_auc(m, x, s, steps=4, baseline="mean"),
    "deletion_dataset_mean": lambda m, x, s, i: metrics.deletion_auc(
        m, x, s, steps=4, baseline=np.array([0.4, 0.5, 0.6])
    ),
    "deletion_hwc_array": lambda m, x, s, i: metrics.deletion_auc(
        m, x, s, steps=4, baseline=PER_IMAGE_BASELINE[0]
    ),
    "deletion_batch_array": lambda m, x, s, i: metrics.deletion_auc(
        m, x, s, steps=4, baseline=PER_IMAGE_BASELINE[i]
    ),
    "deletion_callable": lambda m, x, s, i: metrics.deletion_auc(
        m, x, s, steps=4, baseline=lambda images: images[:, ::-1] * 0.5
    ),
    "deletion_start_point": lambda m, x, s, i: metrics.deletion_auc(
        m, x, s, steps=3, baseline="mean", start_point=True, batch_size=7
    ),
    "insertion_blur": lambda m, x, s, i: metrics.insertion_auc(m, x, s, steps=4),
    "insertion_blur_3": lambda m, x, s, i: metrics.insertion_auc(
        m, x, s, steps=4, blur_kernel_size=3
    ),
    "insertion_number": lambda m, x, s, i: metrics.insertion_auc(m, x, s, steps=4, baseline=0.0),
    "insertion_mean": lambda m, x, s, i: metrics.insertion_auc(
        m, x, s, steps=4, baseline="mean"
    ),
    "insertion_dataset_mean": lambda m, x, s, i: metrics.insertion_auc(
        m, x, s, steps=4, baseline=np.array([0.4, 0.5, 0.6])
    ),
    "insertion_batch_array": lambda m, x, s, i: metrics.insertion_auc(
        m, x, s, steps=4, baseline=PER_IMAGE_BASELINE[i]
    ),
    "insertion_callable": lambda m, x, s, i: metrics.insertion_auc(
        m, x, s, steps=4, baseline=lambda images: images * 0.25
    ),
    "road_morf": lambda m, x, s, i: metrics.road(m, x, s, fractions=(0.2, 0.6), noise=0.05),
    "road_lerf": lambda m, x, s, i: metrics.road(
        m, x, s, order="lerf", fractions=(0.3,), noise=0.05, seed=4, batch_size=5
    ),
    "sparsity": lambda m, x, s, i: metrics.sparsity(s),
    "sparsity_density": lambda m, x, s, i: metrics.sparsity_density(s[..., None], s),
    "pointing_game": lambda m, x, s, i: metrics.pointing_game(s, np.tile([[0, 0, 0.5, 0.5]], (len(s), 1))),
    "energy_in_mask": lambda m, x, s, i: metrics.energy_in_mask(
        s, np.tile([[0.2, 0.1, 0.9, 0.6]], (len(s), 1))
    ),
}


def check_independent(function, model, images, saliency):
    six = np.arange(6)
    values = {6: np.asarray(function(model, images, saliency, six), np.float64)}
    values[4] = np.asarray(function(model, images[:4], saliency[:4], six[:4]), np.float64)
    for i in (0, 3):
        alone = np.asarray(
            function(model, images[i : i + 1], saliency[i : i + 1], six[i : i + 1]), np.float64
        )
        for size in (4, 6):
            np.testing.assert_allclose(alone[0], values[size][i], atol=1e-5, rtol=0)
    np.testing.assert_allclose(values[4], values[6][:4], atol=1e-5, rtol=0)
    return values[6]


@pytest.mark.parametrize("name", sorted(CASES))
def test_metric_is_batch_independent(case, name):
    images, saliency, model, _ = case
    values = check_independent(CASES[name], model, images, saliency)
    assert values.shape == (6,)


@pytest.mark.parametrize("name", ["deletion_mean", "insertion_blur"])
def test_callable_model_is_batch_independent(case, name):
    """A callable gives no layer to read: each image's own outputs decide
    whether they are logits (here they are)."""
    images, saliency, _, logits_callable = case
    values = check_independent(CASES[name], logits_callable, images, saliency)
    # Softmax probabilities of logits: AUCs within [0, 1].
    assert np.all((values >= 0) & (values <= 1))


def test_mean_baseline_is_each_images_own_mean_colour(case):
    """deletion with every cell removed = the image filled with its own mean."""
    images, saliency, model, _ = case
    _, curves = metrics.deletion_auc(
        model, images, saliency, steps=2, baseline="mean", return_curves=True
    )
    filled = np.broadcast_to(images.mean(axis=(1, 2), keepdims=True), images.shape)
    probabilities = np.asarray(model.predict_on_batch(filled))
    classes = np.argmax(np.asarray(model.predict_on_batch(images)), axis=-1)
    expected = probabilities[np.arange(6), classes]
    np.testing.assert_allclose(curves[:, -1], expected, atol=1e-5)
