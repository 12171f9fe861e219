"""Stage 4: train one XGBoost regressor per popularity class (the "specialists") and one global
regressor on all training rows, then learn how to combine them with the classifier.

Reads  train_data_with_classes.csv        (from 01_create_classes.py)
       embeddings_combined.npy, embeddings_content.npy   (from 02_generate_embeddings.py;
                                          not with --features all,-text)
       classifier_model_improved.joblib   (from 03b_train_classifier_improved.py, with its text form)
Writes regressor_model_class_{0,1,2}.joblib   specialist k, trained only on training rows of class k
       regressor_model_global.joblib          one regressor for all classes
       routing_combiner.json                  fitted on the validation slice: the learned routing,
                                              smearing factors, calibration, the chance model of
                                              one draft beating another, the likes ranges, the
                                              typical tweet for drafts; its fitting record

What is fitted on the validation slice, and why: docs/how-it-works.md (section 4).

Usage: python 04_train_regressors.py [--features all|seed|history|GROUP,...] [--seed N] [--cluster ADDRESS]
                                    [--sketch-above ROWS] [--sketch-rows N]
(--features and --seed are 03b's unless given; given otherwise, refused with the command that agrees;
 the XGBoost settings are 03b's too unless given: --n-estimators, --learning-rate, --max-depth, --sketch-*)

A good run on the embedded sample prints:

    read train_data_with_classes.csv and combined and content embeddings: 5000 rows, features
      text+history+surface+media+time+wording (412 columns); no column for reply in the input
    text form: score (03b's choice)
    training on cpu; log1p(likes) RMSE, each beside its own training median:
      model      train rows rounds validation   test  median
      common           3000     72      1.019  1.041   1.907
      popular           800     28      0.593  0.618   0.633
      viral             200     29      1.068  0.704   0.715
      global           4000     94      1.357  1.386   2.738
    calibration of the class probabilities: sigmoid (cross-validated log loss none 0.476, ...)
    combiner fitted on the 400 validation rows (ridge alpha 316.228); log1p RMSE there: global 1.357, ...
    chance of beating another draft fitted on 1210 same-account pairs (336 independent), with a
      draft's history: slope 0.82
    likes ranges: conformal residuals of the 400 validation rows, per group of 100 rows or more
      (predicted class, seen or unseen account and company): common, account seen, company seen 262;
      popular, account seen, company seen 109; account seen, company seen 400; all rows 400
    wrote regressor_model_class_0.joblib, ..., routing_combiner.json in 1.0s
"""
import common  # first: it makes a Ctrl-C while the rest imports one line too

import time
import uuid

import numpy as np
import pandas as pd

from tweetlikes import calibration, cluster, contrast, features, files, intervals, models, pairs, tables, text, training

MIN_VALIDATION_ROWS = 10  # fewer than this and early stopping would chase noise
ROUNDS_WITHOUT_VALIDATION = 200  # then a fixed number of trees: a fifth of the ceiling, at the default rate
RIDGE_ALPHAS = np.logspace(-3, 3, 13)  # chosen by leave-one-out on the validation slice
MODELS = [*enumerate(common.CLASS_NAMES), (None, "global")]  # (class, name): three specialists, one global
# The combiner (8 coefficients) and the calibration (chosen by 5-fold cross-validation) are fitted on the
# validation slice only when it has this many rows: fewer is under 4 rows a coefficient and 6 a fold, where the
# leave-one-out penalty and the cross-validated choice that otherwise keep them safe are noise themselves. Then the
# learned routing is the global regressor and the probabilities stay uncalibrated.
MIN_FIT_ROWS = 30
# The chance model's slope needs this many independent same-account (or same-company) pairs in the validation
# slice: n tweets of an account make n(n-1)/2 pairs but only n-1 independent comparisons, and near even chances the
# slope's standard error is about 2 / (sd(gap) * sqrt(comparisons)), +-0.28 on slopes near 1 for same-account gaps
# of sd 0.5 over 200; from a handful of pairs a slope is noise. A slope of 0 or less (backwards) is never kept
# either (docs/evaluation.md, "Likes ranges and the chance to beat a draft").
MIN_CHANCE_PAIRS = 200


def fit_regressor(trainer, data):
    """XGBoost on log1p(likes), fitted on the TrainingSet `data`; early-stopped when its validation
    slice is big enough to trust. Returns the model, its number of trees and the size of the
    sample its bins were cut from (None: from all its fit rows)."""
    rounds = None
    if len(data.validation_rows) < MIN_VALIDATION_ROWS:
        data, rounds = data._replace(fit_rows=np.concatenate([data.fit_rows, data.validation_rows]),
                                     validation_rows=()), ROUNDS_WITHOUT_VALIDATION
    model = training.train_xgboost(trainer, "regressor", data, rounds)
    return model, rounds or model.best_iteration + 1, training.sketch_sample(len(data.fit_rows), trainer.settings)


def fit_combiner(outputs, target):
    """Ridge regression of the global regressor's residual on models.combiner_inputs, on
    standardised inputs with the penalty chosen by leave-one-out; returned as plain coefficients
    on the raw inputs."""
    from sklearn.linear_model import RidgeCV

    inputs = models.combiner_inputs(outputs)
    mean, scale = inputs.mean(axis=0), inputs.std(axis=0)
    scale[scale == 0] = 1
    ridge = RidgeCV(alphas=RIDGE_ALPHAS).fit((inputs - mean) / scale, target - outputs.global_log)
    coefficients = ridge.coef_ / scale
    return {"inputs": models.COMBINER_INPUTS, "coefficients": coefficients.tolist(),
            "intercept": float(ridge.intercept_ - mean @ coefficients), "alpha": float(ridge.alpha_)}


def fit_routing(outputs, validation, keys, as_drafts, seed):
    """What 05 needs beside the models, from their raw outputs on the validation rows: the
    calibration of the class probabilities, the learned routing's combiner fitted on the
    calibrated ones (with MIN_FIT_ROWS rows or more: else none of either), the smearing factors,
    and per routing the chance model of one tweet beating another of the same account (where
    earned, on `as_drafts`: the outputs of the same rows with the history a draft gets, see
    drafts_history) and the likes ranges' conformal offsets (tweetlikes.intervals)."""
    target = np.log1p(validation["likes"].to_numpy())
    (key_values, within), seen = keys
    if len(target) >= MIN_FIT_ROWS:
        calibrator = calibration.fit(outputs.uncalibrated, validation["popularity_class"].to_numpy(), seed)
        combiner = {**fit_combiner(models.calibrated(outputs, {"calibration": calibrator}), target),
                    "calibration": calibrator}
    else:  # the global regressor as it is, and the probabilities as the classifier gives them
        combiner = {"inputs": models.COMBINER_INPUTS, "coefficients": [0.0] * len(models.COMBINER_INPUTS),
                    "intercept": 0.0, "alpha": None,
                    "calibration": {"method": "none", "cross_validated_log_loss": {}, "fitted_rows": len(target)}}
    outputs = models.calibrated(outputs, combiner)  # as 05 serves them
    routed = models.routed_log_likes(outputs, combiner)
    drafts_routed = models.routed_log_likes(models.calibrated(as_drafts, combiner), combiner)
    # Smearing (Duan 1983): E[1 + likes] = exp(predicted log1p) * mean(exp(residual)), per routing.
    combiner.update({"smearing": {name: float(np.mean(np.exp(target - predicted))) if len(target) else 1.0
                                  for name, predicted in routed.items()},
                     "pair_chance": {"within": within, **{name: earned_chance(key_values, target, predicted, within,
                                                                              seed)
                                                           for name, predicted in drafts_routed.items()}},
                     "intervals": intervals.fit({name: target - predicted for name, predicted in routed.items()},
                                                outputs.predicted_class, *seen),
                     "fitted_rows": len(target),
                     "validation_log_rmse": {name: models.rmse(predicted, target) for name, predicted
                                             in [("global", outputs.global_log), *routed.items()]}})
    return combiner


def earned_chance(key_values, target, predicted, within, seed):
    """pairs.fit_chance where the validation slice earns it, MIN_CHANCE_PAIRS independent same-key
    pairs or more (rows with a key less the keys: each key's tweets after its first) and a positive
    slope; else none, with why."""
    keyed = key_values[key_values != ""]
    independent = len(keyed) - len(np.unique(keyed))
    chance = {**pairs.fit_chance(key_values, target, predicted, seed), "independent_pairs": independent}
    if independent < MIN_CHANCE_PAIRS:
        why = (f"the validation slice has {independent} independent same-{within} pairs, fewer than the "
               f"{MIN_CHANCE_PAIRS} a stable fit needs")
    elif chance["slope"] <= 0:
        why = (f"fitted on {chance['pairs']} same-{within} pairs its slope came out {chance['slope']:.2f}: "
               "backwards, a bigger predicted gap would mean a smaller chance")
    else:
        return chance
    return {"slope": None, "pairs": chance["pairs"], "independent_pairs": independent, "why": why}


def keep_keys(chunk):
    """What validation_keys needs of a chunk of the classed CSV, kept as it streams past (training
    reads no texts, and its table keeps no history columns)."""
    return text.accounts_of(chunk), chunk[list(intervals.SEEN_COLUMNS)]


def validation_keys(kept, rows):
    """The username, company and intervals.SEEN_COLUMNS of these rows of the classed CSV, from
    keep_keys of each chunk, with their pairs.pair_keys and intervals.seen."""
    table = pd.concat([text.accounts([accounts for accounts, _ in kept]),
                       pd.concat([seen for _, seen in kept], ignore_index=True)], axis=1)
    table = table.iloc[rows].reset_index(drop=True)
    return table, (pairs.pair_keys(table), intervals.seen(table))


def drafts_history(inputs, rows, keyed, groups, form):
    """The model inputs of `rows` with their history features as 05 gives a draft of the same
    account and company: from all training rows (history_stats.csv), so alike for every row of an
    account, as for two drafts or two test tweets of it. The validation rows' own history is out of
    fold (01), each without its own fold's likes: a row with many likes tends to see a lower
    account mean than the others of its account, and the gaps it makes within an account run
    backwards (measured in docs/evaluation.md, "Likes ranges and the chance to beat a draft").
    None without history features."""
    if "history" not in groups:
        return None
    history = features.lookup_history(keyed, tables.load_history_stats(),
                                      common.read_json(common.THRESHOLDS_JSON)["history_prior"])
    names = features.feature_columns(groups, form)
    present = [name for name in features.HISTORY_FEATURES if name in names]  # less any dropped one by one
    drafted = {}
    for kind, model_input in inputs.items():
        columns = model_input.columns[rows]  # a copy: fancy indexing
        columns[:, [names.index(name) for name in present]] = history[present].to_numpy(dtype=np.float32)
        drafted[kind] = features.ModelInput(model_input.embeddings, columns,
                                            None if model_input.embeddings is None else rows)
    return drafted


def print_routing(combiner, rows):
    """04's receipt of what it fitted on the validation slice, and of what it did not fit, why."""
    if combiner["alpha"] is None:
        print(f"too few validation rows ({rows}, fewer than {MIN_FIT_ROWS}): no calibration and no combiner; the "
              "probabilities are the classifier's, the learned routing is the global regressor")
    else:
        losses = combiner["calibration"]["cross_validated_log_loss"]
        print(f"calibration of the class probabilities: {combiner['calibration']['method']} (cross-validated log "
              "loss " + ", ".join(f"{name} {value:.3f}" for name, value in losses.items()) + ")")
        print(f"combiner fitted on the {rows} validation rows (ridge alpha {combiner['alpha']:g}); log1p RMSE there: "
              + ", ".join(f"{name} {value:.3f}" for name, value in combiner["validation_log_rmse"].items()))
    chance = combiner["pair_chance"]["learned"]
    print(f"chance of beating another draft fitted on {chance['pairs']} same-{combiner['pair_chance']['within']} "
          f"pairs ({chance['independent_pairs']} independent), with a draft's history: slope {chance['slope']:.2f}"
          if chance["slope"] else f"no chance of beating another draft: {chance['why']}")
    groups = combiner["intervals"]["routings"]["learned"]
    print(f"likes ranges: conformal residuals of the {rows} validation rows, per group of {intervals.MIN_GROUP_ROWS} "
          f"rows or more (predicted class, seen or unseen account and company): "
          + "; ".join(f"{name} {group['rows']}" for name, group in groups.items()))


def train_regressors(trainer, X, table, rows, provenance):
    """The three specialists and the global regressor as model bundles, by name, each printed
    with its validation and test RMSE beside its own training median's; `rows` are the (fit,
    validation) rows of all classes."""
    target = np.log1p(table["likes"].to_numpy())
    classes = table["popularity_class"].to_numpy()
    is_test = (table["split"] == "test").to_numpy()
    print(f"  {'model':10s} {'train rows':>10s} {'rounds':>6s} {'validation':>10s} {'test':>6s} {'median':>7s}")
    bundles, sampled = {}, []
    for k, name in MODELS:
        in_class = np.ones(len(table), dtype=bool) if k is None else classes == k
        fit, validation = (part[in_class[part]] for part in rows)
        test_rows = np.flatnonzero(is_test & in_class)
        model, rounds, sample = fit_regressor(trainer, training.TrainingSet(X, target, fit, validation))
        sampled += [name] if sample else []
        median = np.median(target[np.concatenate([fit, validation])])
        print(f"  {name:10s} {len(fit) + len(validation):10d} {rounds:6d} "
              f"{models.rmse(training.predict_rows(model.predict, X, validation), target[validation]):10.3f} "
              f"{models.rmse(training.predict_rows(model.predict, X, test_rows), target[test_rows]):6.3f} "
              f"{models.rmse(np.full(len(test_rows), median), target[test_rows]):7.3f}")
        bundles[name] = models.artifact(model, {**provenance, "popularity_class": k, "rounds": int(rounds),
                                                "train_rows": len(fit) + len(validation), "sketch_sample_rows": sample})
    if sampled:
        print(f"  bins cut from a seeded sample of {trainer.settings['sketch_rows']} fit rows: {', '.join(sampled)}")
    return bundles


def main(argv=None):
    args = training.training_parser(__doc__).parse_args(argv)
    paths = {name: common.GLOBAL_REGRESSOR if k is None else common.REGRESSOR.format(k=k) for k, name in MODELS}
    files.check_writable([*paths.values(), common.COMBINER])
    started = time.perf_counter()

    # 1. The classifier of 03b, whose seed, features and XGBoost settings these models follow; the
    #    training columns, both embeddings (the classifier checked against them), the validation
    #    slice's keys and the slice itself.
    classifier = models.load_classifier({})
    seed, features_option = training.follow_classifier(args.seed, args.features, argv, classifier["meta"])
    table, inputs, provenance, kept = training.read_training_inputs(tables.check_classed(), features_option,
                                                                    ["combined", "content"], keep_keys)
    training.check_features(args.features, argv, provenance["features"], classifier["meta"])
    models.check_provenance(common.CLASSIFIER, classifier["meta"], provenance)
    text_form = classifier["meta"]["text_form"]  # the form 03b chose: the text reads as its model does
    inputs = text.text_form_inputs(inputs, provenance["features"], text_form, classifier["text"])
    X = inputs["combined"]
    fit_rows, validation_rows = training.training_split(table, seed, provenance["validation"])
    training.check_same_slice(classifier["meta"], validation_rows)
    settings = training.followed_settings(classifier["meta"], {
        "n_estimators": args.n_estimators, "learning_rate": args.learning_rate, "max_depth": args.max_depth,
        "sketch_above": args.sketch_above, "sketch_rows": args.sketch_rows})
    run_id = uuid.uuid4().hex[:12]  # ties the four regressors and the combiner of this run together
    provenance = {**provenance, "settings": settings, "n_features": X.width, "target": "log1p(likes)",
                  "run_id": run_id, "text_form": text_form}
    print(f"text form: {text_form} (03b's choice)")

    # 2. The four regressors, here or on the cluster.
    device = training.xgboost_device()
    print(f"training on {device}{' on the cluster' if args.cluster else ''}; log1p(likes) RMSE, "
          "each beside its own training median:")
    with cluster.cluster(args.cluster) as client:
        on_cluster = cluster.cluster_record(args.cluster, client)
        bundles = train_regressors(training.Trainer(settings, device, client), X, table, (fit_rows, validation_rows),
                                   {**provenance, **on_cluster})

    # 3. The calibration, the learned routing and the chance that one draft beats another, fitted
    #    on the validation slice that none of the models was fitted on.
    trained = models.Trained(classifier, [bundles[name] for name in common.CLASS_NAMES], bundles["global"])
    validation_inputs = inputs["content"].block(validation_rows), X.block(validation_rows)
    outputs = models.predict(trained, *validation_inputs)
    keyed, keys = validation_keys(kept, validation_rows)
    drafted = drafts_history(inputs, validation_rows, keyed, provenance["features"], text_form)
    as_drafts = outputs if drafted is None else models.predict(trained, *(drafted[kind].block(
        np.arange(len(validation_rows))) for kind in ("content", "combined")))
    combiner = fit_routing(outputs, table.iloc[validation_rows], keys, as_drafts, seed)
    combiner.update({"classifier_sha256": common.file_sha256(common.CLASSIFIER), **provenance, **on_cluster,
                     "reference": contrast.typical_row(*validation_inputs)})
    print_routing(combiner, len(validation_rows))

    # 4. The model files, the combiner last: it names the run they belong to.
    for name, path in paths.items():
        models.save_artifact(path, bundles[name])
    files.save_json(common.COMBINER, combiner)
    print(f"wrote {', '.join(paths.values())}, {common.COMBINER} in {common.seconds_since(started)}")


if __name__ == "__main__":
    common.run(main)
