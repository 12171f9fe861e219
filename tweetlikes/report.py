"""What 05 reports when the likes of the predicted rows are known: every routing beside simple
alternatives (the global median, per-account and per-company medians, the global regressor
alone, oracle routing), each scored by figures that mean something on skewed counts and by
within-account pairwise accuracy (tweetlikes.pairs); how often the likes ranges held
(tweetlikes.intervals) and how well the chance of one draft beating another held; the
classifier's figures; how well the class probabilities are calibrated, before and after; what
moved the predictions; and the plots.
"""
from typing import NamedTuple

import numpy as np
import pandas as pd

import common
from tweetlikes import calibration, features, files, intervals, models, pairs

METRICS_JSON = "metrics.json"
SCATTER_PNG = "predicted_vs_actual.png"
CONFUSION_PNG = "confusion_matrix.png"
CALIBRATION_PNG = "calibration.png"
EXPLANATION_PNG = "explanations.png"
# One run's report: written, or removed, together.
REPORT_FILES = (METRICS_JSON, SCATTER_PNG, CONFUSION_PNG, CALIBRATION_PNG, EXPLANATION_PNG)


class Scored(NamedTuple):
    """The rows whose likes are known, with what the models said of them."""
    tweets: pd.DataFrame
    actual: np.ndarray      # their likes
    outputs: models.ModelOutputs
    by_routing: dict        # log1p(likes) by each of models.ROUTINGS
    explanation: dict       # per explanation group, the contributions of the rows or a sample of them (models.explain)
    served: intervals.Served  # their ranges


def regression_metrics(predicted_log, actual_likes, true_class, viral_log_threshold):
    """Figures that mean something on skewed counts: errors of log1p(likes), rank correlation,
    raw RMSE for reference, the log MAE within each true class, and how well the prediction
    finds the viral tweets (precision and recall of predicting above the viral threshold)."""
    from scipy.stats import spearmanr

    actual_log = np.log1p(actual_likes)
    error = predicted_log - actual_log
    # A constant prediction has no ranking at all: call its correlation 0. Likes all the same leave no
    # order to match: no figure (None), where scipy would warn and answer NaN.
    spearman = None if np.ptp(actual_log) == 0 else 0.0 if np.ptp(predicted_log) == 0 else \
        float(spearmanr(predicted_log, actual_log).statistic)
    predicted_viral, viral = predicted_log > viral_log_threshold, true_class == 2
    return {
        "log_rmse": models.rmse(predicted_log, actual_log),
        "log_mae": float(np.mean(np.abs(error))),
        "spearman": spearman,
        "raw_rmse": models.rmse(np.expm1(predicted_log), actual_likes),
        "log_mae_by_class": {name: float(np.mean(np.abs(error[true_class == k])))
                             if (true_class == k).any() else None
                             for k, name in enumerate(common.CLASS_NAMES)},
        "viral_precision": float(np.mean(viral[predicted_viral])) if predicted_viral.any() else None,
        "viral_recall": float(np.mean(predicted_viral[viral])) if viral.any() else None,
    }


def classifier_metrics(true_class, predicted_class, majority_class):
    from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

    precision, recall, _, support = precision_recall_fscore_support(
        true_class, predicted_class, labels=common.CLASS_LABELS, zero_division=0)
    return {
        "macro_f1": float(f1_score(true_class, predicted_class, labels=common.CLASS_LABELS, average="macro",
                                   zero_division=0)),
        "majority_baseline_macro_f1": float(f1_score(true_class, np.full(len(true_class), majority_class),
                                                     labels=common.CLASS_LABELS, average="macro", zero_division=0)),
        "accuracy": float(np.mean(true_class == predicted_class)),
        "per_class": {name: {"precision": float(precision[k]), "recall": float(recall[k]), "support": int(support[k])}
                      for k, name in enumerate(common.CLASS_NAMES)},
        "confusion_matrix": confusion_matrix(true_class, predicted_class, labels=common.CLASS_LABELS).tolist(),
    }


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def save_plots(actual_likes, predicted_likes, confusion, routing):
    """The scatter of predicted against actual likes, and the confusion matrix, as PNGs."""
    plt = _pyplot()

    figure, axes = plt.subplots(figsize=(5.5, 5))
    axes.scatter(actual_likes + 1, predicted_likes + 1, s=6, alpha=0.4)
    top = max(actual_likes.max(), predicted_likes.max()) + 1
    axes.plot([1, top], [1, top], color="grey", linewidth=1, label="perfect")
    axes.set(xscale="log", yscale="log", xlabel="actual likes + 1", ylabel="predicted likes + 1",
             title=f"Test tweets: predicted vs actual ({routing} routing)")
    axes.legend()
    figure.tight_layout()
    files.atomic_write(SCATTER_PNG, lambda tmp: figure.savefig(tmp, format="png", dpi=120))
    plt.close(figure)

    figure, axes = plt.subplots(figsize=(4.8, 4.2))
    confusion = np.asarray(confusion)
    axes.imshow(confusion, cmap="Blues")
    for (i, j), count in np.ndenumerate(confusion):
        axes.text(j, i, str(count), ha="center", va="center",
                  color="white" if count > confusion.max() / 2 else "black")
    axes.set(xticks=common.CLASS_LABELS, yticks=common.CLASS_LABELS, xticklabels=common.CLASS_NAMES,
             yticklabels=common.CLASS_NAMES, xlabel="predicted class", ylabel="true class",
             title="Classifier confusion matrix")
    figure.tight_layout()
    files.atomic_write(CONFUSION_PNG, lambda tmp: figure.savefig(tmp, format="png", dpi=120))
    plt.close(figure)


def evaluate(scored, train, stats, info, routing, combiner):
    """Side-by-side figures on the rows whose likes are known (`scored`: a Scored), printed;
    returns the metrics dict. `train` holds the training rows' likes and class."""
    tweets, actual, outputs, by_routing, explanation, served = scored
    true_class = common.assign_classes(actual, info["thresholds"])
    methods = method_predictions(scored, true_class, train, stats, info)
    viral_log = float(np.log1p(info["thresholds"][1]))
    scores = {name: regression_metrics(predicted, actual, true_class, viral_log) for name, predicted in methods.items()}
    keys, within = pairs.pair_keys(tweets)
    pairwise = {"within": within, "accuracy": {}, "same_kind": {"accuracy": {}}}
    kind_keys = pairs.same_kind_keys(tweets, keys)
    for name, predicted in methods.items():
        pairwise["accuracy"][name], pairwise["pairs"] = pairs.pairwise_accuracy(keys, actual, predicted)
        pairwise["same_kind"]["accuracy"][name], pairwise["same_kind"]["pairs"] = \
            pairs.pairwise_accuracy(kind_keys, actual, predicted)
    train_counts = [info["class_counts"][name]["train"] for name in common.CLASS_NAMES]
    majority = int(np.argmax(train_counts))
    classification = classifier_metrics(true_class, outputs.predicted_class, majority)
    typical, mean = np.expm1(by_routing[routing]), np.exp(by_routing[routing]) * combiner["smearing"][routing] - 1
    likes_scale = {"actual_total": float(actual.sum()),
                   **{name: {"raw_rmse": float(np.sqrt(np.mean((values - actual) ** 2))), "total": float(values.sum())}
                      for name, values in (("predicted_likes", typical), ("expected_likes", mean))}}
    calibrated = {"method": combiner["calibration"]["method"],
                  "before": calibration.class_figures(outputs.uncalibrated, true_class),
                  "after": calibration.class_figures(outputs.probabilities, true_class)}
    explained = {group: float(np.mean(np.abs(values))) for group, values in explanation.items() if group != "base"}
    ranges = intervals.figures(actual, served, outputs.predicted_class, tweets)
    chance = pairs.chance_figures(keys, actual, by_routing[routing], combiner["pair_chance"][routing], seed=0)

    print_regression(scores, pairwise, len(tweets))
    same_kind = pairwise["same_kind"]
    print(f"pairwise among the {same_kind['pairs']} pairs of one {within} with the same media and reply status "
          f"(what comparing wordings asks): {routing} routing "
          + ("n/a" if same_kind["accuracy"][f"two-stage, {routing} routing"] is None else
             f"{same_kind['accuracy'][f'two-stage, {routing} routing']:.3f}")
          + f", all pairs {pairwise['accuracy'][f'two-stage, {routing} routing'] or float('nan'):.3f}")
    print(f"\nraw counts ({routing} routing): predicted_likes RMSE {likes_scale['predicted_likes']['raw_rmse']:.1f}, "
          f"total {likes_scale['predicted_likes']['total']:.0f}; expected_likes RMSE "
          f"{likes_scale['expected_likes']['raw_rmse']:.1f}, total {likes_scale['expected_likes']['total']:.0f}; "
          f"actual total {likes_scale['actual_total']:.0f}")
    print("\n".join(intervals.describe(ranges)))
    print(describe_chance(chance, within))
    print_classifier(classification, calibrated, majority)
    sampled = len(explanation["base"])
    print(f"why ({routing} routing), mean |contribution| in log1p(likes)"
          + (f" over a seeded sample of {sampled} rows" if sampled < len(tweets) else "") + ": "
          + ", ".join(f"{group} {value:.3f}" for group, value in sorted(explained.items(), key=lambda kv: -kv[1])))
    return {"regression": scores, "pairwise": pairwise, "likes_scale": likes_scale, "interval": ranges,
            "pair_chance": chance, "classifier": classification, "calibration": calibrated,
            "explanation": {"base_log1p": float(np.mean(explanation["base"])), "mean_abs_log1p": explained,
                            "rows": sampled}}


def method_predictions(scored, true_class, train, stats, info):
    """log1p(likes) of the scored rows by every method the report compares."""
    tweets, _, outputs, by_routing, _, _ = scored
    # What knowing the class alone is worth: each row gets its true class's training median. Set
    # beside oracle routing, it shows how much of that ceiling is the specialists' skill.
    class_median = np.log1p(train["likes"]).groupby(train["popularity_class"]).median()
    global_median = info["history_prior"]["median_log_likes"]
    return {
        "global median": np.full(len(tweets), global_median),
        "per-account median": features.key_stats(stats, "user", tweets["username"])["median_log_likes"]
        .fillna(global_median).to_numpy(),
        "per-company median": features.key_stats(stats, "company", tweets["company"])["median_log_likes"]
        .fillna(global_median).to_numpy(),
        "single regressor": outputs.global_log,
        **{f"two-stage, {name} routing": by_routing[name] for name in models.ROUTINGS},
        "two-stage, oracle routing": outputs.specialist_log[np.arange(len(tweets)), true_class],
        "oracle class median": class_median.reindex(true_class).to_numpy(),
    }


def print_regression(scores, pairwise, rows):
    print(f"\n{rows} rows with known likes; errors of log1p(likes), lower is better; pairwise: the share of "
          f"{pairwise['pairs']} same-{pairwise['within']} pairs put in the right order, higher is better:")
    print(f"{'':27s} {'RMSE':>6s} {'MAE':>6s} {'Spearman':>8s} {'pairwise':>8s} {'raw RMSE':>9s}  viral P/R   "
          "MAE by class: " + " ".join(f"{name:>7s}" for name in common.CLASS_NAMES))
    for name, score in scores.items():
        by_class = " ".join("    n/a" if v is None else f"{v:7.3f}" for v in score["log_mae_by_class"].values())
        viral = " ".join("  n/a" if v is None else f"{v:.2f}"
                         for v in (score["viral_precision"], score["viral_recall"]))
        accuracy = pairwise["accuracy"][name]
        spearman = "n/a" if score["spearman"] is None else f"{score['spearman']:.3f}"
        print(f"{name:27s} {score['log_rmse']:6.3f} {score['log_mae']:6.3f} {spearman:>8s} "
              f"{'n/a' if accuracy is None else f'{accuracy:.3f}':>8s} {score['raw_rmse']:9.1f}  {viral:9s}  "
              f"{'':12s}{by_class}")
    if all(score["spearman"] is None for score in scores.values()):
        print("Spearman n/a: every scored row has the same likes, so there is no order to match")


def describe_chance(chance, within):
    """The report's line on the chance of one draft beating another, held against the pairs."""
    if chance["ece"] is None:
        return f"chance of beating another draft: none to check ({chance['why']})"
    bands = chance["bands"]
    return (f"chance of beating another draft, over {chance['pairs']} same-{within} pairs: stated "
            + " / ".join(f"{band['stated']:.0%}" for band in bands) + ", the pick right "
            + " / ".join(f"{band['right']:.0%}" for band in bands) + f" (ECE {chance['ece']:.3f})")


def print_classifier(classification, calibrated, majority):
    print(f"classifier: macro-F1 {classification['macro_f1']:.3f} (always '{common.CLASS_NAMES[majority]}': "
          f"{classification['majority_baseline_macro_f1']:.3f}), accuracy {classification['accuracy']:.3f}")
    for name, figures in classification["per_class"].items():
        print(f"  {name:8s} precision {figures['precision']:.3f}  recall {figures['recall']:.3f}  "
              f"({figures['support']} rows)")
    print("  confusion (rows true, columns predicted):", classification["confusion_matrix"])
    print(f"class probabilities, before -> after calibration ({calibrated['method']}):")
    for name in common.CLASS_NAMES:
        before, after = calibrated["before"][name], calibrated["after"][name]
        print(f"  {name:8s} mean {before['mean_probability']:.3f} -> {after['mean_probability']:.3f} "
              f"(share {after['share']:.3f}), ECE {before['ece']:.3f} -> {after['ece']:.3f}, "
              f"Brier {before['brier']:.4f} -> {after['brier']:.4f}, log loss {before['log_loss']:.4f} -> "
              f"{after['log_loss']:.4f}")


def save_diagnostics(calibrated, explained):
    """The reliability diagram of the class probabilities before and after calibration, and each
    explanation group's mean absolute contribution, as PNGs."""
    plt = _pyplot()
    figure, axes = plt.subplots(1, len(common.CLASS_NAMES), figsize=(11, 3.8), sharey=True)
    for axis, name in zip(axes, common.CLASS_NAMES):
        axis.plot([0, 1], [0, 1], color="grey", linewidth=1)
        for stage, style in (("before", "o--"), ("after", "s-")):
            curve = np.asarray(calibrated[stage][name]["reliability"]).reshape(-1, 3)
            axis.plot(curve[:, 0], curve[:, 1], style, markersize=4,
                      label=f"{stage}: ECE {calibrated[stage][name]['ece']:.3f}")
        axis.set(title=name, xlabel="predicted probability", xlim=(0, 1), ylim=(0, 1))
        axis.legend(fontsize=8)
    axes[0].set_ylabel("observed share")
    figure.suptitle(f"Test tweets: reliability of the class probabilities ({calibrated['method']} calibration)")
    figure.tight_layout()
    files.atomic_write(CALIBRATION_PNG, lambda tmp: figure.savefig(tmp, format="png", dpi=120))
    plt.close(figure)

    figure, axis = plt.subplots(figsize=(6, 3.6))
    ranked = sorted(explained.items(), key=lambda kv: kv[1])
    axis.barh([group for group, _ in ranked], [value for _, value in ranked])
    axis.set(xlabel="mean |contribution| to log1p(likes)", title="Test tweets: what moves the predictions")
    figure.tight_layout()
    files.atomic_write(EXPLANATION_PNG, lambda tmp: figure.savefig(tmp, format="png", dpi=120))
    plt.close(figure)
