"""Stage 3: train the XGBoost classifier that routes each tweet to a popularity class.

Reads  train_data_with_classes.csv   (from 01_create_classes.py)
       embeddings_content.npy       (from 02_generate_embeddings.py; not with --features all,-text)
Writes classifier_model_improved.joblib   the model plus what it was trained on and with

Class imbalance (75/20/5) is countered with balanced sample weights computed from the training
rows. Early stopping watches a seeded validation slice of the training rows; the test rows are
only used for the report printed at the end.

--features all      content embeddings, the history features and every signal 01 found (default)
--features seed     the original design: content embeddings only
--help lists the groups; 04 must be run with the same --features.

The feature matrix is never built whole: XGBoost bins it a block of rows at a time from the
memory-mapped embeddings; with more fit rows than --sketch-above (100,000), its bins are cut from a
seeded sample of --sketch-rows (16,384) of them, which keeps XGBoost's quantile sketch small
(tweetlikes.training). --cluster trains on a Dask cluster's workers instead (xgboost.dask), with
the same settings, weights, validation slice and early stopping; the model file is the same kind.

Usage: python 03b_train_classifier_improved.py [--features all|seed|history|GROUP,...] [--cluster ADDRESS]
                                             [--sketch-above ROWS] [--sketch-rows N]

A good run on the embedded sample prints (the per-class table abridged):

    read train_data_with_classes.csv and content embeddings: 5000 rows, features
      text+history+surface+media+time (405 columns); no column for reply in the input
    fit 3600 rows, validation 400
    class weights: common 0.44, popular 1.67, viral 6.67
    trained on cpu: best round 62 of 1000

    test rows (1000), never seen in training:
                  precision    recall  f1-score   support
          common      0.908     0.792     0.846       710
         popular      0.457     0.680     0.547       228
           viral      0.381     0.258     0.308        62
    ...
    macro-F1 0.567 vs 0.277 always answering 'common'
    wrote classifier_model_improved.joblib in 15.0s
"""
import common  # first: it makes a Ctrl-C while the rest imports one line too

import time

import numpy as np

from tweetlikes import cluster, models, training


def print_test_report(y, predicted, train_rows, test_rows):
    """The classifier on the test rows, beside always answering the training rows' majority class."""
    from sklearn.metrics import classification_report, confusion_matrix, f1_score

    def macro_f1(guess):
        return f1_score(y[test_rows], guess, labels=common.CLASS_LABELS, average="macro", zero_division=0)

    print(f"\ntest rows ({len(test_rows)}), never seen in training:")
    print(classification_report(y[test_rows], predicted, labels=common.CLASS_LABELS, target_names=common.CLASS_NAMES,
                                digits=3, zero_division=0))
    print("confusion matrix (rows: true, columns: predicted)\n",
          confusion_matrix(y[test_rows], predicted, labels=common.CLASS_LABELS))
    majority = np.bincount(y[train_rows], minlength=len(common.CLASS_NAMES)).argmax()
    print(f"macro-F1 {macro_f1(predicted):.3f} vs {macro_f1(np.full(len(test_rows), majority)):.3f} "
          f"always answering '{common.CLASS_NAMES[majority]}'")


def main(argv=None):
    args = training.parse_training_arguments(__doc__, argv)
    common.check_writable([common.CLASSIFIER])
    started = time.perf_counter()

    # 1. The training columns and the content embeddings; the validation slice.
    table, inputs, provenance = training.training_inputs(args, ["content"])
    X = inputs["content"]
    y = table["popularity_class"].to_numpy()
    fit_rows, validation_rows = training.training_split(table, args.seed)
    train_rows = np.sort(np.concatenate([fit_rows, validation_rows]))
    print(f"fit {len(fit_rows)} rows, validation {len(validation_rows)}")

    # 2. "Balanced" weights, n / (3 * count), from the training rows; for fit and validation alike.
    class_weight = len(train_rows) / (len(common.CLASS_NAMES) * np.bincount(y[train_rows],
                                                                            minlength=len(common.CLASS_NAMES)))
    print("class weights: " + ", ".join(f"{name} {w:.2f}" for name, w in zip(common.CLASS_NAMES, class_weight)))

    # 3. Train, early-stopped on the validation slice.
    device = training.xgboost_device()
    settings = training.training_settings(args)
    with cluster.cluster(args.cluster) as client:
        model = training.train_xgboost("classifier", settings, device, X, y, fit_rows, validation_rows,
                                       weight=class_weight[y], client=client)
        on_cluster = cluster.cluster_record(args.cluster, client)
    sample = training.sketch_sample(len(fit_rows), settings)
    print(f"trained on {device}{' on the cluster' if client else ''}: best round {model.best_iteration + 1} "
          f"of {args.n_estimators}" + (f"; bins cut from a seeded sample of {sample} fit rows" if sample else ""))

    # 4. How it does on the test rows, then the model file with everything it was made from.
    test_rows = np.flatnonzero((table["split"] == "test").to_numpy())
    print_test_report(y, training.predict_rows(model.predict, X, test_rows), train_rows, test_rows)
    models.save_artifact(common.CLASSIFIER, models.artifact(model, {
        **provenance, "settings": settings, "n_features": X.width, "train_rows": len(train_rows),
        "class_weight": class_weight.tolist(), "best_iteration": int(model.best_iteration), "xgboost_device": device,
        "sketch_sample_rows": sample,
        **on_cluster}))
    print(f"wrote {common.CLASSIFIER} in {common.seconds_since(started)}")


if __name__ == "__main__":
    common.run(main)
