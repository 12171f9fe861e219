"""Stage 3: choose the form the models read the text in, then train the XGBoost classifier that
routes each tweet to a popularity class.

Reads  train_data_with_classes.csv   (from 01_create_classes.py)
       embeddings_content.npy, embeddings_combined.npy   (from 02_generate_embeddings.py; not with
                                    --features all,-text), text_finetuned.npy (02 --finetune) if there
Writes classifier_model_improved.joblib   the model plus what it was trained on and with, the text
                                          form chosen and the fitted text model (tweetlikes.text)

The global regressor is trained once per text form (none, score, projection, raw, finetuned); the
form with the lowest log1p RMSE on the validation slice is kept (--text-form FORM skips the
choice), and 04 and 05 read the text in it. --features picks the input groups (--help lists
them); 04 takes the same --features and --seed from the classifier. The reasoning: the text
forms, class weights and block-wise training in docs/how-it-works.md (section 3).

Usage: python 03b_train_classifier_improved.py [--features all|seed|history|GROUP,...]
                                              [--text-form auto|none|score|projection|raw|finetuned]
                                              [--cluster ADDRESS] [--sketch-above ROWS] [--sketch-rows N]

A good run on the embedded sample prints (the per-class table abridged):

    read train_data_with_classes.csv and content and combined embeddings: 5000 rows, features
      text+history+surface+media+time+wording (412 columns); no column for reply in the input
    fit 3600 rows, validation 400
    text form, by its global regressor's log1p RMSE on the 400 validation rows:
      none       1.537  (28 columns)
      score      1.357  (29 columns)
      projection 1.378  (44 columns)
      raw        1.397  (412 columns)
    text form: score (chosen on the validation slice)
    class weights: common 0.44, popular 1.67, viral 6.67
    trained on cpu: best round 98 of 1000

    test rows (1000), never seen in training:
    ...
    macro-F1 0.599 vs 0.277 always answering 'common'
    wrote classifier_model_improved.joblib in 5.0s
"""
import common  # first: it makes a Ctrl-C while the rest imports one line too

import time
from pathlib import Path

import numpy as np
import pandas as pd

from tweetlikes import cluster, features, files, finetune, models, tables, text, training

# The XGBoost settings of all five models: 04 trains its regressors with the ones this classifier records, unless
# given its own (--help shows them; every model file records them).
N_ESTIMATORS = 1000         # a ceiling, not a choice: early stopping picks the rounds
LEARNING_RATE = 0.05        # small steps, so the round early stopping keeps lies close to the best one
MAX_DEPTH = 6               # XGBoost's default: room for history x signal interactions
EARLY_STOPPING_ROUNDS = 50  # patience: a validation slice of a few hundred rows stalls for dozens of rounds
SUBSAMPLE = 0.8             # rows per tree: a little bagging against the heavy-tailed likes
COLSAMPLE_BYTREE = 0.5      # columns per tree: also how often each of the dozen non-text columns is offered
# The bins at scale. XGBoost's quantile sketch, the first pass over the fit rows that fixes the bins, takes
# memory that grows with them: at 300K rows, most of the run's memory. A model with more fit rows than
# SKETCH_ABOVE cuts its bins from a seeded sample of SKETCH_ROWS of them instead (the full matrix takes the
# sample's cuts through XGBoost's `ref` and is never sketched), as accurate as all rows' bins within the spread
# over seeds. Up to SKETCH_ABOVE, every row's bins. The peaks and the accuracy: docs/speed-and-memory.md.
SKETCH_ABOVE = 100_000
SKETCH_ROWS = 16_384        # one feature block


def parse_arguments(argv):
    parser = training.training_parser(__doc__, {"n_estimators": N_ESTIMATORS, "learning_rate": LEARNING_RATE,
                                                "max_depth": MAX_DEPTH, "sketch_above": SKETCH_ABOVE,
                                                "sketch_rows": SKETCH_ROWS})
    parser.add_argument("--text-form", default="auto", choices=("auto", *features.TEXT_FORMS),
                        help="how the models read the text: auto picks, on the validation slice, the form "
                             "whose global regressor errs least (see tweetlikes/text.py); 04 and 05 use "
                             "the classifier's")
    return parser.parse_args(argv)


def xgboost_settings(args):
    """The settings every model file records, in this order (04 takes them from the classifier's)."""
    return {"n_estimators": args.n_estimators, "learning_rate": args.learning_rate, "max_depth": args.max_depth,
            "subsample": SUBSAMPLE, "colsample_bytree": COLSAMPLE_BYTREE,
            "early_stopping_rounds": EARLY_STOPPING_ROUNDS, "seed": args.seed,
            "sketch_above": args.sketch_above, "sketch_rows": args.sketch_rows}


def read_rows(args):
    """The training inputs (training.read_training_inputs) and, in the same one pass over the
    classed CSV, text.TextRows when the text is read (None when not): the rows' pair and copy keys,
    and 02 --finetune's scores when they are to be tried (fine_tuned_scores reads the content)."""
    info = tables.check_classed()
    finetuned_wanted = args.text_form == "finetuned" or (args.text_form == "auto" and
                                                         Path(common.FINETUNED_SCORES).exists())

    def keep(chunk):
        return text.copy_keys(chunk), text.accounts_of(chunk), chunk["content"] if finetuned_wanted else None
    table, inputs, provenance, kept = training.read_training_inputs(info, args.features, ["content", "combined"], keep)
    if "text" not in provenance["features"]:
        return table, inputs, provenance, None
    keys, copies = text.row_keys([(hashes, accounts) for hashes, accounts, _ in kept])
    finetuned = fine_tuned_scores(args.text_form, table, kept, info) if finetuned_wanted else None
    record = common.read_json(common.EMBEDDINGS_META)[finetune.RECORD] if finetuned is not None else None
    return table, inputs, provenance, text.TextRows(np.log1p(table["likes"].to_numpy(dtype=float)), keys, copies,
                                                    finetuned, record)


def fine_tuned_scores(text_form, table, kept, info):
    """02 --finetune's scores (tweetlikes.finetune) when they are made from the current classed CSV
    (its rows' content, accounts, likes and split: read_rows' pass kept them) and 01's `info`; None
    (said) when they are not, an error if --text-form finetuned asks for them."""
    rows = pd.concat([text.accounts([accounts for _, accounts, _ in kept]),
                      pd.DataFrame({"content": pd.concat([content for _, _, content in kept], ignore_index=True),
                                    "likes": table["likes"], "split": table["split"]})], axis=1)
    scores, why = finetune.load_scores(rows, info)
    if why and text_form == "finetuned":
        common.fail(why)
    if why:
        print(f"  finetuned: not tried ({why})")
    return scores


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
    args = parse_arguments(argv)
    files.check_writable([common.CLASSIFIER])
    started = time.perf_counter()

    # 1. The training columns and both embeddings (with what the text forms read of the rows); the
    #    validation slice.
    table, inputs, provenance, text_rows = read_rows(args)
    y = table["popularity_class"].to_numpy()
    fit_rows, validation_rows = training.training_split(table, args.seed, provenance["validation"])
    train_rows = np.sort(np.concatenate([fit_rows, validation_rows]))
    print(f"fit {len(fit_rows)} rows, validation {len(validation_rows)}")
    settings = xgboost_settings(args)

    with cluster.cluster(args.cluster) as client:
        trainer = training.Trainer(settings, training.xgboost_device(), client)
        # 2. The form of the text that pays on these training rows, chosen on the validation slice.
        text_form, text_model, text_scores = text.choose_form(args.text_form, inputs, provenance["features"],
                                                              text_rows, (fit_rows, validation_rows), trainer)
        X = text.text_form_inputs(inputs, provenance["features"], text_form, text_model)["content"]
        print(f"text form: {text_form}" + (" (chosen on the validation slice)" if text_scores else ""))

        # 3. "Balanced" weights, n / (3 * count), from the training rows; for fit and validation alike.
        class_weight = len(train_rows) / (len(common.CLASS_NAMES) * np.bincount(y[train_rows],
                                                                                minlength=len(common.CLASS_NAMES)))
        print("class weights: " + ", ".join(f"{name} {w:.2f}" for name, w in zip(common.CLASS_NAMES, class_weight)))

        # 4. Train, early-stopped on the validation slice.
        model = training.train_xgboost(trainer, "classifier",
                                       training.TrainingSet(X, y, fit_rows, validation_rows, class_weight[y]))
        on_cluster = cluster.cluster_record(args.cluster, client)
    device, sample = trainer.device, training.sketch_sample(len(fit_rows), settings)
    print(f"trained on {device}{' on the cluster' if client else ''}: best round {model.best_iteration + 1} "
          f"of {settings['n_estimators']}"
          + (f"; bins cut from a seeded sample of {sample} fit rows" if sample else ""))

    # 5. How it does on the test rows, then the model file with everything it was made from (and
    #    the text model the other stages read the text through).
    test_rows = np.flatnonzero((table["split"] == "test").to_numpy())
    if len(test_rows):
        print_test_report(y, training.predict_rows(model.predict, X, test_rows), train_rows, test_rows)
    else:
        print("\nno test rows (01 --test-fraction 0): every row trained this model, none is left to score it")
    models.save_artifact(common.CLASSIFIER, models.artifact(model, {
        **provenance, "features_option": args.features, "settings": settings, "n_features": X.width,
        "train_rows": len(train_rows),
        "class_weight": class_weight.tolist(), "best_iteration": int(model.best_iteration), "xgboost_device": device,
        "text_form": text_form, "text_form_scores": text_scores, "sketch_sample_rows": sample,
        "validation_slice": training.slice_fingerprint(validation_rows), **on_cluster},
        text=text_model))
    print(f"wrote {common.CLASSIFIER} in {common.seconds_since(started)}")


if __name__ == "__main__":
    common.run(main)
