"""Stage 1: split the tweets into train/test and label each with its popularity class.

Reads  data/train_data.csv (or --input: CSV or .xlsx with content, username, likes and a
       `company` or `inferred company` column)
Writes train_data_with_classes.csv  the input rows plus `split` (train/test), `popularity_class`
                                    (0 common, 1 popular, 2 viral) and six history features
       class_thresholds.json        thresholds, class counts, split settings, fingerprints
       history_stats.csv            per-account and per-company like statistics (training rows)

Class thresholds are the 75th and 95th percentiles of likes over the *training* rows only, so
nothing about the test rows leaks into the labels the models learn from. The history features
(how many training tweets an account or company has, and the mean/median of their log1p(likes))
are computed out-of-fold for training rows, so no row ever sees its own likes; test rows see the
statistics of all training rows. The folds mimic the split: with --split account, a training row
never sees its own account's history either, just as a test account is never seen.

Usage: python 01_create_classes.py [--input PATH] [--split random|account|company]
"""
import argparse
import time

import numpy as np
import pandas as pd

import common

TEST_FRACTION = 0.2
HISTORY_FOLDS = 5
MIN_ROWS = 40  # below this the three classes and the validation slice get too thin to train on
MIN_TRAIN_ROWS_PER_CLASS = 2
# Whole groups move in one piece, so a group split lands near --test-fraction, not on it; beyond
# 5 percentage points (a quarter of the default 20%) the split is not what was asked for.
SPLIT_TOLERANCE = 0.05
DERIVED_COLUMNS = ("split", "popularity_class", *common.HISTORY_FEATURES)


def assign_split(table, how, test_fraction, seed):
    """'train'/'test' per row. random: rows; account/company: whole groups go to one side."""
    rng = np.random.default_rng(seed)
    if how == "random":
        is_test = np.zeros(len(table), dtype=bool)
        is_test[rng.permutation(len(table))[: round(len(table) * test_fraction)]] = True
    else:
        column = "username" if how == "account" else "company"
        groups = table[column]
        if (groups == "").all():
            common.fail(f"--split {how} needs a non-empty `{column}` column; this input has none "
                        f"(try --split {'company' if how == 'account' else 'random'})")
        sizes = groups.value_counts().sort_index()
        shuffled = sizes.iloc[rng.permutation(len(sizes))]
        # Take whole groups into test until it holds the wanted share of rows.
        test_groups = shuffled.index[(shuffled.cumsum() - shuffled) < len(table) * test_fraction]
        is_test = groups.isin(test_groups).to_numpy()
        if abs(is_test.mean() - test_fraction) > SPLIT_TOLERANCE:
            common.fail(f"--split {how} holds out {is_test.mean():.0%} of rows, not the {test_fraction:.0%} "
                        f"asked (±{SPLIT_TOLERANCE:.0%} points): each {column} goes whole to one side, and "
                        f"the largest, {sizes.idxmax()!r}, holds {sizes.max() / len(table):.0%} of rows; "
                        "try another --seed or --test-fraction, or --split random")
    if is_test.all() or not is_test.any():
        common.fail(f"--split {how} left one side empty ({is_test.sum()} test rows of {len(table)})")
    return np.where(is_test, "test", "train")


def class_thresholds(train_likes):
    """The likes values at the class quantiles, from training rows only."""
    low, high = np.quantile(np.asarray(train_likes, dtype=float), common.QUANTILES)
    if not low < high:
        common.fail(f"likes are too uniform to form three classes: the {common.QUANTILES[0]:.0%} and "
                    f"{common.QUANTILES[1]:.0%} percentiles of the training likes are both {low:g}")
    return float(low), float(high)


def group_stats(table):
    """Per-account and per-company count, sum and median of log1p(likes); empty keys are skipped."""
    log_likes = np.log1p(table["likes"].to_numpy(dtype=float))
    parts = []
    for kind, column in (("user", "username"), ("company", "company")):
        frame = pd.DataFrame({"key": table[column].to_numpy(), "log_likes": log_likes})
        frame = frame[frame["key"] != ""]
        stats = frame.groupby("key", sort=True)["log_likes"].agg(["count", "sum", "median"])
        parts.append(pd.DataFrame({"kind": kind, "key": stats.index, "count": stats["count"].to_numpy(),
                                   "sum_log_likes": stats["sum"].to_numpy(),
                                   "median_log_likes": stats["median"].to_numpy()}))
    return pd.concat(parts, ignore_index=True)


def prior_of(likes):
    log_likes = np.log1p(np.asarray(likes, dtype=float))
    return {"mean_log_likes": float(log_likes.mean()), "median_log_likes": float(np.median(log_likes))}


def history_features(table, is_train, split_how, seed):
    """Out-of-fold history for training rows, full-training history for test rows."""
    train = table[is_train]
    features = pd.DataFrame(index=table.index, columns=common.HISTORY_FEATURES, dtype=float)
    features[~is_train] = common.lookup_history(table[~is_train], group_stats(train), prior_of(train["likes"]))
    rng = np.random.default_rng(seed)
    if split_how == "random":
        fold = rng.integers(0, HISTORY_FOLDS, size=len(train))
    else:  # whole accounts (or companies) per fold, as in the split itself
        column = "username" if split_how == "account" else "company"
        keys = train[column].to_numpy()
        unique_keys = np.unique(keys)
        fold = pd.Series(rng.integers(0, HISTORY_FOLDS, size=len(unique_keys)), index=unique_keys)[keys].to_numpy()
    for k in range(HISTORY_FOLDS):
        held_out, rest = train[fold == k], train[fold != k]
        if len(held_out):
            features.loc[held_out.index] = common.lookup_history(held_out, group_stats(rest),
                                                                 prior_of(rest["likes"])).to_numpy()
    return features


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--input", default=str(common.DEFAULT_INPUT), help="CSV or .xlsx of tweets")
    parser.add_argument("--split", choices=("random", "account", "company"), default="random",
                        help="random rows, or whole accounts / companies held out for testing")
    parser.add_argument("--test-fraction", type=float, default=TEST_FRACTION, help="share of rows held out")
    parser.add_argument("--seed", type=common.non_negative_int, default=common.SEED,
                        help="seed for the split and history folds")
    args = parser.parse_args(argv)
    if not 0 < args.test_fraction < 1:
        common.fail(f"--test-fraction must be between 0 and 1, got {args.test_fraction}")
    common.check_writable([common.CLASSED_CSV, common.THRESHOLDS_JSON, common.HISTORY_CSV])
    started = time.perf_counter()

    table, _ = common.read_table(args.input)
    clash = [column for column in DERIVED_COLUMNS if column in table.columns]
    if clash:
        common.fail(f"{args.input} already has column(s) {clash}, which this stage derives and would "
                    "overwrite; rename them")
    likes = common.clean_likes(table["likes"])
    refused = int(likes.isna().sum())
    print(f"read {args.input}: {len(table)} rows, columns {list(table.columns)}")
    if refused:
        # One bad cell in a large export should not sink the run, but it must not pass unseen.
        print(f"  refused {refused} rows whose likes are unusable: {common.bad_likes(table['likes'])}")
    table = table.assign(likes=likes)[likes.notna()].reset_index(drop=True)
    if len(table) < MIN_ROWS:
        common.fail(f"only {len(table)} usable rows; at least {MIN_ROWS} are needed to train three classes")

    split = assign_split(table, args.split, args.test_fraction, args.seed)
    is_train = split == "train"
    thresholds = class_thresholds(table["likes"][is_train])
    classes = common.assign_classes(table["likes"], thresholds)
    train_counts = np.bincount(classes[is_train], minlength=3)
    if train_counts.min() < MIN_TRAIN_ROWS_PER_CLASS:
        common.fail(f"training rows per class {train_counts.tolist()}: each class needs at least "
                    f"{MIN_TRAIN_ROWS_PER_CLASS}; use more rows")

    table["split"] = split
    table["popularity_class"] = classes
    table[common.HISTORY_FEATURES] = history_features(table, is_train, args.split, args.seed).to_numpy()
    train = table[is_train]
    common.save_csv(common.HISTORY_CSV, group_stats(train))
    whole_counts = (table["likes"] % 1 == 0).all()
    common.save_csv(common.CLASSED_CSV, table.assign(likes=table["likes"].astype("int64")) if whole_counts else table)

    counts = {name: {"train": int(((classes == k) & is_train).sum()), "test": int(((classes == k) & ~is_train).sum())}
              for k, name in enumerate(common.CLASS_NAMES)}
    common.save_json(common.THRESHOLDS_JSON, {
        "input": str(args.input), "rows": len(table), "refused_rows": refused,
        "split": args.split, "test_fraction": args.test_fraction, "seed": args.seed,
        "quantiles": list(common.QUANTILES), "thresholds": list(thresholds),
        "class_counts": counts, "history_prior": prior_of(train["likes"]),
        "classed_csv_sha256": common.file_sha256(common.CLASSED_CSV),
    })

    print(f"split ({args.split}): {is_train.sum()} train, {(~is_train).sum()} test")
    print(f"thresholds from training likes: common <= {thresholds[0]:g} < popular <= {thresholds[1]:g} < viral")
    for name, count in counts.items():
        print(f"  {name:8s} train {count['train']:7d}  test {count['test']:7d}")
    print(f"wrote {common.CLASSED_CSV}, {common.THRESHOLDS_JSON}, {common.HISTORY_CSV} "
          f"in {common.seconds_since(started)}")


if __name__ == "__main__":
    common.run(main)
