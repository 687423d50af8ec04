"""Tests of keras_brnpa.metrics.sparsity_density (the authors' sparsity)."""

import numpy as np
import pytest

import keras_brnpa
from keras_brnpa import metrics


def density_reference(part_maps, feature_norm=None, epsilon=0.0):
    """Plain loops over images and parts, written from DESIGN.md 1.4:
    m_k = a_k * (n / max n); density_k = mean(m_k) / max(m_k); mean over k."""
    part_maps = np.asarray(part_maps, np.float64)
    values = []
    for b in range(part_maps.shape[0]):
        if feature_norm is None:
            weight = np.ones(part_maps.shape[1:3])
        else:
            n = np.asarray(feature_norm[b], np.float64)
            weight = n / n.max()
        densities = []
        for k in range(part_maps.shape[3]):
            m = part_maps[b, :, :, k] * weight
            top = m.max() + epsilon
            densities.append(0.0 if top == 0 else m.sum() / m.size / top)
        values.append(sum(densities) / len(densities))
    return np.array(values)


def random_case(seed, shape=(5, 7, 6, 4)):
    rng = np.random.default_rng(seed)
    maps = rng.random(shape) ** 3  # skewed, like attention maps
    norm = rng.random(shape[:3]) * 7.0
    return maps, norm


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_the_numpy_transcription(seed):
    maps, norm = random_case(seed)
    np.testing.assert_allclose(
        metrics.sparsity_density(maps, norm), density_reference(maps, norm), rtol=1e-12
    )
    np.testing.assert_allclose(
        metrics.sparsity_density(maps), density_reference(maps), rtol=1e-12
    )
    np.testing.assert_allclose(
        metrics.sparsity_density(maps, norm, epsilon=1e-5),
        density_reference(maps, norm, epsilon=1e-5),
        rtol=1e-12,
    )


def test_brnpa_like_maps_against_the_reference():
    # Maps that sum to 1 (BR-NPA): the authors' +1e-5 matters there.
    maps, norm = random_case(3, (3, 8, 8, 3))
    maps = maps / maps.sum(axis=(1, 2), keepdims=True)
    exact = metrics.sparsity_density(maps, norm)
    authors = metrics.sparsity_density(maps, norm, epsilon=1e-5)
    np.testing.assert_allclose(exact, density_reference(maps, norm), rtol=1e-12)
    np.testing.assert_allclose(authors, density_reference(maps, norm, 1e-5), rtol=1e-12)
    assert np.all(authors < exact)


def test_hand_made_values():
    uniform = np.ones((1, 4, 4, 1))
    peaked = np.zeros((1, 4, 4, 1))
    peaked[0, 2, 3, 0] = 2.5
    np.testing.assert_allclose(metrics.sparsity_density(uniform), [1.0])
    np.testing.assert_allclose(metrics.sparsity_density(peaked), [1 / 16])
    # Mean over the parts, not part 1 only.
    both = np.concatenate([peaked, uniform], axis=-1)
    np.testing.assert_allclose(metrics.sparsity_density(both), [(1 / 16 + 1) / 2])
    # The feature norm restricts a uniform map to the active half: 8 of 16 cells.
    norm = np.zeros((1, 4, 4))
    norm[0, :2] = 3.0
    np.testing.assert_allclose(metrics.sparsity_density(uniform, norm), [0.5])
    # Only the shape of the norm matters, not its scale.
    np.testing.assert_allclose(
        metrics.sparsity_density(both, 100 * norm), metrics.sparsity_density(both, norm)
    )


def test_three_dimensional_maps_are_one_part():
    maps, norm = random_case(4, (3, 5, 5, 1))
    np.testing.assert_allclose(
        metrics.sparsity_density(maps[..., 0], norm), metrics.sparsity_density(maps, norm)
    )


def test_is_the_mean_of_the_inverse_per_map_sparsity():
    maps, norm = random_case(5)
    per_map = metrics.sparsity(maps, norm)  # (B, P), higher = sparser
    np.testing.assert_allclose(
        metrics.sparsity_density(maps, norm), (1 / per_map).mean(axis=1), rtol=1e-12
    )


def test_zero_maps_and_zero_norms_give_zero_not_nan():
    maps = np.zeros((2, 3, 3, 2))
    maps[1, ..., 1] = 1.0
    result = metrics.sparsity_density(maps)
    np.testing.assert_array_equal(result, [0.0, 0.5])
    assert np.all(np.isfinite(metrics.sparsity_density(np.ones((1, 3, 3, 2)), np.zeros((1, 3, 3)))))


def test_negative_values_are_clipped():
    maps, _ = random_case(6, (2, 4, 4, 2))
    np.testing.assert_allclose(
        metrics.sparsity_density(maps - 0.3), density_reference(np.clip(maps - 0.3, 0, None))
    )


def test_accepts_backend_tensors():
    import keras

    maps, norm = random_case(7, (2, 4, 4, 3))
    np.testing.assert_allclose(
        metrics.sparsity_density(keras.ops.convert_to_tensor(maps.astype("float32")),
                                 keras.ops.convert_to_tensor(norm.astype("float32"))),
        density_reference(maps.astype("float32"), norm.astype("float32")),
        rtol=1e-6,
    )


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"part_maps": np.ones((4, 4))}, "part_maps"),
        ({"part_maps": np.full((1, 2, 2, 1), np.nan)}, "part_maps"),
        ({"part_maps": np.ones((1, 2, 2, 1)), "feature_norm": np.ones((1, 3, 2))}, "feature_norm"),
        ({"part_maps": np.ones((1, 2, 2, 1)), "feature_norm": -np.ones((1, 2, 2))}, "feature_norm"),
        ({"part_maps": np.ones((1, 2, 2, 1)), "epsilon": -1.0}, "epsilon"),
        ({"part_maps": np.ones((1, 2, 2, 1)), "epsilon": True}, "epsilon"),
    ],
)
def test_invalid_arguments(kwargs, name):
    with pytest.raises(ValueError, match=f"argument {name}.*Received: {name}="):
        metrics.sparsity_density(**kwargs)


def test_on_a_model():
    model = keras_brnpa.models.build_classifier(
        4, backbone="tiny", head="brnpa", n_parts=3, input_shape=(64, 64, 3)
    )
    images = np.random.default_rng(0).random((2, 64, 64, 3)).astype("float32")
    out = keras_brnpa.models.attention_model(model)(images)
    from keras import ops

    maps = ops.convert_to_numpy(out["attention_maps"])
    norm = ops.convert_to_numpy(out["feature_norm"])
    value = metrics.sparsity_density(maps, norm)
    assert value.shape == (2,)
    np.testing.assert_allclose(value, density_reference(maps, norm), rtol=1e-6)
    assert np.all((value > 0) & (value <= 1))
