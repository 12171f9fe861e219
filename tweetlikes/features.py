"""What the models read: the feature groups, the history features, the signals the Adobe
columns carry, and the model input built from them a block of rows at a time.

- Groups: `text` (the embeddings, in the form tweetlikes.text names), `history` (per-account and
  per-company likes on training rows), and the signal groups `surface`, `media`, `time`, `reply`
  and `wording` (choices a writer makes: length against the account's usual, a question, a call to
  action, numbers, first and second person, capitals), each on when its column is in the input.
  `--features` of 03b and 04 picks among them (parse_features).
- History: 01 computes it out of fold for training rows (see there); lookup_history gives new
  rows the statistics of all training rows, and the prior to unseen accounts.
- Signals: counted from the raw columns; a cell that can't be read is missing (NaN, which XGBoost
  routes down its own branch), never a crash, and counted.
- ModelInput: embeddings rows beside the table's feature columns, never built whole.
"""
import numpy as np
import pandas as pd

import common

# History features (see 01): per-account and per-company statistics of log1p(likes) on training
# rows, keyed by the kind of key and the column that holds it.
HISTORY_KEYS = (("user", "username"), ("company", "company"))
HISTORY_FEATURES = [f"{kind}_{stat}" for kind, _ in HISTORY_KEYS
                    for stat in ("log_count", "mean_log_likes", "median_log_likes")]

# Signals the Adobe columns carry besides the text, computed by 01 (and by 05 for new tweets).
# Each group is switched off when its column is missing; a malformed cell is missing (NaN, which
# XGBoost routes down its own branch), never a crash.
SIGNAL_FEATURES = {
    "surface": ["surface_chars", "surface_words", "surface_links", "surface_mentions", "surface_hashtags",
                "surface_emoji", "surface_questions", "surface_exclamations", "surface_starts_with_mention"],
    "media": ["media_photos", "media_videos", "media_gifs"],
    "time": ["time_hour", "time_weekday", "time_account_days"],
    "reply": ["reply_is_reply"],
    "wording": ["wording_relative_length", "wording_question", "wording_call_to_action", "wording_numbers",
                "wording_first_person", "wording_second_person", "wording_all_caps"],
}
SIGNAL_SOURCE = {"surface": "content", "media": "media", "time": "date", "reply": "is_reply", "wording": "content"}
# What rewording a tweet changes: the explanation groups read from its content alone.
CONTENT_GROUPS = ("text", *(group for group, source in SIGNAL_SOURCE.items() if source == "content"))

# Model inputs, by group: `text` is the embeddings (content ones for the classifier, which on
# combined ones learns account names that do not carry over to new accounts; content+company+
# username ones for the regressors), `history` the six history features, then the signals.
FEATURE_GROUPS = ("text", "history", *SIGNAL_FEATURES)

# The forms the text takes as model input (tweetlikes.text fits them; 03b picks one on the
# validation slice), each with the table columns it adds: `raw` is the embeddings themselves.
TEXT_FORMS = ("none", "score", "projection", "raw", "finetuned")  # a tie goes to the earlier: fewer columns
PROJECTION_DIMS = 16  # enough for the topics a few thousand tweets hold; 24x fewer columns than raw
TEXT_COLUMNS = {"none": [], "raw": [], "score": ["text_score"], "finetuned": ["text_finetuned"],
                "projection": [f"text_pc_{i + 1}" for i in range(PROJECTION_DIMS)]}
FEATURE_PRESETS = {"seed": ("text",), "history": ("text", "history"), "all": FEATURE_GROUPS}
DEFAULT_FEATURES = "all"


def parse_features(spec, available):
    """`--features` to a tuple of groups: a preset (seed, history, all) or a comma list of groups,
    where `-GROUP` drops one (`all,-text` is everything but the embeddings) and `-COLUMN` one
    signal column (`all,-wording_question`, kept in the tuple as such). Signal groups whose
    column the input lacked (`available`, from 01) are left out; returns (groups, left_out)."""
    groups, dropped = [], []
    for item in (part.strip() for part in spec.split(",")):
        if item.startswith("-") and any(item[1:] in columns for columns in SIGNAL_FEATURES.values()):
            dropped.append(item)
            continue
        names = FEATURE_PRESETS.get(item.lstrip("-"), (item.lstrip("-"),))
        unknown = [name for name in names if name not in FEATURE_GROUPS]
        if unknown or not item:
            common.fail(f"--features: unknown group {item!r}; use {', '.join(FEATURE_PRESETS)} or a comma list of "
                        f"{', '.join(FEATURE_GROUPS)}, '-GROUP' to drop one ('-COLUMN' for one signal column)")
        groups = [g for g in groups if g not in names] if item.startswith("-") else \
            groups + [name for name in names if name not in groups]
    left_out = tuple(g for g in groups if g in SIGNAL_FEATURES and g not in available)
    groups = tuple(g for g in FEATURE_GROUPS if g in groups and g not in left_out)
    groups += tuple(item for item in dict.fromkeys(dropped) if any(item[1:] in SIGNAL_FEATURES[g] for g in groups
                                                                   if g in SIGNAL_FEATURES))
    if not groups:
        common.fail(f"--features {spec!r} leaves no input for the models")
    return groups, left_out


def group_columns(groups):
    """(group, its table columns) for each history and signal group of `groups`, less the
    columns dropped one by one (`-COLUMN`)."""
    dropped = {item[1:] for item in groups if item.startswith("-")}
    return [(group, [column for column in (HISTORY_FEATURES if group == "history" else SIGNAL_FEATURES[group])
                     if column not in dropped])
            for group in groups if group != "text" and not group.startswith("-")]


def feature_columns(groups, text_form="raw"):
    """The table columns (the text form's, history and signals) that `groups` feed to the
    models, in order."""
    return [*(TEXT_COLUMNS[text_form] if "text" in groups else []),
            *(column for _, columns in group_columns(groups) for column in columns)]


def input_columns(groups, embedding_dim, text_form="raw"):
    """The name of each model input column, in order: `embedding_<i>` for the raw embeddings, then
    the table's feature columns (the text form's first)."""
    raw = embedding_dim if "text" in groups and text_form == "raw" else 0
    return [f"embedding_{i}" for i in range(raw)] + feature_columns(groups, text_form)


def is_text_column(column):
    return column.startswith("embedding_") or any(column in names for names in TEXT_COLUMNS.values())


def explanation_groups(groups, embedding_dim, text_form="raw"):
    """What each model input column counts towards when a prediction is explained, in column
    order: the embeddings or the text form's columns as `text`, the history split into
    `account_history` and `company_history` (what a writer can act on differs), each signal
    group under its name."""
    names = ["text"] * sum(map(is_text_column, input_columns(groups, embedding_dim, text_form)))
    for group, columns in group_columns(groups):
        names += [f"{'account' if column.startswith('user_') else 'company'}_history" for column in columns] \
            if group == "history" else [group] * len(columns)
    return names


# The columns 01 adds to the input rows: an input may not bring its own, and 05 drops them from
# the rows it returns.
DERIVED_COLUMNS = ("split", "popularity_class", "tweet_group", *feature_columns(FEATURE_GROUPS))


# ------------------------------------------------------------------------------------ model input

BLOCK_ROWS = 16_384  # rows per block of model input (26 MB at 403 float32 columns)
# Rows of a .npy mapped at a time. Each page a mapping touches stays in this process's resident memory
# until it is unmapped, with the cached pages the kernel maps around it: a block of rows spread over a
# whole file (a validation slice, a sample, the test rows) would bring in all of it, 439 MB at 300K rows.
MAPPED_ROWS = 4_096  # 6 MB of a 384-wide float32 file


def feature_block(embeddings, embedding_rows, columns):
    """Model input rows: embeddings[embedding_rows] (an array, or the path of a .npy that is
    memory-mapped MAPPED_ROWS rows at a time, so a big file never sits whole in this process),
    then the feature columns, as float32."""
    parts = []
    if isinstance(embeddings, str):
        parts.append(mapped_rows(embeddings, np.asarray(embedding_rows)))
    elif embeddings is not None:
        parts.append(np.asarray(embeddings[embedding_rows], dtype=np.float32))
    if columns is not None:
        parts.append(columns)
    return np.hstack(parts) if len(parts) > 1 else parts[0]


def embedding_width(embeddings):
    """The columns of embeddings given as an array or as the path of a .npy (read from its header)."""
    return (np.load(embeddings, mmap_mode="r") if isinstance(embeddings, str) else embeddings).shape[1]


def mapped_rows(path, rows):
    """`rows` (indices, in any order) of the 2-D .npy at `path`, as float32: one mapping for each
    window of MAPPED_ROWS rows of the file that holds some of them, dropped once they are read."""
    whole = np.load(path, mmap_mode="r")  # for the layout: its pages are never touched
    block = np.empty((len(rows), whole.shape[1]), dtype=np.float32)
    order = np.argsort(rows, kind="stable")
    windows = rows[order] // MAPPED_ROWS
    for part in np.split(order, np.flatnonzero(np.diff(windows)) + 1) if len(rows) else []:
        first = rows[part[0]] // MAPPED_ROWS * MAPPED_ROWS
        window = np.memmap(path, whole.dtype, "r", whole.offset + first * whole.strides[0],
                           (min(MAPPED_ROWS, len(whole) - first), whole.shape[1]))
        block[part] = window[rows[part] - first]
    return block


class ModelInput:
    """The model input of some rows, never built whole: row i is the embeddings' row index[i]
    (row i without an index) beside row i of the table's feature columns. The embeddings are an
    array or a .npy path (what training reads, a block at a time, here or on a cluster's workers)."""

    def __init__(self, embeddings, columns, index=None):
        self.embeddings = str(embeddings.filename) if isinstance(embeddings, np.memmap) else embeddings
        self.columns, self.index = columns, index
        self.rows = len(columns) if columns is not None else len(index if index is not None else embeddings)
        self.width = (0 if embeddings is None else embedding_width(self.embeddings)) + \
            (0 if columns is None else columns.shape[1])

    def task(self, rows):
        """feature_block's arguments for `rows`, small enough to send to a worker: a path travels
        instead of embeddings on disk, in-memory embeddings only for these rows."""
        embedding_rows = rows if self.index is None else self.index[rows]
        columns = None if self.columns is None else self.columns[rows]
        if self.embeddings is None or isinstance(self.embeddings, str):
            return self.embeddings, embedding_rows, columns
        return self.embeddings[embedding_rows], slice(None), columns

    def block(self, rows):
        return feature_block(*self.task(rows))

    def blocks(self, rows):
        """`rows` in order, BLOCK_ROWS at a time."""
        return [rows[start:start + BLOCK_ROWS] for start in range(0, len(rows), BLOCK_ROWS)]


def model_input(table, embeddings, groups, index=None, text_form="raw"):
    """The model input as ModelInput: the embeddings (when `text` is in `groups` in the raw form;
    row i of the table is the embeddings' row index[i]), then the table's feature columns."""
    return ModelInput(embeddings if "text" in groups and text_form == "raw" else None,
                      feature_matrix(table, groups, text_form), index)


def feature_matrix(table, groups, text_form="raw"):
    """The table's feature columns of `groups` as float32 (None when there are none)."""
    columns = feature_columns(groups, text_form)
    return table[columns].to_numpy(dtype=np.float32) if columns else None


# ------------------------------------------------------------------------------ history features

HISTORY_SMOOTHING = 5  # pseudo-posts pulling a small account's mean towards the global mean
# history_stats.csv, one row per account or company of the training rows (01's group_stats).
STATS_COLUMNS = ["kind", "key", "count", "sum_log_likes", "median_log_likes", "first_day", "mean_chars"]


def history_columns(kind, count, total, median, prior, count_scale=1.0):
    """The three history features of one key kind from a key's training count, sum and median of
    log1p(likes); a key with no tweets gets the `prior` (its mean_log_likes and median_log_likes:
    numbers, or one per row), and a small one is pulled towards it. `count_scale` turns the count
    of a part of the training rows into that of all of them."""
    count = np.asarray(count, dtype=float)
    return {f"{kind}_log_count": np.log1p(count * count_scale),
            f"{kind}_mean_log_likes": (np.asarray(total, dtype=float) + HISTORY_SMOOTHING * prior["mean_log_likes"])
            / (count + HISTORY_SMOOTHING),
            f"{kind}_median_log_likes": np.where(count > 0, np.asarray(median, dtype=float),
                                                 prior["median_log_likes"])}


def key_stats(stats, kind, keys):
    """Each key's row of `stats` (count, sum_log_likes, median_log_likes, first_day, mean_chars)
    for one kind; empty or unseen keys get count 0."""
    by_key = stats[stats["kind"] == kind].set_index("key")
    found = by_key.reindex(keys.where(keys != "").to_numpy())
    found["count"] = found["count"].fillna(0)
    found["sum_log_likes"] = found["sum_log_likes"].fillna(0)
    return found.set_index(keys.index)


def lookup_history(table, stats, prior, count_scale=1.0):
    """Per-row history features from `stats` (per-account and per-company count, sum and median
    of log1p(likes) over training rows, as 01 writes them). Unknown or empty keys get count 0 and
    the global prior, so new accounts are handled the same way in training and prediction.
    `count_scale`: see history_columns (01's out-of-fold history, from a part of the rows)."""
    columns = {}
    for kind, column in HISTORY_KEYS:
        found = key_stats(stats, kind, table[column])
        columns.update(history_columns(kind, found["count"], found["sum_log_likes"], found["median_log_likes"],
                                       prior, count_scale))
    return pd.DataFrame(columns, index=table.index)[HISTORY_FEATURES]


# ------------------------------------------------------------------------------------- signals

LINK = r"<hyperlink>|https?://\S+"
MENTION = r"<mention>|@\w+"
HASHTAG = r"#\w+"
EMOJI = "[\U0001F000-\U0001FAFF\u2600-\u27BF\u2B50\u2B55\u2764]"
MEDIA_KINDS = ("Photo", "Video", "Gif")  # Adobe's `[Photo(...), Video(...)]`; VideoVariant( is no video
TRUE_WORDS, FALSE_WORDS = {"1", "true", "t", "yes", "y"}, {"0", "false", "f", "no", "n"}
SECONDS_PER_DAY = 86_400
# The dates a nanosecond timestamp holds, 1677-09-21 to 2262-04-11, the resolution the day
# arithmetic here works in: a date outside them (`1448-01-01`) is no tweet's, and is unreadable.
DATE_RANGE = (pd.Timestamp.min.tz_localize("UTC"), pd.Timestamp.max.tz_localize("UTC"))


def parse_dates(values):
    """Days since 1970 (UTC, float) from ISO 8601 text with or without a time zone (none means
    UTC), as Adobe's `2020-12-12 00:47:00+00:00` or `2012-10-29T08:23:56Z`; NaN where unreadable
    or outside DATE_RANGE."""
    text = pd.Series(values, dtype=object).fillna("").astype(str).str.strip()
    parsed = pd.to_datetime(text.where(text != ""), utc=True, errors="coerce", format="ISO8601")
    parsed = parsed.where((parsed >= DATE_RANGE[0]) & (parsed <= DATE_RANGE[1])).dt.as_unit("ns")
    seconds = (parsed - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
    return (seconds / SECONDS_PER_DAY).astype(float)


def surface_signals(content):
    """Counts a reader sees at a glance: length, words, links, mentions, hashtags, emoji, ? and !."""
    text = pd.Series(content, dtype=object).fillna("").astype(str)
    columns = [text.str.len(), text.str.split().str.len(), text.str.count(LINK), text.str.count(MENTION),
               text.str.count(HASHTAG), text.str.count(EMOJI), text.str.count(r"\?"), text.str.count("!"),
               text.str.match(r"\s*(<mention>|@\w)")]
    return pd.DataFrame(dict(zip(SIGNAL_FEATURES["surface"], columns)), index=text.index).astype(float)


QUESTION = r"^\W*(?:who|what|when|where|why|how|which|is|are|do|does|did|can|could|would|will|should)\b|\?\W*$"
CALL_TO_ACTION = (r"\b(?:retweet|rt if|please (?:share|help|join|sign|watch|read|vote|call|reply)|share (?:this|if)|"
                  r"like if|reply|comment|click|tap|sign up|join us|watch|read more|learn more|check (?:it )?out|"
                  r"follow|vote|donate|subscribe|tell us|let us know|don't miss)\b")
NUMBER = r"\d[\d,.:%]*"
FIRST_PERSON = r"\b(?:i|me|my|mine|we|us|our|ours|i'm|i've|we're|we've)\b"
SECOND_PERSON = r"\b(?:you|your|yours|you're|you've)\b"
ALL_CAPS_WORD = r"\b[A-Z]{2,}\b"


def wording_signals(content, usernames, companies, stats):
    """Choices a writer makes in the wording: length against the account's usual (its company's
    where the account is unknown; NaN where neither is), a question, calls to action (retweet,
    reply, click, vote...), numbers, first and second person, words in capitals."""
    text = pd.Series(content, dtype=object).fillna("").astype(str)
    plain = text.str.replace(LINK, " ", regex=True).str.replace(MENTION, " ", regex=True)
    lower = plain.str.lower()
    usual = key_stats(stats, "user", usernames)["mean_chars"].to_numpy(dtype=float)
    usual = np.where(np.isnan(usual), key_stats(stats, "company", companies)["mean_chars"].to_numpy(dtype=float),
                     usual)
    columns = [text.str.len().to_numpy() / np.where(usual > 0, usual, np.nan),
               lower.str.contains(QUESTION), lower.str.count(CALL_TO_ACTION), plain.str.count(NUMBER),
               lower.str.count(FIRST_PERSON), lower.str.count(SECOND_PERSON), plain.str.count(ALL_CAPS_WORD)]
    return pd.DataFrame(dict(zip(SIGNAL_FEATURES["wording"], columns)), index=text.index).astype(float)


def media_signals(media):
    """Photo, video and GIF counts from Adobe's media lists; an empty cell means none. A cell that
    is not such a list is missing (NaN); returns (frame, malformed count)."""
    text = pd.Series(media, dtype=object).fillna("").astype(str).str.strip()
    counts = pd.DataFrame({column: text.str.count(rf"\b{kind}\(")
                           for column, kind in zip(SIGNAL_FEATURES["media"], MEDIA_KINDS)}, index=text.index)
    empty = text.isin(["", "[]"])
    listed = text.str.startswith("[") & text.str.endswith("]") & (counts.sum(axis=1) > 0)
    counts = counts.astype(float).where(empty | listed)
    return counts, int((~(empty | listed)).sum())


def time_signals(days, usernames, stats):
    """Hour and weekday (UTC), and days since the account's first training tweet (NaN when the
    account or the date is unknown)."""
    moments = pd.to_datetime(days * SECONDS_PER_DAY, unit="s", utc=True)
    first_day = key_stats(stats, "user", usernames)["first_day"].to_numpy(dtype=float)
    return pd.DataFrame(dict(zip(SIGNAL_FEATURES["time"], [moments.dt.hour.to_numpy(dtype=float),
                                                           moments.dt.day_of_week.to_numpy(dtype=float),
                                                           days.to_numpy() - first_day])), index=days.index)


def reply_signals(values):
    """1 for a reply, 0 for not, from true/false, yes/no or 1/0; anything else is missing."""
    text = pd.Series(values, dtype=object).fillna("").astype(str).str.strip().str.lower()
    flag = text.map(lambda v: 1.0 if v in TRUE_WORDS else 0.0 if v in FALSE_WORDS else np.nan)
    return pd.DataFrame({SIGNAL_FEATURES["reply"][0]: flag}, index=text.index), int(((text != "") & flag.isna()).sum())


def blank_columns(table, columns):
    """Those of `columns` that `table` has but that hold no value in any row (blank cells only)."""
    return [column for column in dict.fromkeys(columns) if column in table.columns
            and table[column].fillna("").astype(str).str.strip().eq("").all()]


def signal_features(table, stats):
    """Every signal group's columns (NaN for a group whose source column `table` lacks), the groups
    found, and per group the count of cells that could not be read."""
    parts, found, malformed = [], [], {}
    for group, source in SIGNAL_SOURCE.items():
        if source not in table.columns:
            parts.append(pd.DataFrame(np.nan, index=table.index, columns=SIGNAL_FEATURES[group]))
            continue
        found.append(group)
        if group == "surface":
            frame, bad = surface_signals(table[source]), 0
        elif group == "wording":
            frame, bad = wording_signals(table[source], table["username"], table["company"], stats), 0
        elif group == "media":
            frame, bad = media_signals(table[source])
        elif group == "time":
            days = parse_dates(table[source])
            frame = time_signals(days, table["username"], stats)
            bad = int((days.isna() & (table[source].fillna("").astype(str).str.strip() != "")).sum())
        else:
            frame, bad = reply_signals(table[source])
        parts.append(frame)
        malformed[group] = bad
    return pd.concat(parts, axis=1), found, malformed
