"""Few-shot classification with BR-NPA part embeddings, on synthetic parts data.

Splits the embedded "parts" data into disjoint classes (meta-train and
meta-test: no test combination of parts is seen in training), then for the
BR-NPA head and the GAP head (the plain CNN), on the "tiny" ResNet at high
resolution:

1. measures the 5-way 1-shot and 5-way 5-shot episode accuracy (+- 95%
   interval) of the untrained embedding model on the meta-test classes;
2. trains it prototypically (episodes as batches, cosine prototypes,
   ``keras_brnpa.losses.PrototypicalLoss``) on the meta-train classes;
3. measures the episode accuracies again.

Writes ``retrieval.png``: meta-test queries -> their nearest support
images of a 5-way 1-shot episode, with the part maps (green = same class).

Usage::

    python examples/fewshot_synthetic.py              # a few minutes on a CPU
    python examples/fewshot_synthetic.py --smoke      # seconds: checks it runs
"""

import argparse
import os
import time

import keras
import numpy as np

import keras_brnpa


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", default="runs/fewshot_synthetic", help="output folder")
    parser.add_argument("--train-classes", type=int, default=64)
    parser.add_argument("--test-classes", type=int, default=20)
    parser.add_argument("--images-per-class", type=int, default=30)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--episodes", type=int, default=50, help="training episodes per epoch")
    parser.add_argument("--test-episodes", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="tiny run to check that it works")
    args = parser.parse_args(argv)
    if args.smoke:
        args.train_classes, args.test_classes, args.images_per_class = 6, 5, 8
        args.image_size, args.epochs, args.episodes, args.test_episodes = 32, 1, 2, 10
    return args


def evaluate(model, test, args):
    out = {}
    for k_shot in (1, 5):
        n_query = min(15, args.images_per_class - k_shot)
        out[k_shot] = keras_brnpa.fewshot.evaluate_episodes(
            model, test["images"], test["labels"], n_way=5, k_shot=k_shot, n_query=n_query,
            episodes=args.test_episodes, seed=args.seed,
        )
    return out


def save_retrieval(path, model, test, n_queries=5):
    """One 5-way 1-shot episode: each query, then the support images by similarity."""
    rng = np.random.default_rng(0)
    classes = rng.choice(np.unique(test["labels"]), 5, replace=False)
    support = np.array([rng.choice(np.flatnonzero(test["labels"] == c)) for c in classes])
    queries = np.array([rng.choice(np.flatnonzero((test["labels"] == c) & ~np.isin(
        np.arange(len(test["labels"])), support))) for c in classes[:n_queries]])
    embeddings = keras_brnpa.fewshot.embed(model, test["images"][np.concatenate([queries, support])])
    q, s = embeddings[: len(queries)], embeddings[len(queries):]
    order = np.argsort(-(q @ s.T), axis=1)  # unit embeddings: cosine
    ranked = support[order]
    maps = keras_brnpa.explain.attention_maps(model, test["images"][ranked.reshape(-1)])
    return keras_brnpa.visualize.save_retrieval_gallery(
        path, test["images"][queries], test["images"][ranked],
        query_maps=keras_brnpa.explain.attention_maps(model, test["images"][queries]),
        result_maps=maps.reshape(ranked.shape + maps.shape[1:]),
        correct=test["labels"][ranked] == test["labels"][queries][:, None],
        query_titles=[f"class {c}" for c in test["labels"][queries]],
    )


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.output, exist_ok=True)
    data = keras_brnpa.datasets.synthetic_fewshot(
        num_train_classes=args.train_classes, num_test_classes=args.test_classes,
        images_per_class=args.images_per_class, image_size=args.image_size, seed=args.seed,
    )
    train, test = data["train"], data["test"]
    print(f"meta-train: {args.train_classes} classes x {args.images_per_class} images; "
          f"meta-test: {args.test_classes} other classes")
    shape = (args.image_size, args.image_size, 3)
    rows, models = [], {}
    for head in ("brnpa", "gap"):
        keras.utils.set_random_seed(args.seed)
        model = keras_brnpa.models.build_embedding_model(
            backbone="tiny", head=head, n_parts=3, resolution="high", input_shape=shape,
        )
        before = evaluate(model, test, args)
        model.compile(optimizer=keras.optimizers.Adam(1e-3),
                      loss=keras_brnpa.losses.PrototypicalLoss(n_way=5, k_shot=1, scale=10.0))
        episodes = keras_brnpa.fewshot.EpisodeDataset(
            train["images"], train["labels"], n_way=5, k_shot=1,
            n_query=min(15, args.images_per_class - 1), episodes_per_epoch=args.episodes,
            seed=args.seed,
        )
        start = time.perf_counter()
        model.fit(episodes, epochs=args.epochs, verbose=0)
        seconds = time.perf_counter() - start
        after = evaluate(model, test, args)
        rows.append((head, before, after, seconds))
        models[head] = model

    print(f"\n5-way accuracy on meta-test classes, {args.test_episodes} episodes (+- 95% CI); "
          f"training: {args.epochs} x {args.episodes} 5-way 1-shot episodes")
    print(f"{'head':6s} {'untrained 1-shot':>18s} {'5-shot':>16s}   {'trained 1-shot':>16s} "
          f"{'5-shot':>16s}  {'train s':>7s}")
    fmt = "{accuracy:.3f} +- {ci95:.3f}".format
    for head, before, after, seconds in rows:
        print(f"{head:6s} {fmt(**before[1]):>18s} {fmt(**before[5]):>16s}   {fmt(**after[1]):>16s} "
              f"{fmt(**after[5]):>16s}  {seconds:7.1f}")
        print(f"RESULT head={head} untrained_1shot={before[1]['accuracy']:.4f} "
              f"accuracy_1shot={after[1]['accuracy']:.4f} ci95_1shot={after[1]['ci95']:.4f} "
              f"accuracy_5shot={after[5]['accuracy']:.4f} ci95_5shot={after[5]['ci95']:.4f}")
    path = save_retrieval(os.path.join(args.output, "retrieval.png"), models["brnpa"], test)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
