"""Tests of keras_brnpa.visualize: overlays, PNG galleries, curve plots."""

import numpy as np
import pytest
from PIL import Image

from keras_brnpa import visualize


def gray(value=0.5, size=32):
    return np.full((size, size, 3), value, dtype="float32")


def test_overlay_colours_where_the_map_is_high():
    image = gray()
    saliency = np.zeros((4, 4), "float32")
    saliency[2, 1] = 1.0  # image block rows 16-23, cols 8-15
    out = visualize.overlay(image, saliency, alpha=0.8)
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8
    original = np.round(image * 255).astype(int)
    change = np.abs(out.astype(int) - original).sum(axis=-1)
    assert change[19:21, 11:13].min() > 60  # centre of the salient block
    assert change[:8].max() == 0 and change[:, 24:].max() == 0  # far away: unchanged
    row, col = np.unravel_index(np.argmax(change), change.shape)
    assert 16 <= row < 24 and 8 <= col < 16


def test_overlay_one_colour_per_part():
    image = gray(0.0)
    parts = np.zeros((4, 4, 3), "float32")
    parts[0, 0, 0] = 1.0  # part 1 (red) top-left
    parts[3, 3, 1] = 1.0  # part 2 (green) bottom-right
    parts[0, 3, 2] = 1.0  # part 3 (blue) top-right
    out = visualize.overlay(image, parts, alpha=1.0).astype(int)
    red, green, blue = out[2, 2], out[29, 29], out[2, 29]
    assert red[0] > 150 and red[0] > 3 * max(red[1], red[2]), red
    assert green[1] > 150 and green[1] > 3 * max(green[0], green[2]), green
    assert blue[2] > 150 and blue[2] > 2 * max(blue[0], blue[1]), blue
    assert out[29, 2].max() == 0  # bottom-left: no part, black image


def test_overlay_image_formats():
    uint8 = np.full((8, 8, 3), 200, np.uint8)
    flat = np.zeros((2, 2))
    np.testing.assert_array_equal(visualize.overlay(uint8, flat), uint8)  # constant map: no colour
    normalised = np.linspace(-2, 2, 64).reshape(8, 8, 1)  # min-max scaled for display
    out = visualize.overlay(normalised, flat)
    assert out.shape == (8, 8, 3) and out.min() == 0 and out.max() == 255
    assert visualize.overlay(np.zeros((8, 8)), np.eye(2)).shape == (8, 8, 3)


def png_size(path):
    with Image.open(path) as picture:
        picture.verify()
    with Image.open(path) as picture:
        assert picture.format == "PNG"
        return picture.size, np.asarray(picture.convert("RGB"))


def test_save_gallery_writes_png_of_the_expected_size(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.random((3, 32, 32, 3))
    maps = {
        "brnpa parts": rng.random((3, 8, 8, 3)),
        "grad-cam": rng.random((3, 2, 2)),
        "rise": rng.random((3, 32, 32)),
    }
    path = tmp_path / "sub" / "gallery.png"
    assert visualize.save_gallery(path, images, maps, titles=["a", "b", "c"],
                                  cell_size=1.5, dpi=40) == str(path)
    (width, height), pixels = png_size(path)
    assert (width, height) == (4 * 60, 3 * 60)
    assert pixels.std() > 10  # not a blank picture


def test_plot_curves_single_and_nested(tmp_path):
    x = np.linspace(0, 1, 11)
    curves = {"brnpa": np.stack([1 - x, (1 - x) ** 2]), "gradcam": 1 - np.sqrt(x)}
    one = visualize.plot_curves(tmp_path / "one.png", curves, title="deletion")
    assert png_size(one)[0] == (500, 400)
    both = visualize.plot_curves(tmp_path / "both.png", {"deletion": curves, "insertion": curves})
    assert png_size(both)[0] == (1000, 400)


def test_bad_arguments_raise_value_errors_naming_them(tmp_path):
    images = np.zeros((2, 8, 8, 3))
    cases = [
        ("maps", lambda: visualize.overlay(gray(), np.zeros(4))),
        ("maps", lambda: visualize.overlay(gray(), np.full((2, 2), np.nan))),
        ("image", lambda: visualize.overlay(np.zeros((8, 8, 2)), np.zeros((2, 2)))),
        ("alpha", lambda: visualize.overlay(gray(), np.zeros((2, 2)), alpha=2)),
        ("cmap", lambda: visualize.overlay(gray(), np.zeros((2, 2)), cmap="nope")),
        ("images", lambda: visualize.save_gallery(tmp_path / "g.png", images[0], {"a": images})),
        ("maps_by_method", lambda: visualize.save_gallery(tmp_path / "g.png", images, {})),
        ("maps_by_method",
         lambda: visualize.save_gallery(tmp_path / "g.png", images, {"a": np.zeros((3, 2, 2))})),
        ("titles",
         lambda: visualize.save_gallery(tmp_path / "g.png", images, {"a": np.zeros((2, 2, 2))},
                                        titles=["x"])),
        ("path", lambda: visualize.save_gallery(tmp_path / "g.jpg", images,
                                                {"a": np.zeros((2, 2, 2))})),
        ("curves_by_method",
         lambda: visualize.plot_curves(tmp_path / "c.png", {"a": np.zeros((2, 0))})),
        ("curves_by_method", lambda: visualize.plot_curves(tmp_path / "c.png", [1, 2])),
    ]
    for name, call in cases:
        with pytest.raises(ValueError, match=f"argument {name}\\b.*Received: {name}="):
            call()
    assert not list(tmp_path.iterdir())  # nothing written on error


def test_explanation_colour_bar_is_labelled_and_normalised(tmp_path, monkeypatch):
    """The key reads 0..1 whatever the map's scale, with the quantity and raw range."""
    import matplotlib.figure

    saved = []
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig",
                        lambda self, *a, **k: saved.append(self))
    image = np.zeros((16, 16, 3), "float32")
    maps = np.linspace(250.0, 500.0, 16).reshape(4, 4)  # Score-CAM's scale
    visualize.save_explanation(str(tmp_path / "a.png"), image, maps,
                                           quantity="Score-CAM saliency")
    key = saved[-1].axes[-1]
    assert key.get_xlabel() == ("Score-CAM saliency, normalised to [0, 1] (raw range 250 to "
                                "500)")
    assert key.get_xlim() == (0.0, 1.0)
    parts = np.random.default_rng(0).random((4, 4, 3))
    visualize.save_explanation(str(tmp_path / "b.png"), image, parts)
    title = saved[-1].axes[-1].get_legend().get_title().get_text()
    assert title.startswith("attention, normalised to [0, 1] (raw range")


def test_curves_legend_explains_the_bands(tmp_path, monkeypatch):
    import matplotlib.figure

    saved = []
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig",
                        lambda self, *a, **k: saved.append(self))
    curves = {"a": np.random.default_rng(0).random((5, 4)), "b": np.ones(4)}
    visualize.plot_curves(str(tmp_path / "c.png"), curves)
    labels = [t.get_text() for t in saved[-1].axes[0].get_legend().get_texts()]
    assert labels[-1] == "band: mean +- 1 std over the images (n=5)"
    visualize.plot_curves(str(tmp_path / "d.png"), {"b": np.ones(4)})
    labels = [t.get_text() for t in saved[-1].axes[0].get_legend().get_texts()]
    assert not any("band" in label for label in labels)


def test_one_point_curves_of_one_step_are_drawn_with_that_point_as_area(tmp_path, monkeypatch):
    import matplotlib.figure

    saved = []
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig",
                        lambda self, *a, **k: saved.append(self))
    visualize.plot_curves(str(tmp_path / "c.png"), {"a": np.array([[0.2], [0.6]])})
    axis = saved[-1].axes[0]
    labels = [t.get_text() for t in axis.get_legend().get_texts()]
    assert labels == ["a (AUC 0.400)"]  # keras_brnpa.metrics: one point, its own area
    x, y = axis.get_lines()[0].get_data()
    assert list(x) == [1.0] and list(y) == pytest.approx([0.4])


def test_retrieval_draws_each_parts_cosine(tmp_path, monkeypatch):
    """The numbers written beside the parts are the cosines of the part vectors."""
    import matplotlib.figure

    saved = []
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig",
                        lambda self, *a, **k: saved.append(self))
    rng = np.random.default_rng(0)
    q, m = rng.normal(size=(3, 5)), rng.normal(size=(3, 5))
    m[1] = 2.5 * q[1]  # part 2 identical up to scale: cosine 1
    visualize.save_retrieval(str(tmp_path / "r.png"), gray(0.2), gray(0.7),
                             rng.random((4, 4, 3)), rng.random((4, 4, 3)), q.reshape(-1), m)
    texts = [t.get_text() for axis in saved[-1].axes for t in axis.texts]
    drawn = {t.split("\n")[0]: float(t.split("\n")[-1]) for t in texts if "cosine" in t}
    for k in range(3):
        expected = q[k] @ m[k] / (np.sqrt(q[k] @ q[k]) * np.sqrt(m[k] @ m[k]))
        assert drawn[f"part {k + 1}"] == pytest.approx(expected, abs=5e-4)
    assert drawn["part 2"] == pytest.approx(1.0, abs=5e-4)
    whole = q.ravel() @ m.ravel() / (np.linalg.norm(q) * np.linalg.norm(m))
    assert drawn["all parts"] == pytest.approx(whole, abs=5e-4)
    assert len(saved[-1].axes) == 3 * 4  # (query, text, match) x (all + 3 parts)
    with pytest.raises(ValueError, match="argument match_vectors.*Received: match_vectors="):
        visualize.save_retrieval(str(tmp_path / "s.png"), gray(), gray(), rng.random((4, 4, 3)),
                                 rng.random((4, 4, 3)), q, m[:, :4])
