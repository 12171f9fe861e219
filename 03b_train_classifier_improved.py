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

from tweetlikes import cluster, features, finetune, models, tables, text, training


def choose_text_form(args, table, inputs, groups, rows, settings, device, client):
    """The form of the text (features.TEXT_FORMS) whose global regressor, fitted on the fit rows,
    errs least in log1p(likes) on the validation slice, `none` among them, so the text is used
    only in a form that pays on these training rows; with the fitted text model (text.fit) and
    each form's validation RMSE. (Not pairwise accuracy: two training rows of one account hold
    out-of-fold history from different folds, which orders them backwards, so it would mislead.)"""
    if "text" not in groups:
        return "none", None, {}
    log_likes = np.log1p(table["likes"].to_numpy(dtype=float))
    keys, copies = text.row_keys()
    text_model = text.fit(inputs["content"].embeddings, log_likes, keys, copies, rows, args.seed)
    finetuned = fine_tuned_scores(args.text_form)
    candidates = [form for form in features.TEXT_FORMS if form != "finetuned" or finetuned is not None] \
        if args.text_form == "auto" else [args.text_form]
    if tuple(groups) == ("text",):  # --features seed, the original design: the raw embeddings alone
        candidates = ["raw"] if args.text_form == "auto" else candidates
        if candidates == ["none"]:
            common.fail("--text-form none with --features seed leaves no input for the models")
    scores = {}
    if len(candidates) > 1:
        fit_rows, validation_rows = rows
        print(f"text form, by its global regressor's log1p RMSE on the {len(validation_rows)} validation rows:")
        for form in candidates:
            X = training.text_form_inputs(inputs, groups, form, {**text_model, "finetuned": finetuned}
                                          )["combined"]
            model = training.train_xgboost("regressor", settings, device, X, log_likes, fit_rows, validation_rows,
                                           client=client)
            predicted = training.predict_rows(model.predict, X, validation_rows)
            error = float(np.sqrt(np.mean((predicted - log_likes[validation_rows]) ** 2)))
            scores[form] = {"validation_log_rmse": error, "columns": X.width}
            print(f"  {form:10s} {error:.3f}  ({X.width} columns)")
    chosen = min(candidates, key=lambda form: scores[form]["validation_log_rmse"]) if scores else candidates[0]
    if chosen == "finetuned":  # the scores travel with the classifier, and the record of the weights new tweets need
        text_model.update(finetuned=finetuned, finetuned_record=common.read_json(common.EMBEDDINGS_META)[finetune.RECORD])
    return chosen, text_model, scores


def fine_tuned_scores(text_form):
    """02 --finetune's scores (tweetlikes.finetune) when they are made from the current classed CSV;
    None (said, if the file is there) when they are not, an error if --text-form finetuned asks
    for them."""
    if text_form not in ("auto", "finetuned") or (text_form == "auto" and not Path(common.FINETUNED_SCORES).exists()):
        return None
    scores, why = finetune.load_scores(*tables.load_classed())
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
    args = training.parse_training_arguments(__doc__, argv, chooses_text_form=True)
    common.check_writable([common.CLASSIFIER])
    started = time.perf_counter()

    # 1. The training columns and both embeddings; the validation slice.
    table, inputs, provenance = training.training_inputs(args, ["content", "combined"])
    y = table["popularity_class"].to_numpy()
    fit_rows, validation_rows = training.training_split(table, args.seed, provenance["validation"])
    train_rows = np.sort(np.concatenate([fit_rows, validation_rows]))
    print(f"fit {len(fit_rows)} rows, validation {len(validation_rows)}")
    device = training.xgboost_device()
    settings = training.training_settings(args)

    with cluster.cluster(args.cluster) as client:
        # 2. The form of the text that pays on these training rows, chosen on the validation slice.
        text_form, text_model, text_scores = choose_text_form(args, table, inputs, provenance["features"],
                                                              (fit_rows, validation_rows), settings, device, client)
        X = training.text_form_inputs(inputs, provenance["features"], text_form, text_model)["content"]
        print(f"text form: {text_form}" + (" (chosen on the validation slice)" if text_scores else ""))

        # 3. "Balanced" weights, n / (3 * count), from the training rows; for fit and validation alike.
        class_weight = len(train_rows) / (len(common.CLASS_NAMES) * np.bincount(y[train_rows],
                                                                                minlength=len(common.CLASS_NAMES)))
        print("class weights: " + ", ".join(f"{name} {w:.2f}" for name, w in zip(common.CLASS_NAMES, class_weight)))

        # 4. Train, early-stopped on the validation slice.
        model = training.train_xgboost("classifier", settings, device, X, y, fit_rows, validation_rows,
                                       weight=class_weight[y], client=client)
        on_cluster = cluster.cluster_record(args.cluster, client)
    sample = training.sketch_sample(len(fit_rows), settings)
    print(f"trained on {device}{' on the cluster' if client else ''}: best round {model.best_iteration + 1} "
          f"of {args.n_estimators}" + (f"; bins cut from a seeded sample of {sample} fit rows" if sample else ""))

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
