"""Tweets compared two at a time, as a writer compares drafts: among pairs of tweets by the same
account (by the same company where the input has no usernames, as Reddit's subreddits), how often
a prediction puts the one that got more likes first (within-account pairwise accuracy), and the
chance that one draft beats another given their predicted gap.

Within an account the history features are the same for both tweets, so only the text, media,
time and surface signals can tell them apart: this is the figure that says whether comparing
drafts means anything.
"""
import numpy as np

import common
from tweetlikes import features

MAX_GROUP_ROWS = 5_000  # a bigger account is scored on a seeded sample of this many of its rows
MAX_CHANCE_PAIRS = 200_000  # pairs the chance of beating a draft is fitted on, at most (sampled)
COMPARE_ROWS = 1_024  # rows compared against a whole group at a time (1024 x 5000 x 8 B = 40 MB)
CHANCE_BANDS = (0.5, 0.6, 0.7, 0.8, 0.9)  # lower edges of the report's bands of the pick's stated chance


def pair_keys(table):
    """The key that makes two rows a pair, and its name: the account, or the company where no
    row has a username. Rows with an empty key pair with nothing."""
    if (table["username"] != "").any():
        return table["username"].to_numpy(dtype=object), "account"
    return table["company"].to_numpy(dtype=object), "company"


def same_kind_keys(table, keys):
    """`keys` narrowed to tweets of one kind: the same media (photo, video, GIF or none) and reply
    status, so that only the wording and the time can tell a pair apart, as between drafts that
    differ in their words."""
    kind_columns = [*features.SIGNAL_FEATURES["media"], *features.SIGNAL_FEATURES["reply"]]
    kinds = table.reindex(columns=kind_columns).to_numpy(dtype=float)
    kind = np.where(np.isnan(kinds), "?", (kinds > 0).astype(int).astype(str))
    return np.array([key and f"{key}|{''.join(row)}" for key, row in zip(keys, kind)], dtype=object)


def groups(keys, seed=0):
    """Row indices of each key with two rows or more (a seeded sample of MAX_GROUP_ROWS of the
    bigger ones), empty keys left out."""
    keys = np.asarray(keys, dtype=object)
    rng = np.random.default_rng(seed)
    codes, inverse = np.unique(keys, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    bounds = np.flatnonzero(np.diff(inverse[order])) + 1
    for rows in np.split(order, bounds):
        if len(rows) < 2 or codes[inverse[rows[0]]] == "":
            continue
        yield np.sort(rng.choice(rows, MAX_GROUP_ROWS, replace=False)) if len(rows) > MAX_GROUP_ROWS else rows


def pairwise_accuracy(keys, actual, predicted):
    """(share of same-key pairs whose likes differ that `predicted` orders as they came, a tie in
    `predicted` counting half; the number of such pairs). None for the share when there are none."""
    correct = total = 0.0
    actual, predicted = np.asarray(actual, dtype=float), np.asarray(predicted, dtype=float)
    for rows in groups(keys):
        a, p = actual[rows], predicted[rows]
        for start in range(0, len(rows), COMPARE_ROWS):
            true_order = np.sign(a[start:start + COMPARE_ROWS, None] - a[None, :])
            guessed = np.sign(p[start:start + COMPARE_ROWS, None] - p[None, :])
            differ = true_order != 0
            total += differ.sum()
            correct += ((guessed == true_order) & differ).sum() + 0.5 * ((guessed == 0) & differ).sum()
    pairs = int(total // 2)  # every pair was seen both ways round
    return (float(correct / total) if total else None), pairs


def chance_pairs(keys, actual, predicted, seed):
    """(predicted gap, 1 if the first got more likes) for same-key pairs whose likes differ, both
    ways round, at most MAX_CHANCE_PAIRS of them (sampled, seeded)."""
    gaps, outcomes = [], []
    for rows in groups(keys, seed):
        first, second = np.triu_indices(len(rows), k=1)
        i, j = rows[first], rows[second]
        differ = actual[i] != actual[j]
        gaps.append(predicted[i][differ] - predicted[j][differ])
        outcomes.append(actual[i][differ] > actual[j][differ])
    gap, won = (np.concatenate(gaps), np.concatenate(outcomes)) if gaps else (np.zeros(0), np.zeros(0, bool))
    if len(gap) > MAX_CHANCE_PAIRS // 2:
        keep = np.random.default_rng(seed).choice(len(gap), MAX_CHANCE_PAIRS // 2, replace=False)
        gap, won = gap[keep], won[keep]
    return np.concatenate([gap, -gap]), np.concatenate([won, ~won])


def fit_chance(keys, actual, predicted, seed):
    """The chance model, P(a gets more likes than b) = 1 / (1 + exp(-slope * (predicted a -
    predicted b))), fitted by maximum likelihood on same-key pairs (no intercept: the chance of a
    tie in prediction is an even one). A slope of 0 (every chance 50%) when there are no pairs."""
    from sklearn.linear_model import LogisticRegression

    gap, won = chance_pairs(np.asarray(keys, dtype=object), np.asarray(actual, dtype=float),
                            np.asarray(predicted, dtype=float), seed)
    if len(gap) == 0 or won.all() or not won.any():
        return {"slope": 0.0, "pairs": int(len(gap) // 2)}
    model = LogisticRegression(fit_intercept=False, C=1e6).fit(gap[:, None], won)
    return {"slope": float(model.coef_[0, 0]), "pairs": int(len(gap) // 2)}


def valid_chance(entry):
    """Whether a stored chance model is one 05 can use: its pairs counted, and a positive slope or
    none with why (04 fits none without enough pairs, and keeps none that came out backwards)."""
    return (isinstance(entry, dict) and isinstance(entry.get("pairs"), int) and entry["pairs"] >= 0
            and ((entry.get("slope") is None and isinstance(entry.get("why"), str))
                 or (common.is_number(entry.get("slope")) and entry["slope"] > 0)))


def chance_figures(keys, actual, predicted, chance, seed):
    """How well the stated chance holds over same-key pairs whose likes differ (at most
    MAX_CHANCE_PAIRS / 2, sampled): each pair taken with the one predicted higher as the pick,
    so its stated chance is 50% or more; per band of CHANCE_BANDS the mean stated chance beside
    how often the pick got more likes, and the ECE, the pair-weighted mean gap between them."""
    gap, won = chance_pairs(np.asarray(keys, dtype=object), np.asarray(actual, dtype=float),
                            np.asarray(predicted, dtype=float), seed)
    gap, won = gap[: len(gap) // 2], won[: len(won) // 2]  # chance_pairs gives each pair both ways round
    if chance["slope"] is None or not len(gap):
        return {"ece": None, "pairs": int(len(gap)), "bands": [], "why": chance.get("why", "no pairs")}
    won = won ^ (gap < 0)  # the pick is the one predicted higher
    stated = chance_to_beat(chance, np.abs(gap))
    band = np.digitize(stated, CHANCE_BANDS[1:])
    bands = [{"from": low, "stated": float(stated[band == b].mean()), "right": float(won[band == b].mean()),
              "pairs": int((band == b).sum())} for b, low in enumerate(CHANCE_BANDS) if (band == b).any()]
    return {"ece": float(sum(b["pairs"] * abs(b["stated"] - b["right"]) for b in bands) / len(gap)),
            "pairs": int(len(gap)), "bands": bands}


def chance_to_beat(chance, gap):
    """P(a draft gets more likes than another) for its predicted log1p gap over the other."""
    return 0.5 * (1 + np.tanh(0.5 * chance["slope"] * np.asarray(gap, dtype=float)))  # the logistic, overflow-free
