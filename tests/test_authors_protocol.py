"""DAUC / IAUC equal the authors' protocol, transcribed from reading their code.

The authors (github TristanGomez44/br_npa, ``code/trainVal.py`` with
``--attention_metrics Del|Add`` and ``code/processResults.py``) do, per
image: predict the class on the intact image; (insertion: blur the image
with a 121x121 box filter, zero padding, and keep the original); then, while
cells are left, take the ``total // stepNb`` most salient cells left, set
their blocks to 0 (deletion) or to the original pixels (insertion), mark
them used, run the network and record ``(cells left, softmax score of the
class)``. The area: the cells-left axis is rescaled to [0, 1] (deletion:
``1 - (left - min) / (max - min)``; insertion: ``1 - left / max``) and
``np.trapz`` integrates the scores over it. There is no point for the
unperturbed image. The loop below is written from that description with
NumPy, one image and one forward pass at a time.
"""

import keras
import numpy as np
import pytest

from keras_brnpa import metrics

SIZE, CELLS, KERNEL = 28, 7, 7


def _blur(image, k):
    """Box blur, zero padding, divided by k*k (the authors' F.conv2d)."""
    r = k // 2
    padded = np.pad(image, ((r, r), (r, r), (0, 0)))
    out = np.zeros_like(image)
    for dy in range(k):
        for dx in range(k):
            out += padded[dy : dy + image.shape[0], dx : dx + image.shape[1]]
    return out / (k * k)


def _softmax(z):
    z = z - z.max()
    return np.exp(z) / np.exp(z).sum()


def _authors_auc(model, image, saliency, step_nb, metric):
    forward = lambda x: _softmax(keras.ops.convert_to_numpy(model(x[None]))[0].astype("float64"))
    pred = int(np.argmax(forward(image)))
    data = image.copy()
    original = image.copy()
    if metric == "Add":
        data = _blur(data, KERNEL)
    att = (saliency - saliency.min()) / (saliency.max() - saliency.min())
    total = att.size
    left = total
    ratio = image.shape[0] // att.shape[0]
    pairs = []
    while left > 0:
        k = total // step_nb
        flat = att.reshape(-1)
        ind = np.argsort(-flat, kind="stable")[:k][:left]
        for index in ind:
            y, x = divmod(int(index), att.shape[1])
            block = (slice(y * ratio, y * ratio + ratio), slice(x * ratio, x * ratio + ratio))
            data[block] = original[block] if metric == "Add" else 0.0
            att[y, x] = -1.0
        left -= k
        pairs.append((left, forward(data)[pred]))
    pairs = np.array(pairs, dtype="float64")
    x = pairs[:, 0]
    if metric == "Add":
        x = 1 - x / x.max()
    else:
        x = 1 - (x - x.min()) / (x.max() - x.min())
    return np.trapezoid(pairs[:, 1], x)


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(7)
    return keras.Sequential([
        keras.Input((SIZE, SIZE, 3)),
        keras.layers.Conv2D(8, 3, strides=2, activation="relu"),
        keras.layers.Conv2D(8, 3, strides=2, activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(4),
    ])


@pytest.mark.parametrize("step_nb", [CELLS * CELLS, 7])
def test_deletion_and_insertion_equal_the_authors_loop(model, step_nb):
    rng = np.random.default_rng(0)
    images = rng.normal(size=(3, SIZE, SIZE, 3)).astype("float32")
    saliency = rng.random((3, CELLS, CELLS))  # no ties: the order is the same
    dauc = metrics.deletion_auc(model, images, saliency, steps=step_nb, batch_size=16)
    iauc = metrics.insertion_auc(model, images, saliency, steps=step_nb, batch_size=16,
                                 blur_kernel_size=KERNEL)
    for b in range(3):
        assert dauc[b] == pytest.approx(
            _authors_auc(model, images[b], saliency[b], step_nb, "Del"), abs=1e-6)
        assert iauc[b] == pytest.approx(
            _authors_auc(model, images[b], saliency[b], step_nb, "Add"), abs=1e-6)


def test_start_point_is_the_previous_curve(model):
    rng = np.random.default_rng(1)
    images = rng.normal(size=(2, SIZE, SIZE, 3)).astype("float32")
    saliency = rng.random((2, CELLS, CELLS))
    auc, curves = metrics.deletion_auc(model, images, saliency, steps=7, return_curves=True)
    auc0, curves0 = metrics.deletion_auc(model, images, saliency, steps=7, return_curves=True,
                                         start_point=True)
    assert curves.shape == (2, 7) and curves0.shape == (2, 8)
    np.testing.assert_allclose(curves0[:, 1:], curves)
    np.testing.assert_allclose(auc0, ((curves0[:, 1:] + curves0[:, :-1]) / 2).mean(axis=1))
    np.testing.assert_allclose(auc, ((curves[:, 1:] + curves[:, :-1]) / 2).mean(axis=1))
    # With the start point: (1/7) [(s0 + s1) / 2 + 6 AUC], the difference issue 12 measured.
    np.testing.assert_allclose(auc0 - auc * 6 / 7, (curves0[:, 0] + curves0[:, 1]) / 2 / 7)
