"""keras_brnpa.metrics.cmc_map against a plain, loop-by-loop NumPy version."""

import numpy as np
import pytest

import keras_brnpa
from keras_brnpa.metrics import cmc_map


def reference(qf, qids, gf, gids, qcams=None, gcams=None, ranks=(1, 5, 10)):
    """Market-1501 evaluation written plainly, one query and one entry at a time."""
    cmc_hits = {k: 0 for k in ranks}
    ap_market, ap_standard, valid = [], [], 0
    for i in range(len(qf)):
        a = qf[i] / np.linalg.norm(qf[i])
        distances = []
        for j in range(len(gf)):
            b = gf[j] / np.linalg.norm(gf[j])
            distances.append((1.0 - float(np.dot(a, b)), j))
        distances.sort()  # ties: lower gallery index first (stable)
        ranked = []
        for _, j in distances:
            if gids[j] == -1:
                continue  # junk
            if qcams is not None and gids[j] == qids[i] and gcams[j] == qcams[i]:
                continue  # same person, same camera
            ranked.append(gids[j] == qids[i])
        n_good = sum(ranked)
        if n_good == 0:
            continue
        valid += 1
        first = ranked.index(True)  # 0-based
        for k in ranks:
            if first < k:
                cmc_hits[k] += 1
        found, ap_m, precisions = 0, 0.0, []
        for position, is_match in enumerate(ranked):
            if not is_match:
                continue
            found += 1
            precision = found / (position + 1)
            old_precision = 1.0 if position == 0 else (found - 1) / position
            ap_m += (1.0 / n_good) * (old_precision + precision) / 2
            precisions.append(precision)
        ap_market.append(ap_m)
        ap_standard.append(sum(precisions) / len(precisions))
    result = {f"rank-{k}": cmc_hits[k] / valid for k in ranks}
    return result, float(np.mean(ap_market)), float(np.mean(ap_standard)), valid


def random_problem(seed, n_query=40, n_gallery=300, dim=8, n_ids=12, n_cams=3):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_ids + 1, dim))
    qids = rng.integers(1, n_ids + 1, n_query)
    gids = rng.integers(0, n_ids + 1, n_gallery)  # 0: distractors
    gids[rng.random(n_gallery) < 0.1] = -1  # junk
    qids[:3] = n_ids + 5  # identities absent from the gallery: skipped
    qf = centres[np.clip(qids, 0, n_ids)] + rng.normal(scale=1.0, size=(n_query, dim))
    gf = centres[np.clip(gids, 0, n_ids)] + rng.normal(scale=1.0, size=(n_gallery, dim))
    qcams = rng.integers(0, n_cams, n_query)
    gcams = rng.integers(0, n_cams, n_gallery)
    return qf, qids, gf, gids, qcams, gcams


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cmc_map_equals_plain_numpy_with_cameras_and_junk(seed):
    qf, qids, gf, gids, qcams, gcams = random_problem(seed)
    expected, ap_market, ap_standard, valid = reference(qf, qids, gf, gids, qcams, gcams)
    assert 10 < valid < len(qf)  # some queries are skipped, most are not
    for batch_size in (1, 7, 256):
        got = cmc_map(qf, qids, gf, gids, qcams, gcams, batch_size=batch_size)
        assert set(got) == {"rank-1", "rank-5", "rank-10", "mAP"}
        for key, value in expected.items():
            assert got[key] == pytest.approx(value, abs=1e-12), key
        assert got["mAP"] == pytest.approx(ap_market, abs=1e-12)
    standard = cmc_map(qf, qids, gf, gids, qcams, gcams, ap="standard")
    assert standard["mAP"] == pytest.approx(ap_standard, abs=1e-12)
    assert standard["mAP"] != pytest.approx(ap_market, abs=1e-6)  # the two rules differ


def test_cmc_map_without_cameras_and_other_ranks():
    qf, qids, gf, gids, _, _ = random_problem(3)
    expected, ap_market, _, _ = reference(qf, qids, gf, gids, ranks=(1, 3))
    got = cmc_map(qf, qids, gf, gids, ranks=(1, 3))
    assert got == pytest.approx({**expected, "mAP": ap_market}, abs=1e-12)
    # Cameras matter: with them, same-camera matches are removed.
    _, _, _, _, qcams, gcams = random_problem(3)
    assert cmc_map(qf, qids, gf, gids, qcams, gcams, ranks=(1, 3)) != pytest.approx(got)


def test_cmc_map_perfect_and_reversed_rankings():
    # Gallery: identity i in camera 1 at direction e_i; queries in camera 0.
    gallery = np.eye(4)
    ids = np.arange(1, 5)
    perfect = cmc_map(gallery + 0.01, ids, gallery, ids, np.zeros(4, int), np.ones(4, int))
    assert perfect == {"rank-1": 1.0, "rank-5": 1.0, "rank-10": 1.0, "mAP": 1.0}
    # The same-camera copy of the query is ignored; the match is ranked last.
    gallery2 = np.concatenate([gallery, gallery[:1] * -1.0 + 2.0])
    ids2 = np.array([1, 2, 3, 4, 1])
    cams2 = np.array([0, 1, 1, 1, 1])
    out = cmc_map(gallery[:1], [1], gallery2, ids2, [0], cams2, ranks=(1, 4, 5))
    # Entry 0 (same id, same camera) is ignored; entry 4 is at cos 0.28 from
    # the query, ids 2-4 at cos 0: the match comes first.
    assert out["rank-1"] == 1.0 and out["mAP"] == 1.0
    # Now the only valid match is opposite to the query: ranked 4th of 4.
    gallery3 = np.concatenate([gallery, [[-1.0, 0, 0, 0]]])
    out = cmc_map(gallery[:1], [1], gallery3, ids2, [0], cams2, ranks=(1, 3, 4))
    assert out["rank-1"] == 0.0 and out["rank-3"] == 0.0 and out["rank-4"] == 1.0
    assert out["mAP"] == pytest.approx((0 / 3 + 1 / 4) / 2)  # (old + new precision) / 2
    out = cmc_map(gallery[:1], [1], gallery3, ids2, [0], cams2, ap="standard")
    assert out["mAP"] == pytest.approx(1 / 4)


def test_cmc_map_no_valid_query_gives_nan():
    out = cmc_map(np.ones((2, 3)), [5, 6], np.ones((3, 3)), [1, 2, -1])
    assert all(np.isnan(v) for v in out.values())


def test_cmc_map_large_gallery_is_batched():
    rng = np.random.default_rng(0)
    gallery = rng.normal(size=(20000, 16)).astype("float32")
    gids = rng.integers(0, 700, 20000)
    query = gallery[:50] + 0.1 * rng.normal(size=(50, 16)).astype("float32")
    out = cmc_map(query, gids[:50], gallery, gids, np.zeros(50, int), np.ones(20000, int),
                  batch_size=16)
    assert out["rank-1"] == 1.0  # the noisy copy finds its original


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        (dict(query_features=np.ones(3)), "query_features"),
        (dict(gallery_features=np.ones((4, 5))), "gallery_features"),
        (dict(query_ids=[1, 2]), "query_ids"),
        (dict(gallery_ids=np.ones(4)), "gallery_ids"),
        (dict(query_cameras=[0, 0, 0]), "gallery_cameras"),
        (dict(ranks=(0,)), "ranks"),
        (dict(batch_size=0), "batch_size"),
        (dict(ap="voc"), "ap"),
        (dict(query_features=np.full((3, 4), np.nan)), "query_features"),
    ],
)
def test_cmc_map_errors_name_the_argument(kwargs, argument):
    args = dict(
        query_features=np.ones((3, 4)), query_ids=[1, 2, 3],
        gallery_features=np.ones((4, 4)), gallery_ids=[1, 2, 3, 4],
    )
    args.update(kwargs)
    with pytest.raises(ValueError, match=f"Invalid value for argument {argument}"):
        keras_brnpa.metrics.cmc_map(**args)
