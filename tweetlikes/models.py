"""Model bundles and what 05 does with them: the .joblib files of 03b and 04 (a booster in
XGBoost's own format beside its provenance, checked on loading), the predictions of the five
models on some rows (ModelOutputs), and the routings that turn them into one log1p(likes).
"""
import functools
import hashlib
from typing import NamedTuple

import numpy as np

import common
from tweetlikes import calibration, features, files, intervals, pairs


def load_artifact(path, expect):
    """Load one of our .joblib bundles and check its recorded provenance against `expect`.
    joblib runs code when loading: only ever load files this pipeline wrote."""
    import joblib

    common.require([path])
    try:
        bundle = joblib.load(path)
    except Exception as error:  # unpickling a damaged file fails in any of a dozen ways
        common.fail(f"{path} could not be loaded ({error!r}): it is damaged or "
                    f"was written by other library versions; rerun {common.maker(path)}")
    if not isinstance(bundle, dict) or not isinstance(bundle.get("model"), bytes) or \
            not isinstance(bundle.get("meta"), dict) or "booster_sha256" not in bundle["meta"]:
        common.fail(f"{path} is not an artifact of this version of the pipeline; rerun {common.maker(path)}")
    if bundle["meta"].get("booster_sha256") != hashlib.sha256(bundle["model"]).hexdigest():
        common.fail(f"{path} is damaged: its booster is not the one it recorded; rerun {common.maker(path)}")
    check_provenance(path, bundle["meta"], expect)
    return bundle


def check_provenance(path, meta, expect):
    for key, wanted in expect.items():
        found = meta.get(key)
        if found != wanted:
            common.fail(f"{path} is stale: it was made with {key}={_short(found)}, but the current files have "
                        f"{_short(wanted)}; rerun {common.maker(path)}")


def _short(value):
    return value[:12] + "…" if isinstance(value, str) and len(value) > 16 else value


def artifact(model, meta, text=None):
    """A trained XGBoost model as our .joblib files hold it: its booster in XGBoost's own binary
    format (UBJSON), cut to the rounds early stopping kept, beside its provenance. Plain bytes, not
    the pickled sklearn object: loading a bundle imports neither xgboost nor scikit-learn (05
    embeds a draft before it needs them, which keeps its peak memory down), and XGBoost reads
    its own format across versions, where its pickles are tied to one. The classifier's also
    holds `text`, the text model (tweetlikes.text.fit) every stage after it reads the text
    through."""
    booster = model.get_booster()
    try:
        booster = booster[: booster.best_iteration + 1]  # what the sklearn model's predict uses
    except AttributeError:  # trained for a fixed number of rounds: all of them
        pass
    raw = bytes(booster.save_raw("ubj"))
    # Checked on loading: a damaged booster would otherwise surface deep inside XGBoost.
    return {"model": raw, "meta": {**meta, "booster_sha256": hashlib.sha256(raw).hexdigest()}, "text": text}


def load_classifier(expect):
    """The classifier bundle of 03b, checked against `expect` and to be a classifier (a regressor
    copied over it would otherwise pass as one)."""
    classifier = load_artifact(common.CLASSIFIER, expect)
    common.check_fields(common.CLASSIFIER, classifier["meta"], {
        "class_weight": lambda v: isinstance(v, list) and len(v) == len(common.CLASS_NAMES)
                                  and all(map(common.is_number, v)),
        "text_form": lambda v: v in features.TEXT_FORMS,
        "features": lambda v: isinstance(v, list) and all(isinstance(group, str) for group in v),
        "settings": lambda v: isinstance(v, dict) and isinstance(v.get("seed"), int)})
    return classifier


class Trained(NamedTuple):
    """The five models of one run: 03b's classifier, 04's three specialists and its global regressor."""
    classifier: dict
    regressors: list
    global_regressor: dict

    @property
    def meta(self):
        """The classifier's record (features, text form, embeddings), which every other model follows."""
        return self.classifier["meta"]


class Run(NamedTuple):
    """What 05 loads of the pipeline's files: 01's record, the history statistics, the five models
    and 04's combiner."""
    info: dict
    stats: object  # pandas.DataFrame: history_stats.csv
    trained: Trained
    combiner: dict


def load_run(info, stats):
    """The Run of 01's record `info` and the history `stats`: the classifier, regressors and
    combiner, checked against the current classed CSV and history stats, and against each other:
    one run of 04, made after the current classifier."""
    expect = {"classed_csv_sha256": info["classed_csv_sha256"], "history_stats_sha256": info["history_stats_sha256"]}
    classifier = load_classifier(expect)
    common.require([common.COMBINER])
    combiner = common.read_json(common.COMBINER)
    common.check_fields(common.COMBINER, combiner, {
        "coefficients": lambda v: (isinstance(v, list) and len(v) == len(COMBINER_INPUTS)
                                   and all(map(common.is_number, v))),
        "intercept": common.is_number,
        # mean(exp(residual)): positive, or expected_likes would come out negative or NaN
        "smearing": lambda v: isinstance(v, dict) and all(common.is_number(v.get(r)) and v[r] > 0 for r in ROUTINGS),
        "calibration": calibration.valid,
        "pair_chance": lambda v: isinstance(v, dict) and v.get("within") in ("account", "company")
                                 and all(pairs.valid_chance(v.get(r)) for r in ROUTINGS),
        "intervals": lambda v: intervals.valid(v, ROUTINGS),
        "fitted_rows": lambda v: isinstance(v, int) and v >= 0,
        "reference": lambda v: isinstance(v, dict) and all(
            isinstance(v.get(kind), list) and all(x is None or common.is_number(x) for x in v[kind])
            for kind in ("classifier", "regressor"))})
    regressor_expect = {**expect, "features": classifier["meta"]["features"], "run_id": combiner.get("run_id"),
                        "text_form": classifier["meta"]["text_form"],
                        **{key: classifier["meta"].get(key) for key in ("embedding_model", "embedding_mode")}}
    # Each file must hold its own class's specialist: swapped files would load and mispredict.
    regressors = [load_artifact(common.REGRESSOR.format(k=k), {**regressor_expect, "popularity_class": k})
                  for k in common.CLASS_LABELS]
    global_regressor = load_artifact(common.GLOBAL_REGRESSOR, {**regressor_expect, "popularity_class": None})
    check_provenance(common.COMBINER, combiner, {"classifier_sha256": common.file_sha256(common.CLASSIFIER)})
    # Fitted on the classifier's validation slice only if cut with its seed (04 made before it followed 03b's).
    check_provenance(common.COMBINER, {"seed": combiner.get("settings", {}).get("seed")},
                     {"seed": classifier["meta"]["settings"]["seed"]})
    return Run(info, stats, Trained(classifier, regressors, global_regressor), combiner)


def load_booster(bundle):
    return _booster(bundle["model"])


# A run's five models, parsed once per process: a cluster worker predicts many blocks with them.
@functools.lru_cache(maxsize=len(common.CLASS_NAMES) + 2)
def _booster(raw):
    import xgboost

    try:
        return xgboost.Booster(model_file=bytearray(raw))
    except xgboost.core.XGBoostError as error:  # intact bytes this xgboost cannot read
        common.fail(f"a model file's booster could not be read by xgboost {xgboost.__version__} "
                    f"({str(error).splitlines()[0][:120]}); rerun {common.maker(common.CLASSIFIER)} and "
                    f"{common.maker(common.GLOBAL_REGRESSOR)}")


def columns_read(bundles, names):
    """Those of `names` (the model input columns, in order) that any of these boosters splits on:
    an input none of them reads changes no prediction."""
    used = set()
    for bundle in bundles:
        used |= {int(feature[1:]) for feature in load_booster(bundle).get_score(importance_type="weight")}
    return {name for i, name in enumerate(names) if i in used}


def save_artifact(path, bundle):
    import joblib

    files.atomic_write(path, lambda tmp: joblib.dump(bundle, tmp))


# ------------------------------------------------------------------- predictions and routings

ROUTINGS = ("learned", "soft", "hard")
# The learned routing corrects the global regressor: its inputs are each specialist's difference
# from it, alone and weighted by its class probability, and the rare classes' probabilities. So
# a shift that moves every model alike moves the result alike (a time split shifts the level),
# and the ridge penalty shrinks towards the global regressor, the safe answer when the
# specialists add nothing.
COMBINER_INPUTS = [*[f"specialist_{name} - global" for name in common.CLASS_NAMES],
                   *[f"probability_{name} x (specialist_{name} - global)" for name in common.CLASS_NAMES],
                   *[f"probability_{name}" for name in common.CLASS_NAMES[1:]]]


class ModelOutputs(NamedTuple):
    """What the five trained models say about some rows, one entry per row."""
    probabilities: np.ndarray    # (rows, 3): the classifier's, calibrated (see calibrated())
    predicted_class: np.ndarray  # its class-weighted pick, as in the original design
    specialist_log: np.ndarray   # (rows, 3): each specialist's log1p(likes)
    global_log: np.ndarray       # the global regressor's log1p(likes)
    uncalibrated: np.ndarray     # (rows, 3): the classifier's with its class weights divided out

    def rows(self, which):
        """The outputs of some rows (an index or a boolean mask)."""
        return ModelOutputs(*(values[which] for values in self))

    @staticmethod
    def concatenate(blocks):
        return ModelOutputs(*(np.concatenate(values) for values in zip(*blocks)))


def predict(trained, X_classifier, X_regressor):
    """ModelOutputs of the Trained models on the rows of X_classifier and X_regressor. The
    classifier's class weights are divided out of its probabilities: they inflate rare classes on
    purpose, right for recall and wrong for a probability."""
    weighted = load_booster(trained.classifier).inplace_predict(X_classifier)
    probabilities = weighted / np.asarray(trained.meta["class_weight"])
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    return ModelOutputs(probabilities, weighted.argmax(axis=1),
                        np.column_stack([np.asarray(load_booster(r).inplace_predict(X_regressor), dtype=float)
                                         for r in trained.regressors]),
                        np.asarray(load_booster(trained.global_regressor).inplace_predict(X_regressor), dtype=float),
                        probabilities)


def calibrated(outputs, combiner):
    """The outputs with the calibration 04 fitted (and saved with the combiner) applied to the
    class probabilities: what the learned routing was fitted on, and what 05 reports."""
    return outputs._replace(probabilities=calibration.apply(combiner["calibration"], outputs.uncalibrated))


def combiner_inputs(outputs):
    """The learned routing's inputs, in COMBINER_INPUTS order."""
    p, gap = outputs.probabilities, outputs.specialist_log - outputs.global_log[:, None]
    return np.column_stack([gap, p * gap, p[:, 1:]])


def served_log_likes(trained, combiner, routing, X_classifier, X_regressor):
    """log1p(likes) of these model inputs as 05 serves it: the models' outputs, calibrated, then
    `routing`; `trained` is a Trained."""
    outputs = calibrated(predict(trained, np.asarray(X_classifier, dtype=np.float32),
                                 np.asarray(X_regressor, dtype=np.float32)), combiner)
    return routed_log_likes(outputs, combiner)[routing]


def likes(log_likes):
    """Typical likes from log1p(likes), as the predictions file shows them: never below 0, to 0.1."""
    return np.clip(np.expm1(log_likes), 0, None).round(1)


def routed_log_likes(outputs, combiner):
    """log1p(likes) by each of ROUTINGS: `hard` takes the classifier's pick's specialist (the
    original design), `soft` the probability-weighted mean of the specialists, `learned` the global
    regressor plus the correction 04 fitted on rows none of the models trained on."""
    s = outputs.specialist_log
    return {"hard": s[np.arange(len(s)), outputs.predicted_class],
            "soft": (outputs.probabilities * s).sum(axis=1),
            "learned": outputs.global_log + combiner_inputs(outputs) @ np.asarray(combiner["coefficients"])
            + combiner["intercept"]}


def rmse(predicted, actual):
    """The root mean squared error of `predicted` against `actual` (NaN for no rows): 03b's and
    04's on log1p(likes), the report's on log1p(likes) and on likes."""
    return float(np.sqrt(np.mean((predicted - actual) ** 2))) if len(actual) else float("nan")


# ------------------------------------------------------------------------------- explanations

def explain(global_regressor, X_regressor, column_groups, routed, outputs):
    """Why each row got its prediction, in log1p(likes): the global regressor's exact per-feature
    contributions (XGBoost's pred_contribs, over every round the served booster has) summed by
    explanation group, signed, per row (see features.explanation_groups); its bias as `base`; and
    the routing's correction of the global regressor (`routed` - global) as `routing`. Together
    they sum to `routed`, the predicted log1p(likes)."""
    import xgboost

    booster = load_booster(global_regressor)
    contributions = booster.predict(xgboost.DMatrix(X_regressor), pred_contribs=True,
                                    iteration_range=(0, booster.num_boosted_rounds())).astype(float)
    names = np.asarray(column_groups, dtype=object)
    explained = {"base": contributions[:, -1]}
    for group in dict.fromkeys(column_groups):
        explained[group] = contributions[:, :-1][:, names == group].sum(axis=1)
    explained["routing"] = np.asarray(routed, dtype=float) - outputs.global_log
    return explained
