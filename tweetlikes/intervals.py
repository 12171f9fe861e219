"""Likes ranges: an interval meant to hold a tweet's actual likes with a stated probability,
by split conformal prediction on the validation slice (training rows no model was fitted on).

04 scores each validation row by its residual in log1p(likes), actual minus predicted, per
routing, and keeps, for every level of LEVELS, the two order statistics of those residuals that
bound a new row's residual with that probability in finite samples (Mondrian, per group): the
k-th smallest with k = floor((n + 1)(1 - level) / 2) below and k = ceil((n + 1)(1 + level) / 2)
above, so each tail holds at most (1 - level) / 2 of exchangeable new rows. This is MAPIE's
split conformal regression with its asymmetric residual score, per group, done here in a few
lines: MAPIE wraps a scikit-learn estimator and pickles it, where these are plain numbers in
routing_combiner.json beside the combiner; the residuals are asymmetric in log1p(likes) (a count
has a floor, a viral tweet no ceiling), so each tail gets its own quantile.

The groups make the ranges adaptive: the predicted class crossed with whether the account and
the company were seen in training (a new account's error is larger than a familiar one's);
a group with fewer than MIN_GROUP_ROWS validation rows falls back to the seen/unseen group
alone, then to all rows. "Seen" is read from the row's own history features (a count above
zero), for validation rows as for new ones: 01 computes the validation rows' history out of fold,
mimicking the split (with --split account or company every validation row's account or company
is unseen, as every test row's is), so a validation row is judged by what the models knew of
it, the way a test row is.

05 reads the level (--interval) and gives each row the range of its finest group that holds
one: likes_low and likes_high, the whole counts inside the interval (a count is whole, so
"inside" means the same in likes as in log1p(likes)); and the report's coverage and widths.
"""
from typing import NamedTuple

import numpy as np

import common

VERSION = 1  # of the record in routing_combiner.json; 05 refuses another
LEVELS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)  # the --interval levels 04 keeps the offsets of
DEFAULT_LEVEL = 0.8
# A group's own range needs this many validation rows: the coverage a split-conformal interval
# reaches, given its n calibration rows, varies with a spread of sqrt(level(1 - level) / (n + 2)),
# 0.04 at 80% for 100 rows. Fewer, and the group's rows join a coarser group's.
MIN_GROUP_ROWS = 100
SEEN_COLUMNS = ("user_log_count", "company_log_count")  # history features: log1p(training tweets of the key)
ALL = "all rows"


def seen(tweets):
    """(account seen, company seen) per row: a training count above zero in its history features."""
    return tuple(tweets[column].to_numpy(dtype=float) > 0 for column in SEEN_COLUMNS)


def group_keys(predicted_class, account_seen, company_seen):
    """Each row's group at each level of the fallback, finest first: predicted class and seen-ness,
    seen-ness, all rows."""
    state = np.char.add(np.where(account_seen, "account seen", "account unseen"),
                        np.where(company_seen, ", company seen", ", company unseen"))
    names = np.asarray(common.CLASS_NAMES)[np.asarray(predicted_class, dtype=int)]
    return [np.char.add(np.char.add(names, ", "), state), state, np.full(len(state), ALL)]


def offsets(residuals, level):
    """The conformal offsets [below, above] of sorted or unsorted `residuals` for `level`, or None
    when there are too few for it (the (n + 1)-adjusted ranks fall outside 1..n)."""
    residuals = np.sort(np.asarray(residuals, dtype=float))
    n = len(residuals)
    low = int(np.floor((n + 1) * (1 - level) / 2 + 1e-9))  # tolerance: (1 - 0.8) / 2 * 10 is 0.999... in floats
    high = int(np.ceil((n + 1) * (1 + level) / 2 - 1e-9))
    if low < 1 or high > n:
        return None
    return [float(residuals[low - 1]), float(residuals[high - 1])]


def fit(residuals_by_routing, predicted_class, account_seen, company_seen):
    """The record 04 stores: per routing, per group with MIN_GROUP_ROWS rows or more (all rows
    always), its rows and its offsets at each of LEVELS."""
    keys = group_keys(predicted_class, account_seen, company_seen)
    routings = {}
    for routing, residuals in residuals_by_routing.items():
        groups = {}
        for level_keys in keys:
            for group in np.unique(level_keys):
                mine = residuals[level_keys == group]
                if len(mine) >= MIN_GROUP_ROWS or group == ALL:
                    groups[str(group)] = {"rows": int(len(mine)), "offsets": [offsets(mine, level) for level in LEVELS]}
        routings[routing] = groups
    return {"version": VERSION, "levels": list(LEVELS), "min_group_rows": MIN_GROUP_ROWS, "routings": routings}


def valid(record, routings):
    """Whether `record` is one 05 can use: this version and levels, every routing's groups with a
    whole number of rows and, per level, no offsets or two finite ones in order."""
    def usable_offsets(pair):
        return pair is None or (isinstance(pair, list) and len(pair) == 2 and all(map(common.is_number, pair))
                                and pair[0] <= pair[1])

    def usable_group(group):
        return (isinstance(group, dict) and isinstance(group.get("rows"), int) and group["rows"] > 0
                and isinstance(group.get("offsets"), list) and len(group["offsets"]) == len(LEVELS)
                and all(map(usable_offsets, group["offsets"])))
    return (isinstance(record, dict) and record.get("version") == VERSION and record.get("levels") == list(LEVELS)
            and isinstance(record.get("routings"), dict)
            and all(isinstance(record["routings"].get(routing), dict) and ALL in record["routings"][routing]
                    and all(map(usable_group, record["routings"][routing].values())) for routing in routings))


class Served(NamedTuple):
    """What fills the predictions' like columns: the routing, its smearing factor, the level and
    each row's range in whole likes (NaN where there is none)."""
    routing: str
    smearing: float
    level: float
    likes_low: np.ndarray
    likes_high: np.ndarray

    def rows(self, which):
        return self._replace(likes_low=self.likes_low[which], likes_high=self.likes_high[which])


def log_bounds(record, routing, level, predicted_log, keys):
    """Each row's interval in log1p(likes) from its finest group holding offsets at `level`
    (NaN where even all rows have too few for it), and the group it came from."""
    groups, which = record["routings"][routing], LEVELS.index(level)
    low, high = np.full(len(predicted_log), np.nan), np.full(len(predicted_log), np.nan)
    used = np.full(len(predicted_log), "", dtype=object)
    for level_keys in keys:
        for group in np.unique(level_keys[used == ""]):
            found = groups.get(str(group), {"offsets": [None] * len(LEVELS)})["offsets"][which]
            if found is not None:
                rows = (level_keys == group) & (used == "")
                low[rows], high[rows] = predicted_log[rows] + found[0], predicted_log[rows] + found[1]
                used[rows] = group
    return low, high, used


def whole_likes(low_log, high_log):
    """The whole counts inside [expm1(low), expm1(high)]: the lowest and the highest (NaN where
    there is no interval); never below 0, and never an empty range."""
    with np.errstate(invalid="ignore"):
        low = np.clip(np.ceil(np.expm1(low_log) - 1e-6), 0, None)
        return low, np.fmax(np.floor(np.expm1(high_log) + 1e-6), low)


def served(combiner, routing, level, by_routing, outputs, tweets):
    """Served for these rows (their log1p(likes) by routing, their models.ModelOutputs, the
    tweets with their history features): their ranges at `level` (05 --interval) by 04's record."""
    keys = group_keys(outputs.predicted_class, *seen(tweets))
    low, high = whole_likes(*log_bounds(combiner["intervals"], routing, level, by_routing[routing], keys)[:2])
    return Served(routing, combiner["smearing"][routing], level, low, high)


def range_text(low, high):
    """A range as a writer reads it."""
    return "none" if np.isnan(low) else f"{low:.0f} to {high:.0f}"


# ------------------------------------------------------------------------------------ figures

def coverage(actual, low, high):
    """{rows, coverage, median_width} of the rows with a range: the share whose actual likes lie
    inside [low, high], and the median of (high + 1) / (low + 1), the range as a factor on likes
    (+1: a range may start at 0 likes)."""
    has = ~np.isnan(low)
    if not has.any():
        return {"rows": 0, "coverage": None, "median_width": None}
    a, lo, hi = actual[has], low[has], high[has]
    return {"rows": int(has.sum()), "coverage": float(np.mean((lo <= a) & (a <= hi))),
            "median_width": float(np.median((hi + 1) / (lo + 1)))}


def figures(actual, served_rows, predicted_class, tweets):
    """The ranges' coverage on rows whose likes are known: overall, by predicted class, and for
    seen and unseen accounts and companies."""
    actual = np.asarray(actual, dtype=float)
    low, high = served_rows.likes_low, served_rows.likes_high
    account_seen, company_seen = seen(tweets)

    def split(mask_by_name):
        return {name: coverage(actual[mask], low[mask], high[mask]) for name, mask in mask_by_name.items()}
    return {"level": served_rows.level, "routing": served_rows.routing, **coverage(actual, low, high),
            "rows_without_range": int(np.isnan(low).sum()),
            "by_predicted_class": split({name: predicted_class == k for k, name in enumerate(common.CLASS_NAMES)}),
            "by_account": split({"seen": account_seen, "unseen": ~account_seen}),
            "by_company": split({"seen": company_seen, "unseen": ~company_seen})}


def describe(figures_):
    """The report's lines on the ranges."""
    def cell(f):
        return "n/a" if f["coverage"] is None else f"{f['coverage']:.0%} inside, width x{f['median_width']:.1f}"
    lines = [f"likes ranges ({figures_['level']:.0%}, {figures_['routing']} routing), on {figures_['rows']} rows: "
             f"{cell(figures_)} (median of (high+1)/(low+1))"
             + (f"; {figures_['rows_without_range']} rows without a range" if figures_["rows_without_range"] else "")]
    for part in ("by_predicted_class", "by_account", "by_company"):
        lines.append(f"  {part.replace('_', ' ')}: " + "; ".join(
            f"{name} {cell(f)} ({f['rows']} rows)" for name, f in figures_[part].items() if f["rows"]))
    return lines
