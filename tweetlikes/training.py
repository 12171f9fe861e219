"""How 03b and 04 train: their shared command line (the XGBoost settings are 03b's, at its top),
the inputs they read (the classed CSV's training columns and the memory-mapped embeddings), the
validation slice, and XGBoost trained from a QuantileDMatrix built a block of rows at a time (or on a Dask cluster), so
the feature matrix never sits whole in memory.
"""
import contextlib
import ctypes
import hashlib
import shlex
import signal
import sys
import threading
from typing import NamedTuple

import numpy as np
import pandas as pd

import common
from tweetlikes import cluster, features, splits, tables

# Of the training rows, for 03b's choice of text form, early stopping, 04's combiner, calibration and chance
# model; never test rows. With --split time, the latest training rows: each choice is judged as the test asks.
# Here, not at 03b's top with the XGBoost settings: 04 must cut the very slice 03b cut, and 03b records only the
# slice's fingerprint (check_same_slice), not the fraction it was cut with.
VALIDATION_FRACTION = 0.1


class Trainer(NamedTuple):
    """How a stage trains: its XGBoost settings (03b's, recorded in every model file), the device
    and, for a Dask cluster, its client."""
    settings: dict
    device: str
    client: object = None


class TrainingSet(NamedTuple):
    """What one model is fitted on: the model input, the label of every row, the rows it is fitted
    on, the validation rows it is early-stopped on and, optionally, each row's weight."""
    inputs: object
    label: np.ndarray
    fit_rows: np.ndarray
    validation_rows: object = ()
    weight: object = None


def training_parser(doc, defaults=None):
    """03b's and 04's command line (`doc`: the script's docstring). 03b gives its `defaults` (its
    settings: it owns the XGBoost tuning); 04 gives none, and each of these settings it is not
    given is the classifier's (follow_classifier, followed_settings), so one tuning serves all
    five models."""
    owner = defaults is not None
    defaults = defaults or {}
    follows = "" if owner else " (default: the classifier's, as 03b was run)"
    parser = common.argument_parser(doc)
    parser.add_argument("--features", default=features.DEFAULT_FEATURES if owner else None,
                        help=f"model inputs: {', '.join(features.FEATURE_PRESETS)} (seed: embeddings only, the "
                             "original design; history: embeddings + history) or a comma list of "
                             f"{', '.join(features.FEATURE_GROUPS)}; '-GROUP' drops one, e.g. all,-text" + follows)
    parser.add_argument("--n-estimators", type=common.positive_int, default=defaults.get("n_estimators"),
                        help="most boosting rounds" + follows)
    parser.add_argument("--learning-rate", type=common.positive_float, default=defaults.get("learning_rate"),
                        help=follows.strip() or None)
    parser.add_argument("--max-depth", type=common.positive_int, default=defaults.get("max_depth"),
                        help=follows.strip() or None)
    parser.add_argument("--seed", type=common.non_negative_int, default=common.SEED if owner else None,
                        help="seed for the validation slice, the sketch's sample and XGBoost" + follows)
    parser.add_argument("--sketch-above", type=common.non_negative_int, default=defaults.get("sketch_above"),
                        metavar="ROWS",
                        help="a model with more fit rows than this cuts its bins from a seeded sample of "
                             "--sketch-rows of them, not from all (the sketch of all takes memory that grows with "
                             "them); 0 samples whenever a model has more than --sketch-rows (for measuring)" + follows)
    parser.add_argument("--sketch-rows", type=common.positive_int, default=defaults.get("sketch_rows"), metavar="N",
                        help="the size of that sample" + follows)
    cluster.add_cluster_argument(parser)
    return parser


# glibc's malloc gives a request of 128 KiB or more a mapping of its own, returned when freed, but
# raises that threshold (up to 32 MB) whenever such a block is freed, and with it the free memory
# it keeps. After the first feature block has come and gone, XGBoost's quantile sketch (hundreds
# of MB of per-column buffers, grown and freed by its threads) would come from the heap, and what
# it frees would stay in the process, raising the peak memory (docs/speed-and-memory.md). Training
# pins both thresholds at glibc's default.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt's options, from glibc's malloc.h
MALLOC_THRESHOLD = 128 * 1024


def pin_malloc_thresholds():
    """Keep glibc's malloc from holding on to the memory XGBoost frees; elsewhere, nothing."""
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None) if sys.platform.startswith("linux") else None
    if mallopt:  # musl has one that does nothing
        for option in (M_TRIM_THRESHOLD, M_MMAP_THRESHOLD):
            mallopt(option, MALLOC_THRESHOLD)


# What 03b and 04 read of the classed CSV beside the features.
TABLE_COLUMNS = ["split", "popularity_class", "likes", "tweet_group"]


def read_training_inputs(info, features_option, embedding_kinds, keep=None):
    """Everything 03b and 04 train from, in one pass over the classed CSV (tables.classed_pass,
    whose texts are only hashed as they stream past): the table's TABLE_COLUMNS (its split a
    category), the model input for each embedding kind (as ModelInput: never built whole, with
    the feature columns as float32), the provenance every artifact records (with the feature
    groups of `features_option`, 03b's --features) and keep(chunk) of every chunk (None without
    `keep`), for what else a stage reads of the rows; `info` is 01's record (tables.check_classed)."""
    pin_malloc_thresholds()
    groups, left_out = features.parse_features(features_option, info.get("signal_groups", ()))
    columns = [*TABLE_COLUMNS, *features.feature_columns(features.FEATURE_GROUPS)]
    fingerprints, chunks = tables.classed_pass(embedding_kinds if "text" in groups else [], columns,
                                               lambda chunk: (chunk[columns], keep and keep(chunk)))
    table = pd.concat([part for part, _ in chunks], ignore_index=True)
    inputs, provenance = {}, {"classed_csv_sha256": info["classed_csv_sha256"],
                              "history_stats_sha256": info["history_stats_sha256"],
                              "thresholds": info["thresholds"], "split": info["split"], "rows": info["rows"],
                              "validation": info.get("validation", "random"),
                              "features": list(groups)}
    matrix = features.feature_matrix(table, groups)  # one copy for every kind: 34 MB at 300K rows
    for kind in embedding_kinds:
        embeddings = None
        if "text" in groups:
            embeddings, meta = tables.load_embeddings(kind, fingerprints[kind], len(table))
            provenance.update({f"embeddings_{kind}_sha256": meta["npy_sha256"], "embedding_model": meta["model"],
                               "embedding_mode": meta["mode"], "embedding_precision": meta["precision"],
                               "embedding_dim": meta["dim"]})
        inputs[kind] = features.ModelInput(embeddings, matrix)
    embedded = f" and {' and '.join(embedding_kinds)} embeddings" if "text" in groups else ""
    print(f"read {common.CLASSED_CSV}{embedded}: "
          f"{len(table)} rows, features {'+'.join(groups)} ({inputs[embedding_kinds[0]].width} columns)"
          + (f"; no column for {', '.join(left_out)} in the input" if left_out else ""))
    # The model input holds the feature columns now: the table keeps the rest (53 MB less at 300K rows).
    return table[TABLE_COLUMNS].astype({"split": "category"}), inputs, provenance, [kept for _, kept in chunks]


def follow_classifier(seed, features_option, argv, meta):
    """04's seed and --features as they must be, 03b's (its classifier's record, `meta`): the seed
    cuts the validation slice (04 fits its combiner and calibration there, on rows the classifier
    never trained on), and the features are what 05 gives every model. Left out (None), they are
    taken from the record; a seed given and different is refused with the command that agrees.
    Features are compared once read (check_features)."""
    recorded = meta["settings"]["seed"]
    if seed is not None and seed != recorded:
        _disagree(argv, "--seed", seed, recorded)
    return recorded, features_option or _features_option(meta)


def followed_settings(meta, given):
    """04's XGBoost settings: the classifier's (`meta`), each replaced by the one `given` on 04's
    command line (None: not given), in the classifier's order."""
    return {**meta["settings"], **{name: value for name, value in given.items() if value is not None}}


def check_features(features_given, argv, groups, meta):
    """Refuse 04's --features (`features_given`) when they read otherwise than the classifier's
    (follow_classifier)."""
    if list(groups) != list(meta["features"]):
        _disagree(argv, "--features", features_given, _features_option(meta))


def _features_option(meta):
    """The --features 03b was given, as its classifier records it (its groups, from an older 03b)."""
    return meta.get("features_option") or ",".join(meta["features"])


def _disagree(argv, option, given, recorded):
    """Refuse `option` `given`, naming the classifier's and the command line that agrees with it."""
    argv = list(sys.argv[1:] if argv is None else argv)
    kept = [item for number, item in enumerate(argv) if not (item == option or item.startswith(option + "=") or
                                                              (number and argv[number - 1] == option))]
    command = shlex.join(["python", "04_train_regressors.py", *kept, option, str(recorded)])
    common.fail(f"{option} {given}, but 03b trained {common.CLASSIFIER} with {option} {recorded}, and 04's models are "
                f"combined with it; rerun as: {command} (or retrain 03b with {option} {given} first)")


def sketch_sample(rows, settings):
    """The size of the sample that a model of `rows` fit rows cuts its bins from, or None: from all
    of them (up to settings["sketch_above"] rows, or up to the sample's size)."""
    return settings["sketch_rows"] if rows > max(settings["sketch_above"], settings["sketch_rows"]) else None


def new_xgboost(task, settings, device, rounds=None):
    """The one XGBoost setup of 03b and 04. `rounds` fixes the number of trees and turns off
    early stopping (for slices too small to stop on)."""
    from xgboost import XGBClassifier, XGBRegressor

    options = dict(n_estimators=rounds or settings["n_estimators"], learning_rate=settings["learning_rate"],
                   max_depth=settings["max_depth"], subsample=settings["subsample"],
                   colsample_bytree=settings["colsample_bytree"], tree_method="hist", device=device,
                   random_state=settings["seed"],
                   early_stopping_rounds=None if rounds else settings["early_stopping_rounds"])
    if task == "classifier":
        return XGBClassifier(objective="multi:softprob", eval_metric="mlogloss", **options)
    return XGBRegressor(**options)


def train_xgboost(trainer, task, data, rounds=None):
    """new_xgboost(...).fit(X[fit_rows], label[fit_rows], sample_weight=weight[fit_rows],
    eval_set=[validation rows], sample_weight_eval_set=...) for the TrainingSet `data`, without
    ever building X: XGBoost's QuantileDMatrix is built from its inputs a block of rows at a time
    (here, or on a Dask cluster's workers with the trainer's client), the same bins as the sklearn
    call on this machine. Returns the same sklearn model, so the artifacts and 05 cannot tell how
    it was trained."""
    import xgboost

    settings, client = trainer.settings, trainer.client
    model = new_xgboost(task, settings, trainer.device, rounds)
    params = model.get_xgb_params()
    if task == "classifier":
        params["num_class"] = len(common.CLASS_NAMES)  # what XGBClassifier.fit adds
    fit_rows = data.fit_rows
    sample, sketch_rows = sketch_sample(len(fit_rows), settings), None  # None: all fit rows
    if sample:
        sketch_rows = fit_rows[np.sort(np.random.default_rng(settings["seed"]).choice(len(fit_rows), sample,
                                                                                      replace=False))]
    train, evals = quantile_matrices(data, client, sketch_rows)
    options = dict(evals=evals, early_stopping_rounds=model.early_stopping_rounds, verbose_eval=False)
    if client is None:
        booster = xgboost.train(params, train, model.get_num_boosting_rounds(), **options)
    else:
        import xgboost.dask

        booster = xgboost.dask.train(client, params, train, model.get_num_boosting_rounds(), **options)["booster"]
    model.load_model(bytearray(booster.save_raw("ubj")))  # sets what fit would: classes, best iteration
    return model


def quantile_matrices(data, client=None, sketch_rows=None):
    """The training QuantileDMatrix of the TrainingSet `data`'s fit rows and, for early stopping,
    its validation one (binned with the training one's cuts), named as XGBClassifier.fit names
    it. The bins are sketched from `sketch_rows`, some of the fit rows, when given, else from all
    of them."""
    import xgboost

    inputs, label, weight = data.inputs, data.label, data.weight

    def parts(rows):
        return {"label": label[rows], "weight": None if weight is None else weight[rows]}

    if client is not None:
        return binned_matrices(lambda rows, ref: cluster.cluster_matrix(client, inputs, rows, parts, ref=ref),
                               data.fit_rows, data.validation_rows, sketch_rows)

    class RowBlocks(xgboost.DataIter):
        """`rows` of `inputs`, a block at a time: XGBoost reads them twice (sketch, then bins).
        Once Ctrl-C is pressed (`interrupted`), it ends the data, so XGBoost unwinds."""

        def __init__(self, rows, interrupted):
            self.blocks, self.next_block, self.interrupted = inputs.blocks(rows), 0, interrupted
            super().__init__()

        def next(self, input_data):
            try:
                if self.interrupted or self.next_block == len(self.blocks):
                    return False
                rows = self.blocks[self.next_block]
                input_data(data=inputs.block(rows), **parts(rows))
                self.next_block += 1
                return True
            except KeyboardInterrupt:  # raised here, it would be lost in the ctypes callback
                self.interrupted.append(True)
                return False

        def reset(self):
            self.next_block = 0

    with interrupt_after_native_calls() as interrupted:
        return binned_matrices(lambda rows, ref: xgboost.QuantileDMatrix(RowBlocks(rows, interrupted), ref=ref),
                               data.fit_rows, data.validation_rows, sketch_rows)


def binned_matrices(matrix, fit_rows, validation_rows, sketch_rows):
    """quantile_matrices' two matrices, each made by matrix(rows, ref): the training one with the
    cuts of a matrix of `sketch_rows` (dropped once used) or, without them, its own."""
    cuts = None if sketch_rows is None else matrix(sketch_rows, None)
    train = matrix(fit_rows, cuts)
    del cuts
    return train, [(matrix(validation_rows, train), "validation_0")] if len(validation_rows) else []


@contextlib.contextmanager
def interrupt_after_native_calls():
    """Hold Ctrl-C back while XGBoost's native code calls back into Python (the DataIter): a
    KeyboardInterrupt raised inside a ctypes callback is printed as "Exception ignored" and
    leaves XGBoost mid-build (an XGBoostError, or a native abort). A press is noted in the list
    yielded, which the callbacks check to end the data early; once the native calls are done
    (an error they raise because the data ended early included), KeyboardInterrupt is raised."""
    interrupted = []
    hold = threading.current_thread() is threading.main_thread() and \
        signal.getsignal(signal.SIGINT) is signal.default_int_handler
    if hold:
        signal.signal(signal.SIGINT, lambda *_: interrupted.append(True))
    try:
        yield interrupted
    except Exception:
        if not interrupted:
            raise
    finally:
        if hold:
            signal.signal(signal.SIGINT, signal.default_int_handler)
    if interrupted:
        raise KeyboardInterrupt


def predict_rows(predict, inputs, rows):
    """predict(X) for `rows` of `inputs`, a block at a time (predictions are row by row)."""
    blocks = [predict(inputs.block(block)) for block in inputs.blocks(rows)]
    return np.concatenate(blocks) if blocks else predict(inputs.block(rows))


def xgboost_device():
    """XGBoost trains on CUDA only if its wheel was built with CUDA (the `xgboost` package,
    not `xgboost-cpu`) and a GPU is present."""
    import xgboost

    if not xgboost.build_info().get("USE_CUDA"):
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def training_split(table, seed, validation="random"):
    """(fit rows, validation rows): the training rows, less a slice for 03b's choice of text form,
    early stopping and 04's combiner, the same in 03b and 04. Copies of a tweet (`tweet_group`)
    fall on one side together. With 01's `--validation latest` (under --split time, whose
    `tweet_group` follows posting time), the slice is the latest training tweets; else a seeded
    draw. A class whose training rows all fell into the slice gets them back, so every class is
    seen in fitting (tiny inputs)."""
    train_rows = np.flatnonzero((table["split"] == "train").to_numpy())
    _, group = np.unique(table["tweet_group"].to_numpy()[train_rows], return_inverse=True)  # in order, from 0
    order = np.arange(group.max() + 1)[::-1] if validation == "latest" else \
        np.random.default_rng(seed).permutation(group.max() + 1)
    in_validation = splits.take_groups(group, order, max(1, round(len(train_rows) * VALIDATION_FRACTION)))
    classes = table["popularity_class"].to_numpy()[train_rows]
    for k in range(len(common.CLASS_NAMES)):
        if not (classes[~in_validation] == k).any():
            in_validation[classes == k] = False
    return train_rows[~in_validation], train_rows[in_validation]


def slice_fingerprint(validation_rows):
    """A short hash of the validation slice: 03b records it, 04 checks that its slice is the same."""
    return hashlib.sha256(np.asarray(validation_rows, dtype=np.int64).tobytes()).hexdigest()[:16]


def check_same_slice(classifier_meta, validation_rows):
    """04 fits its combiner, calibration and chance model on rows the classifier was not fitted on,
    and reads the text scores 03b made for its slice: its slice must be 03b's."""
    if classifier_meta.get("validation_slice") != slice_fingerprint(validation_rows):
        common.fail(f"04's validation slice is not the one {common.CLASSIFIER} was trained beside: run 04 with 03b's "
                    f"--seed ({classifier_meta['settings']['seed']}), or rerun 03b_train_classifier_improved.py")
