"""Why one tweet is predicted more likes than another, in the things a writer changes: the gap
between the two predictions split over groups of model inputs by exact Shapley values.

A coalition of groups is valued by the *full* prediction as 05 serves it (classifier,
specialists, calibration, routing) of a row that takes those groups' inputs from the tweet and
the rest from the reference. So the parts add up exactly to the gap in log1p(likes), a group
whose inputs are equal in both rows gets exactly 0 (it changes no coalition's row), and every
interaction between groups is shared out evenly rather than hidden in one of them.

The groups (PLAYERS) follow what a writer decides separately: the words, the length, links,
mentions, hashtags, media, the posting time, a reply, and who posts (the account's and the
company's history). With at most 10 groups that differ, a tweet costs at most 2^10 rows to
predict, in one batch.
"""
import warnings
from math import factorial

import numpy as np

from tweetlikes import features

# Each player and the model input columns it owns; the text's own columns (embeddings or the
# text form's) belong to `words`.
PLAYERS = {
    "words": ("wording_question", "wording_call_to_action", "wording_numbers", "wording_first_person",
              "wording_second_person", "wording_all_caps", "surface_emoji", "surface_questions",
              "surface_exclamations"),
    "length": ("surface_chars", "surface_words", "wording_relative_length"),
    "links": ("surface_links",),
    "mentions": ("surface_mentions", "surface_starts_with_mention"),
    "hashtags": ("surface_hashtags",),
    "media": tuple(features.SIGNAL_FEATURES["media"]),
    "time": tuple(features.SIGNAL_FEATURES["time"]),
    "reply": tuple(features.SIGNAL_FEATURES["reply"]),
    "account": tuple(column for column in features.HISTORY_FEATURES if column.startswith("user_")),
    "company": tuple(column for column in features.HISTORY_FEATURES if column.startswith("company_")),
}
PLAYER_OF_COLUMN = {column: player for player, columns in PLAYERS.items() for column in columns}


def players_of(columns):
    """The player of each model input column (features.input_columns)."""
    return np.array(["words" if features.is_text_column(column) else PLAYER_OF_COLUMN[column] for column in columns],
                    dtype=object)


def typical_row(X_classifier, X_regressor):
    """The reference a lone tweet is explained against: every model input at its median over some
    training rows (missing values left out), for the classifier's input and the regressors'."""
    def median(X):
        with warnings.catch_warnings():  # an all-missing column stays missing, quietly
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmedian(np.asarray(X, dtype=float), axis=0) if len(X) else np.full(X.shape[1], np.nan)
    return {"classifier": median(X_classifier).tolist(), "regressor": median(X_regressor).tolist()}


def shapley(predict, tweets, references, players):
    """Exact Shapley values of each player for each row of `tweets` against the same row of
    `references`: {player: (rows,) log1p(likes)}, summing to predict(tweets) - predict(references).

    `tweets` and `references` are pairs (classifier input, regressor input) of 2-D arrays with
    one row per tweet; `players` names each column's player; `predict(X_classifier,
    X_regressor)` is the served log1p(likes)."""
    players = np.asarray(players, dtype=object)
    names = list(dict.fromkeys(players))
    values = {name: np.zeros(len(tweets[0])) for name in names}
    for row in range(len(tweets[0])):
        own = [np.asarray(X[row], dtype=float) for X in tweets]
        base = [np.asarray(X[row], dtype=float) for X in references]
        differ = [name for name in names if not all(_same(a[players == name], b[players == name])
                                                     for a, b in zip(own, base))]
        if not differ:
            continue
        masks = _coalitions(len(differ))  # (2^d, d): which differing players come from the tweet
        takes = masks[:, [differ.index(p) if p in differ else 0 for p in players]] & np.isin(players, differ)
        coalition_value = predict(*(np.where(takes, a, b) for a, b in zip(own, base)))
        for k, name in enumerate(differ):
            values[name][row] = _player_value(coalition_value, masks, k)
    return values


def _same(a, b):
    return np.array_equal(a, b, equal_nan=True)


def _coalitions(players):
    """Every subset of `players` players as a boolean row, subset s at row s (bit k: player k)."""
    return (np.arange(2 ** players)[:, None] >> np.arange(players)) & 1 == 1


def _player_value(coalition_value, masks, k):
    """Player k's Shapley value from every coalition's value: the weighted mean of what adding it
    to each coalition without it changes."""
    n = masks.shape[1]
    without = np.flatnonzero(~masks[:, k])
    sizes = masks[without].sum(axis=1)
    weights = np.array([factorial(s) * factorial(n - s - 1) / factorial(n) for s in sizes])
    return float(weights @ (coalition_value[without + 2 ** k] - coalition_value[without]))


def likes_factors(parts, predicted_log, reference_log):
    """The parts (log1p gaps) as factors on likes that multiply from the reference's likes to the
    prediction's exactly: each part's share of the log gap, applied to the log of the likes
    ratio. Where either count is under one like, factors on likes + 1 (the log1p parts)."""
    predicted, reference = np.expm1(predicted_log), np.expm1(reference_log)
    total = predicted_log - reference_log
    if min(predicted, reference) < 1 or abs(total) < 1e-12:
        return {name: float(np.exp(part)) for name, part in parts.items()}
    scale = np.log(predicted / reference) / total
    return {name: float(np.exp(part * scale)) for name, part in parts.items()}

