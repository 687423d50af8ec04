"""Tests of keras_brnpa.metrics: DAUC/IAUC (batched == loop), blur, sparsity, regions."""

import os
import re
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_brnpa
from keras_brnpa.metrics import faithfulness

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ------------------------------------------------------------------ helpers
def small_model(size=24, classes=3, seed=0):
    """A small nonlinear classifier whose probabilities vary with the input."""
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((size, size, 3)),
            keras.layers.Conv2D(6, 3, strides=2, activation="relu"),
            keras.layers.Conv2D(6, 3, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(
                classes, kernel_initializer=keras.initializers.RandomNormal(stddev=4.0, seed=seed)
            ),
        ]
    )


def data(batch=2, size=24, cells=(2, 3), seed=0, ties=True):
    rng = np.random.default_rng(seed)
    images = rng.normal(size=(batch, size, size, 3)).astype("float32")
    if ties:
        # Few distinct values: many ties, which the stable sort resolves.
        saliency = rng.integers(0, 3, size=(batch,) + cells).astype("float64")
    else:
        saliency = rng.random((batch,) + cells)
    return images, saliency


def naive_box_blur(images, k):
    """Box blur by explicit window sums (independent of box_blur)."""
    batch, height, width, channels = images.shape
    r = k // 2
    out = np.zeros(images.shape, np.float64)
    for y in range(height):
        for x in range(width):
            total = np.zeros((batch, channels))
            for dy in range(-r, r + 1):
                for dx in range(-r, r + 1):
                    if 0 <= y + dy < height and 0 <= x + dx < width:
                        total += images[:, y + dy, x + dx, :]
            out[:, y, x, :] = total / (k * k)
    return out


def trapezoid(curve):
    """Trapezoid area of points evenly spread on [0, 1] (one point: itself)."""
    curve = np.asarray(curve, np.float64)
    if len(curve) == 1:
        return curve[0]
    steps = len(curve) - 1
    return sum((curve[t] + curve[t + 1]) / 2 for t in range(steps)) / steps


# ------------------------------------------------------ batched == the loop
@pytest.mark.parametrize("steps", [1, 4, 6, 9])
def test_deletion_matches_loop(steps):
    # 2x3 = 6 cells: steps 4 does not divide 6, steps 9 exceeds it.
    model = small_model()
    images, saliency = data()
    auc, curves = keras_brnpa.metrics.deletion_auc(
        model, images, saliency, steps=steps, batch_size=5, baseline=0.5, return_curves=True
    )
    ref_auc, ref_curves = faithfulness.deletion_auc_loop(
        model, images, saliency, steps=steps, baseline=0.5, return_curves=True
    )
    assert auc.shape == (2,) and curves.shape == (2, steps)
    np.testing.assert_allclose(curves, ref_curves, atol=1e-5, rtol=0)
    np.testing.assert_allclose(auc, ref_auc, atol=1e-5, rtol=0)
    # The curves are not trivially constant: the perturbation matters.
    if steps > 1:
        assert np.ptp(curves) > 1e-3


@pytest.mark.parametrize("steps,kernel", [(1, None), (4, 5), (6, 3), (9, None)])
def test_insertion_matches_loop(steps, kernel):
    model = small_model()
    images, saliency = data(seed=1)
    auc, curves = keras_brnpa.metrics.insertion_auc(
        model,
        images,
        saliency,
        steps=steps,
        batch_size=4,
        blur_kernel_size=kernel,
        return_curves=True,
    )
    ref_auc, ref_curves = faithfulness.insertion_auc_loop(
        model, images, saliency, steps=steps, blur_kernel_size=kernel, return_curves=True
    )
    np.testing.assert_allclose(curves, ref_curves, atol=1e-5, rtol=0)
    np.testing.assert_allclose(auc, ref_auc, atol=1e-5, rtol=0)
    if steps > 1:
        assert np.ptp(curves) > 1e-3


def test_matches_loop_on_brnpa_classifier():
    keras.utils.set_random_seed(0)
    backbone = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            keras.layers.Conv2D(8, 3, strides=2, activation="relu"),
            keras.layers.Conv2D(16, 3, strides=2, activation="relu"),
        ]
    )
    model = keras_brnpa.models.build_classifier(4, backbone=backbone, head="brnpa", seed=0)
    images, saliency = data(batch=2, size=32, cells=(4, 4), seed=2, ties=False)
    for batched, loop, kwargs in [
        (keras_brnpa.metrics.deletion_auc, faithfulness.deletion_auc_loop, {}),
        (keras_brnpa.metrics.insertion_auc, faithfulness.insertion_auc_loop, {}),
    ]:
        np.testing.assert_allclose(
            batched(model, images, saliency, steps=5, **kwargs),
            # The loop with the compiled batch-1 predict function (the
            # eager loop is covered above; op-by-op JAX is slow to warm up).
            loop(model.predict_on_batch, images, saliency, steps=5, **kwargs),
            atol=1e-5,
            rtol=0,
        )


def test_batches_have_a_fixed_size_and_bounded_memory():
    images, saliency = data(batch=3)
    sizes = []

    def model(x):
        sizes.append(x.shape[0])
        return np.stack([x.mean(axis=(1, 2, 3)), -x.mean(axis=(1, 2, 3))], axis=1)

    auc = keras_brnpa.metrics.deletion_auc(model, images, saliency, steps=6, batch_size=4)
    # 3 images x 7 distinct steps = 21 perturbed images -> 6 calls of 4.
    assert sizes == [4] * 6
    ref = faithfulness.deletion_auc_loop(model, images, saliency, steps=6)
    np.testing.assert_allclose(auc, ref, atol=1e-6)
    # Calls are balanced: 21 images with batch_size=10 -> 3 calls of 7.
    sizes.clear()
    auc = keras_brnpa.metrics.deletion_auc(model, images, saliency, steps=6, batch_size=10)
    assert sizes == [7] * 3
    np.testing.assert_allclose(auc, ref, atol=1e-6)
    # Repeated step counts (steps > cells) are evaluated once per image.
    sizes.clear()
    keras_brnpa.metrics.deletion_auc(model, images, saliency, steps=60, batch_size=100)
    assert sizes == [3 * 7]


def test_default_steps_is_one_cell_per_step():
    model = small_model()
    images, saliency = data()
    a = keras_brnpa.metrics.deletion_auc(model, images, saliency)
    b = keras_brnpa.metrics.deletion_auc(model, images, saliency, steps=6)
    np.testing.assert_allclose(a, b, atol=1e-6)


# --------------------------------------------------------- AUC properties
def constant_model(from_logits):
    bias = np.array([0.2, 1.0, -0.5], "float32")
    model = keras.Sequential(
        [
            keras.Input((16, 16, 3)),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3, kernel_initializer="zeros", activation=None if from_logits else "softmax"),
        ]
    )
    model.layers[-1].bias.assign(bias)
    expected = np.exp(bias).max() / np.exp(bias).sum()
    return model, expected


@pytest.mark.parametrize("from_logits", [True, False])
def test_constant_score_gives_that_constant(from_logits):
    model, expected = constant_model(from_logits)
    images, saliency = data(batch=3, size=16, cells=(4, 2))
    for metric in (keras_brnpa.metrics.deletion_auc, keras_brnpa.metrics.insertion_auc):
        auc, curves = metric(
            model, images, saliency, steps=5, from_logits=from_logits, return_curves=True
        )
        np.testing.assert_allclose(auc, expected, atol=1e-6)
        np.testing.assert_allclose(curves, expected, atol=1e-6)


def mean_model(x):
    """Score = mean pixel value (a single 'class', used as is)."""
    return np.asarray(x, np.float64).mean(axis=(1, 2, 3))[:, None]


def block_image():
    # 2x2 cells of 3x3 pixels, block k filled with value k + 1.
    image = np.zeros((1, 6, 6, 1), "float32")
    for k in range(4):
        i, j = divmod(k, 2)
        image[0, 3 * i : 3 * i + 3, 3 * j : 3 * j + 3] = k + 1
    return image


def test_deletion_curve_by_hand_with_ties():
    image = block_image()
    # Cells 1 and 2 tie at 3: the lower flat index (1) goes first.
    saliency = np.array([[[1.0, 3.0], [3.0, 0.0]]])
    auc, curve = keras_brnpa.metrics.deletion_auc(
        mean_model, image, saliency, steps=4, from_logits=False, return_curves=True
    )
    # Remaining blocks (value k + 1, each a quarter of the image), after
    # 0, 1, ..., 4 deleted cells; the curve has no point for the intact image.
    expected = [(1 + 2 + 3 + 4) / 4, (1 + 3 + 4) / 4, (1 + 4) / 4, 4 / 4, 0.0]
    np.testing.assert_allclose(curve[0], expected[1:], atol=1e-6)
    np.testing.assert_allclose(auc, [trapezoid(expected[1:])], atol=1e-6)
    # Steps = 8 over 4 cells: Python's round(t / 2) for t = 1..8: 0, 1, 2, 2, 2, 3, 4, 4.
    _, curve8 = keras_brnpa.metrics.deletion_auc(
        mean_model, image, saliency, steps=8, from_logits=False, return_curves=True
    )
    counts = [round(t * 4 / 8) for t in range(1, 9)]
    np.testing.assert_allclose(curve8[0], [expected[n] for n in counts], atol=1e-6)
    # start_point=True: the intact image first (the curve of 0.1).
    auc0, curve0 = keras_brnpa.metrics.deletion_auc(
        mean_model, image, saliency, steps=4, from_logits=False, return_curves=True,
        start_point=True)
    np.testing.assert_allclose(curve0[0], expected, atol=1e-6)
    np.testing.assert_allclose(auc0, [trapezoid(expected)], atol=1e-6)


def test_insertion_curve_by_hand():
    image = block_image()
    saliency = np.array([[[1.0, 3.0], [3.0, 0.0]]])
    blurred = naive_box_blur(image.astype(np.float64), 3)[0, :, :, 0]
    order = [1, 2, 0, 3]
    expected = []
    for n in range(5):
        x = blurred.copy()
        for cell in order[:n]:
            i, j = divmod(cell, 2)
            x[3 * i : 3 * i + 3, 3 * j : 3 * j + 3] = image[0, 3 * i : 3 * i + 3, 3 * j : 3 * j + 3, 0]
        expected.append(x.mean())
    auc, curve = keras_brnpa.metrics.insertion_auc(
        mean_model, image, saliency, steps=4, from_logits=False, blur_kernel_size=3, return_curves=True
    )
    np.testing.assert_allclose(curve[0], expected[1:], atol=1e-6)
    np.testing.assert_allclose(auc, [trapezoid(expected[1:])], atol=1e-6)
    # The last step is the intact image; zero padding darkens the blur.
    assert curve[0, -1] == pytest.approx(image.mean())
    assert expected[0] < image.mean()


def test_array_baseline_and_tensor_inputs():
    image = block_image()
    saliency = np.array([[[1.0, 3.0], [3.0, 0.0]]])
    baseline = np.full((6, 6, 1), 2.0)
    _, curve = keras_brnpa.metrics.deletion_auc(
        mean_model,
        keras.ops.convert_to_tensor(image),
        keras.ops.convert_to_tensor(saliency),
        steps=4,
        from_logits=False,
        baseline=baseline,
        return_curves=True,
    )
    expected = [(1 + 2 + 3 + 4) / 4, (1 + 2 + 2 + 4) / 4, (2 + 2 + 2 + 4) / 4, 2.0]
    np.testing.assert_allclose(curve[0], expected, atol=1e-6)


# ------------------------------------------------------------------- blur
@pytest.mark.parametrize("k", [1, 3, 5, 11])
def test_box_blur_is_a_zero_padded_box_filter(k):
    images = np.random.default_rng(3).normal(size=(2, 7, 9, 2)).astype("float32")
    out = keras_brnpa.metrics.box_blur(images, k)
    assert out.shape == images.shape and out.dtype == images.dtype
    np.testing.assert_allclose(out, naive_box_blur(images.astype(np.float64), k), atol=1e-5)


def test_default_blur_kernel_size_scales_the_paper():
    for size in (32, 64, 96, 112, 224, 448, 1000):
        k = keras_brnpa.metrics.default_blur_kernel_size(size, size + 10)
        target = 121 * size / 448
        assert k % 2 == 1 and k >= 1
        assert abs(k - target) <= 1 + 1e-9
    assert keras_brnpa.metrics.default_blur_kernel_size(448, 448) == 121
    assert keras_brnpa.metrics.default_blur_kernel_size(2, 2) == 1


def test_step_counts_is_python_round():
    for cells in (1, 4, 6, 49):
        for steps in (1, 3, 4, 8, 50, 100):
            assert keras_brnpa.metrics.step_counts(cells, steps).tolist() == [
                round(t * cells / steps) for t in range(steps + 1)
            ]


# --------------------------------------------------------------- sparsity
def test_sparsity_hand_made_maps():
    peak = np.zeros((4, 4))
    peak[1, 2] = 5.0
    two = np.zeros((4, 4))
    two[0, 0] = two[3, 3] = 1.0
    maps = np.stack([peak, np.full((4, 4), 0.3), two, peak - 1.0])
    # One cell: 16 (= h * w); uniform: 1; two equal cells: 8; negative
    # values are clipped: peak - 1 is a single cell of 4.
    np.testing.assert_allclose(keras_brnpa.metrics.sparsity(maps), [16, 1, 8, 16])


def test_sparsity_uses_the_normalised_feature_norm():
    maps = np.ones((2, 2, 2))
    norm = np.array([[[1.0, 0.0], [0.0, 0.0]], [[2.0, 2.0], [1.0, 1.0]]])
    # Image 1: uniform map x one-hot norm -> one cell -> 4.
    # Image 2: map x norm / max = [1, 1, .5, .5]: max / mean = 1 / .75.
    expected = [4.0, 1 / 0.75]
    np.testing.assert_allclose(keras_brnpa.metrics.sparsity(maps, norm), expected)
    # The scale of the norm does not matter.
    np.testing.assert_allclose(keras_brnpa.metrics.sparsity(maps, 10 * norm), expected)
    # Parts are scored one by one: (B, h, w, P) -> (B, P).
    parts = np.stack([maps, maps * np.array([1.0, 0, 0, 0]).reshape(1, 2, 2)], axis=-1)
    np.testing.assert_allclose(
        keras_brnpa.metrics.sparsity(parts, norm), [[4.0, 4.0], [1 / 0.75, 4.0]]
    )


def test_sparsity_of_a_zero_map_is_nan():
    result = keras_brnpa.metrics.sparsity(np.zeros((1, 3, 3)))
    assert np.isnan(result[0])


# ---------------------------------------------------- pointing and energy
def test_pointing_game_with_masks_at_a_finer_resolution():
    saliency = np.zeros((2, 4, 4))
    saliency[:, 1, 2] = 1.0
    saliency[:, 3, 0] = 0.5
    masks = np.zeros((2, 16, 16), bool)
    masks[0, 4:8, 8:12] = True  # the block of cell (1, 2): a hit
    masks[1, 12:16, 0:4] = True  # the block of the second-best cell: a miss
    result = keras_brnpa.metrics.pointing_game(saliency, masks)
    assert result.dtype == bool
    assert result.tolist() == [True, False]
    # A list of boolean masks works the same.
    assert keras_brnpa.metrics.pointing_game(saliency, list(masks)).tolist() == [True, False]


def test_pointing_game_with_boxes():
    saliency = np.zeros((3, 4, 4))
    saliency[:, 1, 2] = 1.0
    boxes = [
        np.array([[0.0, 0.0, 0.2, 0.2], [0.25, 0.5, 0.5, 0.75]]),  # second box: hit
        np.array([0.0, 0.0, 0.25, 1.0]),  # top row only: miss
        np.zeros((0, 4)),  # no box: miss
    ]
    assert keras_brnpa.metrics.pointing_game(saliency, boxes).tolist() == [True, False, False]
    array_boxes = np.array([[0.25, 0.5, 0.5, 0.75], [0.0, 0.0, 0.25, 1.0]])
    assert keras_brnpa.metrics.pointing_game(saliency[:2], array_boxes).tolist() == [True, False]


def test_energy_in_mask_known_values():
    saliency = np.array([[[3.0, 1.0], [0.0, -2.0]], [[1.0, 1.0], [1.0, 1.0]]])
    masks = np.array([[[True, False], [False, True]], [[True, True], [False, False]]])
    # Negative values clipped: 3 / 4; uniform: 2 / 4.
    np.testing.assert_allclose(keras_brnpa.metrics.energy_in_mask(saliency, masks), [0.75, 0.5])
    # A uniform map stays uniform when upsampled: the share is the area.
    big = np.zeros((1, 10, 10), bool)
    big[0, :3, :] = True
    np.testing.assert_allclose(keras_brnpa.metrics.energy_in_mask(np.ones((1, 2, 2)), big), [0.3])
    # Boxes on the map's own grid.
    boxes = np.array([[0.0, 0.0, 0.5, 1.0], [0.0, 0.0, 1.0, 0.5]])
    np.testing.assert_allclose(
        keras_brnpa.metrics.energy_in_mask(saliency, boxes, size=(2, 2)), [1.0, 0.5]
    )
    assert np.isnan(keras_brnpa.metrics.energy_in_mask(np.zeros((1, 2, 2)), masks[:1])[0])


def test_boxes_to_masks_pixel_centres():
    masks = keras_brnpa.metrics.boxes_to_masks(np.array([[0.1, 0.0, 0.55, 0.3]]), (4, 4))
    # Row centres .125 .375 .625 .875; column centres likewise.
    expected = np.zeros((4, 4), bool)
    expected[0:2, 0:1] = True
    np.testing.assert_array_equal(masks[0], expected)


# ------------------------------------------------------------------ errors
def _raises(argument, function, *args, **kwargs):
    with pytest.raises(ValueError, match=rf"Invalid value for argument {argument}\..*Received: {argument}="):
        function(*args, **kwargs)


def test_errors():
    images, saliency = data(batch=2, size=24, cells=(2, 3))
    m = mean_model
    d, i = keras_brnpa.metrics.deletion_auc, keras_brnpa.metrics.insertion_auc
    _raises("saliency", d, m, images, np.ones((3, 2, 3)))  # batch mismatch
    _raises("saliency", d, m, images, np.ones((2, 2)))
    _raises("saliency", d, m, images, np.full((2, 2, 3), np.nan))
    _raises("images", d, m, images[0], saliency)
    _raises("steps", d, m, images, saliency, steps=0)
    _raises("steps", i, m, images, saliency, steps=2.5)
    _raises("batch_size", d, m, images, saliency, batch_size=0)
    _raises("from_logits", d, m, images, saliency, from_logits="yes")
    _raises("baseline", d, m, images, saliency, baseline=np.zeros((5, 5, 3)))
    _raises("blur_kernel_size", i, m, images, saliency, blur_kernel_size=4)
    _raises("blur_kernel_size", i, m, images, saliency, blur_kernel_size=0)
    _raises("model", d, lambda x: {"a": x}, images, saliency)
    _raises("class_index", d, m, images, saliency, class_index=[0, 1, 2])
    _raises("class_index", d, m, images, saliency, class_index=True)
    _raises("class_index", i, m, images, saliency, class_index=99)
    _raises("baseline", i, m, images, saliency, baseline="blur")
    _raises("baseline", i, m, images, saliency, baseline=lambda x: x[:1])
    _raises("baseline", d, m, images, saliency, baseline=float("nan"))
    _raises("blur_kernel_size", i, m, images, saliency, baseline=0.0, blur_kernel_size=3)
    _raises("max_cells", d, m, images, saliency, max_cells=0)
    _raises("model", d, lambda x: x.mean(axis=(1, 2, 3)), images, saliency)
    _raises("model", d, "not a model", images, saliency)
    _raises("steps", faithfulness.deletion_auc_loop, m, images, saliency, steps=-1)
    _raises("kernel_size", keras_brnpa.metrics.box_blur, images, 2)
    _raises("maps", keras_brnpa.metrics.sparsity, np.ones((2, 2)))
    _raises("feature_norm", keras_brnpa.metrics.sparsity, np.ones((2, 3, 3)), np.ones((2, 3, 2)))
    _raises("feature_norm", keras_brnpa.metrics.sparsity, np.ones((1, 2, 2)), -np.ones((1, 2, 2)))
    pg = keras_brnpa.metrics.pointing_game
    _raises("masks_or_boxes", pg, np.ones((2, 2, 2)), np.zeros((3, 4, 4), bool))
    _raises("masks_or_boxes", pg, np.ones((1, 2, 2)), np.array([[0.0, 0.0, 1.5, 1.0]]))
    _raises("masks_or_boxes", pg, np.ones((1, 2, 2)), np.array([[0.5, 0.0, 0.2, 1.0]]))
    _raises("masks_or_boxes", pg, np.ones((1, 2, 2)), np.full((1, 3, 3), 2))
    _raises("size", pg, np.ones((1, 2, 2)), np.array([[0.0, 0.0, 1.0, 1.0]]), size=(0, 3))
    _raises("size", pg, np.ones((1, 2, 2)), np.ones((1, 4, 4), bool), size=(8, 8))


# --------------------------------------------------------------- benchmark
def test_benchmark_quick_runs_and_agrees():
    env = dict(os.environ, KERAS_BACKEND=keras.config.backend())
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "bench_faithfulness.py"), "--quick"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {}
    for line in result.stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 7 and cells[0] in ("deletion_auc", "insertion_auc"):
            rows[cells[0]] = cells
    assert set(rows) == {"deletion_auc", "insertion_auc"}, result.stdout
    for name, (_, loop, batched, limit, over_limit, ratio, diff) in rows.items():
        assert float(loop) > 0 and float(batched) > 0 and float(limit) > 0
        assert float(ratio.rstrip("x")) == pytest.approx(float(loop) / float(batched), rel=0.05)
        assert float(over_limit.rstrip("x")) == pytest.approx(
            float(batched) / float(limit), rel=0.05
        )
        assert float(diff) < 1e-5, (name, diff)
    assert re.search(r"backend: " + keras.config.backend(), result.stdout)
