"""Person re-identification with BR-NPA part embeddings, on synthetic people.

Generates the embedded re-ID data (identities = combinations of coloured
clothes, seen by 4 cameras with their own background, lighting, scale and
pose; train and test identities disjoint; Market-1501-style query and
gallery), then for the BR-NPA head and the GAP head (the plain CNN):

1. measures rank-1 / mAP of the untrained embedding model;
2. trains it with the re-ID recipe: identity cross-entropy plus the
   batch-hard triplet loss, on P identities x K images batches, batch-norm
   momentum 0.9 (the statistics follow a short run); the BR-NPA model
   also gets a batch-norm neck, each part vector L2-normalised and one
   identity classifier per part (docs/reid.md; ``--plain`` trains both
   heads with the earlier recipe: momentum 0.99, no neck, one classifier);
3. measures rank-1 / rank-5 / mAP again (Market-1501 protocol: same
   identity in the same camera ignored).

Writes ``retrieval.png`` (queries -> top-5 gallery images of the trained
BR-NPA model, with their part maps; green = same identity) and
``retrieval_parts.png`` (the first query and its best match part by part,
with each part's cosine similarity). With
``--distill``, also distils the trained low-resolution BR-NPA model into
its high-resolution twin by matching embeddings (cosine loss), and
compares it with the high-resolution model trained directly.

Usage::

    python examples/reid_synthetic.py                 # a few minutes on a CPU
    python examples/reid_synthetic.py --smoke         # seconds: checks it runs
    python examples/reid_synthetic.py --distill       # + the distillation study
"""

import argparse
import os
import time

import keras
import numpy as np

import keras_brnpa


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", default="runs/reid_synthetic", help="output folder")
    parser.add_argument("--train-ids", type=int, default=100, help="training identities")
    parser.add_argument("--test-ids", type=int, default=50, help="test identities")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--backbone", default="tiny")
    parser.add_argument("--resolution", default="high", choices=("low", "high"))
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--steps", type=int, default=25, help="batches per epoch")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--distill", action="store_true", help="also the distillation study")
    parser.add_argument("--plain", action="store_true",
                        help="the earlier recipe (no neck, one classifier, momentum 0.99)")
    parser.add_argument("--smoke", action="store_true", help="tiny run to check that it works")
    args = parser.parse_args(argv)
    if args.smoke:
        args.train_ids, args.test_ids, args.image_size = 8, 6, 32
        args.epochs, args.steps = 1, 2
    return args


def evaluate(model, data):
    query = keras_brnpa.fewshot.embed(model, data["query"]["images"])
    gallery = keras_brnpa.fewshot.embed(model, data["gallery"]["images"])
    result = keras_brnpa.metrics.cmc_map(
        query, data["query"]["ids"], gallery, data["gallery"]["ids"],
        data["query"]["cameras"], data["gallery"]["cameras"], ranks=(1, 5, 10),
    )
    return result, query, gallery


def build(head, args, resolution=None):
    """The embedding model of ``head``; BR-NPA with the neck and normalised
    parts unless --plain."""
    size = args.image_size
    model = keras_brnpa.models.build_embedding_model(
        backbone=args.backbone, head=head, n_parts=3, resolution=resolution or args.resolution,
        input_shape=(size, size, 3), neck=head == "brnpa" and not args.plain,
        normalize_parts=head == "brnpa" and not args.plain,
    )
    if not args.plain:
        keras_brnpa.models.set_batch_norm_momentum(model)  # 0.9: a short run
    return model


def train(model, data, args, p, k):
    """ID cross-entropy (one classifier per part for BR-NPA unless --plain)
    + batch-hard triplet loss on P x K batches."""
    num_ids = int(data["train"]["labels"].max()) + 1
    part_logits = keras_brnpa.models.head_kind(model) == "brnpa" and not args.plain
    trainer = keras_brnpa.models.with_id_logits(model, num_ids, part_logits=part_logits)
    loss = {name: keras.losses.SparseCategoricalCrossentropy(from_logits=True)
            for name in trainer.output if name != "embedding"}
    loss["embedding"] = keras_brnpa.losses.BatchHardTripletLoss(margin=0.3)
    trainer.compile(optimizer=keras.optimizers.Adam(2e-3), loss=loss)
    batches = keras_brnpa.datasets.IdentityBalancedDataset(
        data["train"]["images"], data["train"]["labels"], identities_per_batch=p,
        images_per_identity=k, steps_per_epoch=args.steps, targets=tuple(trainer.output),
        seed=args.seed,
    )
    trainer.fit(batches, epochs=args.epochs, verbose=0)
    return model


def distill(teacher, data, args):
    """High-resolution student matching the teacher's embeddings (cosine)."""
    student = keras_brnpa.models.to_high_resolution(teacher)
    targets = keras_brnpa.fewshot.embed(teacher, data["train"]["images"])
    student.compile(optimizer=keras.optimizers.Adam(1e-3), loss=keras.losses.CosineSimilarity())
    student.fit(data["train"]["images"], targets, batch_size=64,
                epochs=max(1, args.epochs * args.steps * 64 // len(targets)), verbose=0)
    return student


def save_retrieval(path, model, data, query, gallery, n_queries=6, k=5):
    rows = np.random.default_rng(0).choice(len(query), min(n_queries, len(query)), replace=False)
    q_ids, q_cams = data["query"]["ids"][rows], data["query"]["cameras"][rows]
    g = data["gallery"]
    similarity = query[rows] @ gallery.T / (
        np.linalg.norm(query[rows], axis=1, keepdims=True) * np.linalg.norm(gallery, axis=1)
    )
    # As the protocol does: no same identity from the same camera.
    ignored = (g["ids"][None] == q_ids[:, None]) & (g["cameras"][None] == q_cams[:, None])
    top = np.argsort(-np.where(ignored, -np.inf, similarity), axis=1)[:, :k]
    maps = keras_brnpa.explain.attention_maps(model, g["images"][top.reshape(-1)])
    query_maps = keras_brnpa.explain.attention_maps(model, data["query"]["images"][rows])
    return keras_brnpa.visualize.save_retrieval_gallery(
        path, data["query"]["images"][rows], g["images"][top],
        query_maps=query_maps, result_maps=maps.reshape(top.shape + maps.shape[1:]),
        correct=g["ids"][top] == q_ids[:, None],
        query_titles=[f"id {i} cam {c}" for i, c in zip(q_ids, q_cams)],
    )


def save_parts(path, model, data, query, gallery, row=0):
    """The query ``row`` and its best match, part by part, with each part's cosine."""
    g = data["gallery"]
    q_id, q_cam = data["query"]["ids"][row], data["query"]["cameras"][row]
    score = np.where((g["ids"] == q_id) & (g["cameras"] == q_cam), -np.inf, gallery @ query[row])
    best = int(np.argmax(score))
    images = np.stack([data["query"]["images"][row], g["images"][best]])
    maps = keras_brnpa.explain.attention_maps(model, images)
    return keras_brnpa.visualize.save_retrieval(
        path, images[0], images[1], maps[0], maps[1], query[row], gallery[best],
        titles=(f"query id {q_id}", f"match id {g['ids'][best]}"),
    )


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.output, exist_ok=True)
    data = keras_brnpa.datasets.synthetic_reid(
        num_train_identities=args.train_ids, num_test_identities=args.test_ids,
        images_per_identity=8, num_cameras=4, image_size=args.image_size, seed=args.seed,
    )
    print(f"train: {len(data['train']['ids'])} images of {args.train_ids} identities; "
          f"query: {len(data['query']['ids'])}, gallery: {len(data['gallery']['ids'])} "
          f"({args.test_ids} other identities, 4 cameras)")
    p, k = min(16, args.train_ids), 4
    rows, models = [], {}
    for head in ("brnpa", "gap"):
        keras.utils.set_random_seed(args.seed)
        model = build(head, args)
        before, _, _ = evaluate(model, data)
        start = time.perf_counter()
        train(model, data, args, p, k)
        seconds = time.perf_counter() - start
        after, query, gallery = evaluate(model, data)
        models[head] = (model, query, gallery)
        rows.append((head, before, after, seconds))

    feature = keras_brnpa.models.feature_shape(models["brnpa"][0])
    print(f"\nbackbone {args.backbone} ({args.resolution} resolution, {feature[0]}x{feature[1]} "
          f"feature map), {args.epochs} epochs x {args.steps} batches of {p}x{k}")
    print(f"{'head':8s} {'untrained rank-1':>16s} {'mAP':>6s}   {'trained rank-1':>14s} "
          f"{'rank-5':>6s} {'mAP':>6s}  {'train s':>7s}")
    for head, before, after, seconds in rows:
        print(f"{head:8s} {before['rank-1']:16.3f} {before['mAP']:6.3f}   {after['rank-1']:14.3f} "
              f"{after['rank-5']:6.3f} {after['mAP']:6.3f}  {seconds:7.1f}")
        print(f"RESULT head={head} untrained_rank1={before['rank-1']:.4f} "
              f"untrained_mAP={before['mAP']:.4f} rank1={after['rank-1']:.4f} mAP={after['mAP']:.4f}")

    model, query, gallery = models["brnpa"]
    path = save_retrieval(os.path.join(args.output, "retrieval.png"), model, data, query, gallery)
    print(f"wrote {path}")
    path = save_parts(os.path.join(args.output, "retrieval_parts.png"), model, data, query,
                      gallery)
    print(f"wrote {path}")

    if args.distill:
        print("\ndistillation to high resolution (BR-NPA head):")
        keras.utils.set_random_seed(args.seed)
        teacher = build("brnpa", args, resolution="low")
        train(teacher, data, args, p, k)
        student = distill(teacher, data, args)
        for name, net in (("low-res teacher", teacher), ("high-res student (cosine)", student),
                          ("high-res trained directly", model)):
            result, _, _ = evaluate(net, data)
            size = keras_brnpa.models.feature_shape(net)[:2]
            print(f"  {name:28s} {size[0]:2d}x{size[1]:<2d} rank-1 {result['rank-1']:.3f} "
                  f"mAP {result['mAP']:.3f}")


if __name__ == "__main__":
    main()
