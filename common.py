"""What the five pipeline scripts share: file names, class quantiles, seeds, the text template,
the embedding model and device, input reading, provenance checks and atomic writes.

Every generated file goes to the current working directory; the scripts themselves (and the
embedded data/) are found relative to this file, so the pipeline runs from any folder.
"""
import argparse
import contextlib
import ctypes
import errno
import functools
import hashlib
import json
import math
import os
import secrets
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

PROJECT_DIR = Path(__file__).resolve().parent
DEFAULT_INPUT = PROJECT_DIR / "data" / "train_data.csv"

# Generated files (current working directory), with the script that makes each one.
CLASSED_CSV = "train_data_with_classes.csv"
THRESHOLDS_JSON = "class_thresholds.json"
HISTORY_CSV = "history_stats.csv"
EMBEDDINGS_CONTENT = "embeddings_content.npy"
EMBEDDINGS_COMBINED = "embeddings_combined.npy"
EMBEDDINGS_META = "embeddings_meta.json"
CLASSIFIER = "classifier_model_improved.joblib"
REGRESSOR = "regressor_model_class_{k}.joblib"
GLOBAL_REGRESSOR = "regressor_model_global.joblib"
COMBINER = "routing_combiner.json"
PREDICTIONS = "final_predictions.csv"
MAKERS = {
    CLASSED_CSV: "01_create_classes.py", THRESHOLDS_JSON: "01_create_classes.py",
    HISTORY_CSV: "01_create_classes.py",
    EMBEDDINGS_CONTENT: "02_generate_embeddings.py", EMBEDDINGS_COMBINED: "02_generate_embeddings.py",
    EMBEDDINGS_META: "02_generate_embeddings.py",
    CLASSIFIER: "03b_train_classifier_improved.py",
    GLOBAL_REGRESSOR: "04_train_regressors.py", COMBINER: "04_train_regressors.py",
    **{REGRESSOR.format(k=k): "04_train_regressors.py" for k in range(3)},
}

# Classes: 0 common (bottom 75%), 1 popular (75th-95th percentile), 2 viral (top 5%).
QUANTILES = (0.75, 0.95)
CLASS_NAMES = ("common", "popular", "viral")
SEED = 42
VALIDATION_FRACTION = 0.1  # carved from the training rows for early stopping, never from test

# Columns: the company column is called `inferred company` in the Adobe data, `company` elsewhere.
TEXT_COLUMNS = ("content", "company", "username")
COMPANY_ALIASES = ("company", "inferred company")
COMBINED_TEMPLATE = "{content} | company: {company} | user: {username}"

# History features (see 01): per-account and per-company statistics of log1p(likes) on training rows.
HISTORY_FEATURES = [f"{key}_{stat}" for key in ("user", "company")
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
}
SIGNAL_SOURCE = {"surface": "content", "media": "media", "time": "date", "reply": "is_reply"}

# Model inputs, by group: `text` is the embeddings (content ones for the classifier, which on
# combined ones learns account names that do not carry over to new accounts; content+company+
# username ones for the regressors), `history` the six history features, then the signals.
FEATURE_GROUPS = ("text", "history", *SIGNAL_FEATURES)
FEATURE_PRESETS = {"seed": ("text",), "history": ("text", "history"), "all": FEATURE_GROUPS}
DEFAULT_FEATURES = "all"

DEFAULT_MODEL = "all-MiniLM-L6-v2"
EMBEDDING_DIM = 384

# A like is one account's click: 1e10 is more than there are people on Earth, and the most-liked
# tweets ever have about 1e7. A bigger count is a broken cell, not a tweet (and 1e19 would
# overflow int64 on its way into the classed CSV).
MAX_LIKES = 1e10


def fail(message):
    """Stop with a one-line message and exit code 1: for problems the user can fix (bad input,
    missing or stale files), which deserve a sentence, not a traceback."""
    raise SystemExit(f"error: {message}")


# Faults of the machine, not of the code: they deserve a line, not a traceback.
USER_FAULTS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM)


def run(main):
    """Each script's entry point. main() raises as usual (tests call it directly); here Ctrl-C
    and a full disk or read-only folder become one line on stderr and a nonzero exit code."""
    script = Path(main.__code__.co_filename).name
    try:
        main()
    except KeyboardInterrupt:
        # Every write is atomic: what was finished is intact, what was not left no trace.
        print(f"\nerror: interrupted; rerun {script} to resume or redo it", file=sys.stderr)
        sys.exit(130)  # 128 + SIGINT, as shells report it
    except OSError as error:
        if error.errno not in USER_FAULTS:
            raise
        sys.exit(f"error: {error.filename or script}: {error.strerror}")


def _checked(convert, test, wanted):
    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not test(value):
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}")
        return value
    return parse


# argparse `type=`s for every numeric setting, so a bad value is refused before any work starts.
positive_int = _checked(int, lambda v: v > 0, "an integer > 0")
non_negative_int = _checked(int, lambda v: v >= 0, "an integer >= 0")
positive_float = _checked(float, lambda v: 0 < v < math.inf, "a finite number > 0")


# ---------------------------------------------------------------------------------- input tables

def read_table(path, required=("content", "username", "likes")):
    """Read a CSV or .xlsx export: (table, original). `table` has the company column named
    `company` and the text columns as plain stripped strings (missing -> ""); `original` is the
    file as read, every cell as text, for outputs that must give the user's columns back
    unchanged. `required` may omit `likes` for new tweets."""
    path = Path(path)
    if not path.is_file():
        fail(f"input file not found: {path}")
    if path.suffix.lower() == ".xls":
        fail(f"{path} is a legacy Excel file (.xls), which this pipeline does not read; "
             "save it as .xlsx or as UTF-8 CSV")
    # Everything as text, so ids and usernames like "007" pass through unchanged; only empty
    # cells are missing ("NA" is a username); utf-8-sig strips a byte-order mark.
    as_text = {"dtype": str, "keep_default_na": False, "na_values": [""]}
    try:
        if path.suffix.lower() == ".xlsx":
            original = pd.read_excel(path, **as_text)
        else:
            original = pd.read_csv(path, encoding="utf-8-sig", **as_text)
    except pd.errors.EmptyDataError:
        fail(f"{path} is empty: expected a header row and tweets")
    except UnicodeDecodeError as error:
        fail(f"{path} is not UTF-8 text ({error.reason} at byte {error.start}); "
             "re-save it as UTF-8 CSV")
    except (pd.errors.ParserError, ValueError, OSError, zipfile.BadZipFile) as error:
        fail(f"could not read {path}: {error}")
    table = original.copy()
    table.columns = [str(column).strip() for column in table.columns]
    doubled = sorted(set(table.columns[table.columns.duplicated()]))
    if doubled:
        fail(f"{path} has more than one column named {doubled} once surrounding spaces are "
             f"removed ({[c for c in original.columns if str(c).strip() in doubled]}); "
             "rename or drop the extra one")
    if "company" not in table.columns and "inferred company" in table.columns:
        table = table.rename(columns={"inferred company": "company"})
    missing = [c for c in (*required, "company") if c not in table.columns]
    if missing:
        fail(f"{path} lacks column(s) {missing}; found {list(table.columns)} "
             f"(the company column may be named {' or '.join(map(repr, COMPANY_ALIASES))})")
    if table.empty:
        fail(f"{path} has a header but no rows")
    for column in TEXT_COLUMNS:
        table[column] = table[column].fillna("").astype(str).str.strip()
    return table.reset_index(drop=True), original.reset_index(drop=True)


def assign_classes(likes, thresholds):
    """0 common (likes <= low), 1 popular (low < likes <= high), 2 viral (likes > high)."""
    likes = np.asarray(likes, dtype=float)
    return (likes > thresholds[0]).astype(int) + (likes > thresholds[1]).astype(int)


def clean_likes(likes):
    """Likes as float; missing, text, negative and too large (> MAX_LIKES, or infinite) counts
    become NaN (the caller decides)."""
    numeric = pd.to_numeric(likes, errors="coerce").astype(float)
    return numeric.where((numeric >= 0) & (numeric <= MAX_LIKES))


def bad_likes(likes):
    """Why clean_likes refuses the values it refuses, counted, as "2 missing, 1 negative"."""
    numeric = pd.to_numeric(likes, errors="coerce").astype(float)
    reasons = {"missing": likes.isna(), "not a number": likes.notna() & numeric.isna(),
               "negative": numeric < 0, f"above {MAX_LIKES:.0e} or infinite": numeric > MAX_LIKES}
    return ", ".join(f"{int(rows.sum())} {reason}" for reason, rows in reasons.items() if rows.any())


def combined_texts(table):
    return [COMBINED_TEMPLATE.format(content=c, company=o, username=u)
            for c, o, u in zip(table["content"], table["company"], table["username"])]


# ------------------------------------------------------------------------------------- provenance

def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def texts_fingerprint(texts):
    """Order-sensitive hash of a list of texts: the embeddings' link to the rows they encode."""
    return _hash_texts(hashlib.sha256(), texts).hexdigest()


def _hash_texts(digest, texts):
    for text in texts:
        digest.update(text.encode("utf-8", "surrogatepass"))
        digest.update(b"\0")
    return digest


def embedded_texts(kind, table):
    """The texts 02 encodes into embeddings_{kind}.npy, one per row of `table`."""
    return list(table["content"]) if kind == "content" else combined_texts(table)


def require(paths):
    """Fail before any expensive work if an input is missing, naming the script that makes it."""
    for path in paths:
        if not Path(path).exists():
            maker = MAKERS.get(Path(path).name)
            hint = f"; run {maker} first" if maker else ""
            fail(f"{path} not found{hint}")


def load_classed(columns=None):
    """The classed CSV written by 01 (only `columns` of it, when given), with its thresholds,
    checked as check_classed checks them."""
    info = check_classed()
    if columns is None:
        return _typed(_read_classed()), info
    # A chunk at a time: every cell is text until _typed converts it, and text takes far more
    # memory than the float it becomes.
    return pd.concat(classed_chunks(columns), ignore_index=True), info


def check_classed():
    """01's thresholds record, checked against the fingerprints 01 recorded of the classed CSV and
    of history_stats.csv (so a half-finished 01 run is never used)."""
    require([CLASSED_CSV, THRESHOLDS_JSON, HISTORY_CSV])
    info = read_json(THRESHOLDS_JSON)
    check_fields(THRESHOLDS_JSON, info, {
        "thresholds": lambda v: isinstance(v, list) and len(v) == 2 and all(map(is_number, v)),
        "history_prior": lambda v: isinstance(v, dict) and all(is_number(v.get(k)) for k in
                                                               ("mean_log_likes", "median_log_likes")),
        "signal_groups": lambda v: isinstance(v, list) and set(v) <= set(SIGNAL_FEATURES),
        "class_counts": lambda v: isinstance(v, dict) and all(isinstance(v.get(name), dict) and
                                                              isinstance(v[name].get("train"), int)
                                                              for name in CLASS_NAMES)})
    for path, key in ((CLASSED_CSV, "classed_csv_sha256"), (HISTORY_CSV, "history_stats_sha256")):
        if info.get(key) != file_sha256(path):
            fail(f"{path} is not the file {THRESHOLDS_JSON} was written with; rerun 01_create_classes.py")
    return info


CHUNK_ROWS = 50_000  # rows of the classed CSV parsed at a time when only some columns are kept


def classed_chunks(columns):
    """The classed CSV's `columns`, typed as load_classed types them, CHUNK_ROWS rows at a time
    (read after check_classed has checked the file)."""
    return map(_typed, _read_classed(columns, CHUNK_ROWS))


def _read_classed(columns=None, chunk_rows=None):
    """The classed CSV's `columns` (all by default), every cell as text (empty -> missing); with
    `chunk_rows`, an iterator of frames of that many rows."""
    try:
        return pd.read_csv(CLASSED_CSV, usecols=columns, chunksize=chunk_rows, dtype=str, keep_default_na=False,
                           na_values=[""])
    except ValueError as error:  # a column missing: the file matches its record, but an older 01 wrote it
        fail(f"{CLASSED_CSV} is not what this version of 01_create_classes.py writes ({error}); rerun it")


def _typed(table):
    """The classed CSV's cells as 02-05 use them: texts with "" for missing, likes and the feature
    columns as float, the class as int; for the columns `table` has."""
    numbers = ["likes", *feature_columns(FEATURE_GROUPS)]
    for column in table.columns:
        if column in TEXT_COLUMNS:
            table[column] = table[column].fillna("")
        elif column == "popularity_class":
            table[column] = table[column].astype(int)
        elif column in numbers:
            table[column] = table[column].astype(float)
    return table


def classed_fingerprints(kinds):
    """texts_fingerprint of each kind's embedded_texts over the classed CSV, as load_embeddings
    checks them, read CHUNK_ROWS rows at a time: the texts are most of the file, and 03b and 04
    need them for nothing else."""
    digests = {kind: hashlib.sha256() for kind in kinds}
    for chunk in classed_chunks(list(TEXT_COLUMNS)):
        for kind, digest in digests.items():
            _hash_texts(digest, embedded_texts(kind, chunk))
    return {kind: digest.hexdigest() for kind, digest in digests.items()}


def load_history_stats():
    """history_stats.csv (01): per-key count, sum and median of log1p(likes), first posting day."""
    return pd.read_csv(HISTORY_CSV, dtype={"key": str}, keep_default_na=False, na_values={"first_day": [""]})


def load_embeddings(kind, table, texts_sha256=None):
    """Memory-map embeddings_{kind}.npy and check that it is the file 02 recorded (its sha256) and
    encodes exactly the texts of `table` (of which `texts_sha256` is the fingerprint, for a table
    read without its texts: see classed_fingerprints)."""
    path = EMBEDDINGS_CONTENT if kind == "content" else EMBEDDINGS_COMBINED
    require([path, EMBEDDINGS_META])
    meta = read_json(EMBEDDINGS_META).get(kind, {})
    if not {"texts_sha256", "npy_sha256", "model", "mode", "precision", "dim"} <= meta.keys():
        fail(f"{EMBEDDINGS_META} lacks a complete record of {path} (an older or damaged file); "
             "rerun 02_generate_embeddings.py")
    if meta["texts_sha256"] != (texts_sha256 or texts_fingerprint(embedded_texts(kind, table))):
        fail(f"{path} was made from other texts than {CLASSED_CSV} holds now; "
             "rerun 02_generate_embeddings.py")
    if meta["npy_sha256"] != file_sha256(path):
        fail(f"{path} is not the file {EMBEDDINGS_META} records (copied from another run, or cut short); "
             "rerun 02_generate_embeddings.py")
    try:
        matrix = np.load(path, mmap_mode="r")
    except (ValueError, OSError, EOFError) as error:  # a truncated or overwritten file
        fail(f"{path} is damaged ({error}); rerun 02_generate_embeddings.py")
    if matrix.shape != (len(table), meta["dim"]):
        fail(f"{path} has shape {matrix.shape}, expected ({len(table)}, {meta['dim']}); "
             "rerun 02_generate_embeddings.py")
    return matrix, meta


def is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_fields(path, data, fields):
    """Fail in one line when a JSON file this pipeline wrote lacks a field or holds another kind of
    value there (edited by hand, or from another version), instead of failing later, deep inside."""
    for key, valid in fields.items():
        if key not in data or not valid(data[key]):
            fail(f"{path} has no valid `{key}` (edited, or written by another version); "
                 f"rerun {MAKERS.get(Path(path).name)}")


def read_json(path):
    """A JSON file this pipeline wrote, or a one-line error naming the script that remakes it."""
    require([path])
    try:
        data = json.loads(Path(path).read_text())
        problem = None if isinstance(data, dict) else "not a JSON object"
    except (json.JSONDecodeError, UnicodeDecodeError) as error:  # e.g. cut short by a full disk
        problem = error
    if problem:
        fail(f"{path} is damaged ({problem}); rerun {MAKERS.get(Path(path).name)}")
    return data


def load_artifact(path, expect):
    """Load one of our .joblib bundles and check its recorded provenance against `expect`.
    joblib runs code when loading: only ever load files this pipeline wrote."""
    import joblib

    require([path])
    try:
        bundle = joblib.load(path)
    except Exception as error:  # unpickling a damaged file fails in any of a dozen ways
        fail(f"{path} could not be loaded ({error!r}): it is damaged or "
             f"was written by other library versions; rerun {MAKERS.get(Path(path).name)}")
    if not isinstance(bundle, dict) or not isinstance(bundle.get("model"), bytes) or \
            not isinstance(bundle.get("meta"), dict) or "booster_sha256" not in bundle["meta"]:
        fail(f"{path} is not an artifact of this version of the pipeline; rerun {MAKERS.get(Path(path).name)}")
    if bundle["meta"].get("booster_sha256") != hashlib.sha256(bundle["model"]).hexdigest():
        fail(f"{path} is damaged: its booster is not the one it recorded; rerun {MAKERS.get(Path(path).name)}")
    check_provenance(path, bundle["meta"], expect)
    return bundle


def check_provenance(path, meta, expect):
    for key, wanted in expect.items():
        found = meta.get(key)
        if found != wanted:
            fail(f"{path} is stale: it was made with {key}={_short(found)}, but the current files have "
                 f"{_short(wanted)}; rerun {MAKERS.get(Path(path).name)}")


def _short(value):
    return value[:12] + "…" if isinstance(value, str) and len(value) > 16 else value


# --------------------------------------------------------------------------------- atomic writes

def check_writable(paths):
    """Fail before any expensive work if an output could not be written: its folder is missing
    or read-only (a stage should not train for minutes and then fail to save)."""
    for path in paths:
        if not Path(path).name or Path(path).name == "..":
            fail(f"cannot write {str(path)!r}: it names no file")
        folder = Path(path).absolute().parent
        if not folder.is_dir():
            fail(f"cannot write {path}: folder {folder} does not exist")
        if not os.access(folder, os.W_OK | os.X_OK):
            fail(f"cannot write {path}: folder {folder} is not writable")
        if Path(path).is_dir():
            fail(f"cannot write {path}: it is a folder")
        if Path(path).exists() and not Path(path).is_file():  # a device, a pipe: the rename would replace it
            fail(f"cannot write {path}: it is not a regular file")


def atomic_write(path, write):
    """Call write(tmp_path), then rename onto `path`: a failure never leaves a half-written file
    and never destroys the previous good one. A full disk or similar ends in one line naming
    the file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        # Created like any new file, 0666 less the umask (mkstemp's private 0600 would survive
        # the rename and lock teammates out).
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        write(tmp)
        os.replace(tmp, path)
    except OSError as error:
        fail(f"could not write {path}: {error.strerror or error}")
    finally:
        tmp.unlink(missing_ok=True)


def save_json(path, data):
    """Strict JSON (no NaN or Infinity, which strict readers reject): a non-finite figure is
    written as null, "no figure"."""
    text = json.dumps(_finite_or_none(data), indent=2, allow_nan=False) + "\n"
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def _finite_or_none(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite_or_none(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(item) for item in value]
    return value


def save_csv(path, table):
    atomic_write(path, lambda tmp: table.to_csv(tmp, index=False))


def save_npy(path, array):
    def write(tmp):
        with open(tmp, "wb") as handle:
            np.save(handle, array)
    atomic_write(path, write)


def artifact(model, meta):
    """A trained XGBoost model as our .joblib files hold it: its booster in XGBoost's own binary
    format (UBJSON), cut to the rounds early stopping kept, beside its provenance. Plain bytes, not
    the pickled sklearn object: loading a bundle imports neither xgboost nor scikit-learn (05
    embeds a draft before it needs them, which keeps its peak memory down), and XGBoost reads
    its own format across versions, where its pickles are tied to one."""
    booster = model.get_booster()
    try:
        booster = booster[: booster.best_iteration + 1]  # what the sklearn model's predict uses
    except AttributeError:  # trained for a fixed number of rounds: all of them
        pass
    raw = bytes(booster.save_raw("ubj"))
    # Checked on loading: a damaged booster would otherwise surface deep inside XGBoost.
    return {"model": raw, "meta": {**meta, "booster_sha256": hashlib.sha256(raw).hexdigest()}}


def load_classifier(expect):
    """The classifier bundle of 03b, checked against `expect` and to be a classifier (a regressor
    copied over it would otherwise pass as one)."""
    classifier = load_artifact(CLASSIFIER, expect)
    check_fields(CLASSIFIER, classifier["meta"], {
        "class_weight": lambda v: isinstance(v, list) and len(v) == len(CLASS_NAMES) and all(map(is_number, v))})
    return classifier


def load_booster(bundle):
    return _booster(bundle["model"])


# A run's five models, parsed once per process: a cluster worker predicts many blocks with them.
@functools.lru_cache(maxsize=len(CLASS_NAMES) + 2)
def _booster(raw):
    import xgboost

    try:
        return xgboost.Booster(model_file=bytearray(raw))
    except xgboost.core.XGBoostError as error:  # intact bytes this xgboost cannot read
        fail(f"a model file's booster could not be read by xgboost {xgboost.__version__} "
             f"({str(error).splitlines()[0][:120]}); rerun {MAKERS[CLASSIFIER]} and {MAKERS[GLOBAL_REGRESSOR]}")


def save_artifact(path, bundle):
    import joblib

    atomic_write(path, lambda tmp: joblib.dump(bundle, tmp))


# ------------------------------------------------------------------------------------ run context

def pick_device(requested="auto"):
    """CUDA, then Apple MPS, then CPU; `requested` forces one, which must be there. Torch takes
    seconds to import, so on Linux without a GPU driver (NVIDIA's or AMD's) it is not asked."""
    if requested == "cpu" or (requested == "auto" and sys.platform == "linux" and
                              not any(Path(p).exists() for p in ("/proc/driver/nvidia", "/dev/kfd"))):
        return "cpu"
    import torch

    found = {"cuda": torch.cuda.is_available(),
             "mps": getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()}
    if requested == "auto":
        return next((device for device, present in found.items() if present), "cpu")
    if not found[requested]:
        fail(f"--device {requested}, but torch finds no {requested.upper()} device on this machine")
    return requested


# ------------------------------------------------------------------ Dask cluster (--cluster, 02-05)

# `local:N` starts N worker processes, one thread each (XGBoost and the encoder thread within a
# worker); the tests switch to threads, which start in 0.03 s instead of 3.
LOCAL_PROCESSES = True
CONNECT_TIMEOUT = "30s"  # for a scheduler, and for its first worker


def cluster_address(text):
    """argparse `type=` for --cluster: `local`, `local:N` or a scheduler address; refused at once
    when dask is not installed, before any work."""
    import importlib.util

    kind, _, workers = text.partition(":")
    if kind == "local" and workers:
        positive_int(workers)
    if importlib.util.find_spec("distributed") is None:
        raise argparse.ArgumentTypeError("needs dask: pip install -r requirements-cluster.txt")
    return text


def add_cluster_argument(parser):
    parser.add_argument("--cluster", type=cluster_address, default=None, metavar="ADDRESS",
                        help="run on a Dask cluster: local or local:N starts N workers here, tcp://HOST:8786 "
                             "joins a running scheduler; the working directory must be shared with every "
                             "worker (see README, Running on a cluster)")


@contextlib.contextmanager
def cluster(address):
    """A distributed.Client for --cluster ADDRESS (None when there is none; dask is then never
    imported), checked: every worker sees this working directory and can import these scripts."""
    if address is None:
        yield None
        return
    from distributed import Client, LocalCluster

    with contextlib.ExitStack() as stack:
        kind, _, workers = address.partition(":")
        try:
            if kind == "local":
                local = stack.enter_context(LocalCluster(
                    n_workers=int(workers or os.cpu_count()), threads_per_worker=1, processes=LOCAL_PROCESSES,
                    dashboard_address=None))
                client = stack.enter_context(Client(local))
            else:
                client = stack.enter_context(Client(address, timeout=CONNECT_TIMEOUT))
                client.wait_for_workers(1, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError, ValueError) as error:
            fail(f"--cluster {address}: no scheduler with workers there ({error})")
        check_workers(client)
        yield client


def check_workers(client):
    """Fail in one line unless every worker reads a file written here into the working directory
    (the stages pass files through it) and imports these scripts (it runs their functions)."""
    token = secrets.token_hex(8)
    path = Path(f".cluster_check_{token}").absolute()
    path.write_text(token)

    def sees(path, project):  # defined here, so it is sent by value: a worker need not import this file
        import importlib.util
        import sys
        from pathlib import Path

        if project not in sys.path and Path(project, "common.py").is_file():
            sys.path.insert(0, project)
        try:
            text = Path(path).read_text()
        except OSError:
            text = None
        return text, importlib.util.find_spec("common") is not None

    try:
        answers = client.run(sees, str(path), str(PROJECT_DIR))
    finally:
        path.unlink()
    blind = sorted(worker for worker, (text, _) in answers.items() if text != token)
    if blind:
        fail(f"--cluster: worker(s) {', '.join(blind)} cannot read {path.parent}; the working directory must be "
             "on a filesystem every worker shares, at the same path (see README, Running on a cluster)")
    lost = sorted(worker for worker, (_, importable) in answers.items() if not importable)
    if lost:
        fail(f"--cluster: worker(s) {', '.join(lost)} cannot import the pipeline's scripts from {PROJECT_DIR}; "
             "put the project on the shared filesystem too, or start `dask worker` with it on PYTHONPATH")


def cluster_record(address, client):
    """What artifacts record of how they were made: {} without a cluster."""
    return {"cluster": {"address": address, "workers": len(client.scheduler_info()["workers"])}} if client else {}


def cluster_blocks(client, inputs, rows):
    """`rows` of `inputs` as futures of feature blocks, each built by a worker from the shared
    files, spread round-robin over the workers in a fixed order so that a rerun partitions and
    places the data the same way (distributed XGBoost is deterministic only then)."""
    workers = sorted(client.scheduler_info()["workers"].items(), key=lambda item: str(item[1].get("name")))
    return [(client.submit(feature_block, *inputs.task(block), workers=[workers[i % len(workers)][0]],
                           allow_other_workers=False, pure=False), block)
            for i, block in enumerate(inputs.blocks(rows))]


def cluster_matrix(client, inputs, rows, parts, ref=None):
    """A DaskQuantileDMatrix of `rows` of `inputs`; parts(rows) gives the label and weight."""
    import dask.array as da
    import xgboost.dask

    blocks = cluster_blocks(client, inputs, rows)
    data = da.concatenate([da.from_delayed(future, shape=(len(block), inputs.width), dtype=np.float32)
                           for future, block in blocks])
    chunks = (tuple(len(block) for _, block in blocks),)
    extra = {key: da.from_array(values, chunks=chunks) for key, values in parts(rows).items() if values is not None}
    return xgboost.dask.DaskQuantileDMatrix(client, data, ref=ref, **extra)


# ------------------------------------------------------------------ training (03b and 04 alike)

N_ESTIMATORS = 1000
LEARNING_RATE = 0.05
MAX_DEPTH = 6
EARLY_STOPPING_ROUNDS = 50
SUBSAMPLE = 0.8
COLSAMPLE_BYTREE = 0.5


def parse_training_arguments(doc, argv):
    """03b's and 04's command line: the settings they share (both must get the same --features
    for 05 to combine them) and --cluster; `doc` is the script's docstring."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--features", default=DEFAULT_FEATURES,
                        help=f"model inputs: {', '.join(FEATURE_PRESETS)} (seed: embeddings only, the original "
                             f"design; history: embeddings + history) or a comma list of {', '.join(FEATURE_GROUPS)}; "
                             "'-GROUP' drops one, e.g. all,-text")
    parser.add_argument("--n-estimators", type=positive_int, default=N_ESTIMATORS, help="most boosting rounds")
    parser.add_argument("--learning-rate", type=positive_float, default=LEARNING_RATE)
    parser.add_argument("--max-depth", type=positive_int, default=MAX_DEPTH)
    parser.add_argument("--seed", type=non_negative_int, default=SEED, help="seed for the validation slice and XGBoost")
    add_cluster_argument(parser)
    return parser.parse_args(argv)


# glibc's malloc gives a request of 128 KiB or more a mapping of its own, returned when freed, but
# raises that threshold (up to 32 MB) whenever such a block is freed, and with it the free memory
# it keeps. After the first feature block has come and gone, XGBoost's quantile sketch (hundreds
# of MB of per-column buffers, grown and freed by its threads) would come from the heap, and what
# it frees would stay in the process: about 290 MB more peak RSS at 300K rows. Training pins both
# thresholds at glibc's default.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt's options, from glibc's malloc.h
MALLOC_THRESHOLD = 128 * 1024


def pin_malloc_thresholds():
    """Keep glibc's malloc from holding on to the memory XGBoost frees; elsewhere, nothing."""
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None) if sys.platform.startswith("linux") else None
    if mallopt:  # musl has one that does nothing
        for option in (M_TRIM_THRESHOLD, M_MMAP_THRESHOLD):
            mallopt(option, MALLOC_THRESHOLD)


def training_inputs(args, embedding_kinds):
    """Everything 03b and 04 train from: the columns of the classed table they read, its thresholds
    record, the feature groups, the model input for each embedding kind (as Features: never built
    whole), and the provenance every artifact records."""
    pin_malloc_thresholds()
    # Only the columns training reads: the texts are only hashed, as they stream past.
    table, info = load_classed(["split", "popularity_class", "likes", *feature_columns(FEATURE_GROUPS)])
    groups, left_out = parse_features(args.features, info.get("signal_groups", ()))
    fingerprints = classed_fingerprints(embedding_kinds) if "text" in groups else {}
    inputs, provenance = {}, {"classed_csv_sha256": info["classed_csv_sha256"],
                              "history_stats_sha256": info["history_stats_sha256"],
                              "thresholds": info["thresholds"], "split": info["split"], "rows": info["rows"],
                              "features": list(groups)}
    for kind in embedding_kinds:
        embeddings = None
        if "text" in groups:
            embeddings, meta = load_embeddings(kind, table, fingerprints[kind])
            provenance.update({f"embeddings_{kind}_sha256": meta["npy_sha256"], "embedding_model": meta["model"],
                               "embedding_mode": meta["mode"], "embedding_precision": meta["precision"],
                               "embedding_dim": meta["dim"]})
        inputs[kind] = features(table, embeddings, groups)
    print(f"read {CLASSED_CSV}{' and ' + ' and '.join(embedding_kinds) + ' embeddings' if 'text' in groups else ''}: "
          f"{len(table)} rows, features {'+'.join(groups)} ({inputs[embedding_kinds[0]].width} columns)"
          + (f"; no column for {', '.join(left_out)} in the input" if left_out else ""))
    return table, info, groups, inputs, provenance


def training_settings(args):
    return {"n_estimators": args.n_estimators, "learning_rate": args.learning_rate, "max_depth": args.max_depth,
            "subsample": SUBSAMPLE, "colsample_bytree": COLSAMPLE_BYTREE,
            "early_stopping_rounds": EARLY_STOPPING_ROUNDS, "seed": args.seed}


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


def train_xgboost(task, settings, device, inputs, label, fit_rows, validation_rows=(), weight=None,
                  rounds=None, client=None):
    """new_xgboost(...).fit(X[fit_rows], label[fit_rows], sample_weight=weight[fit_rows],
    eval_set=[validation rows], sample_weight_eval_set=...), without ever building X: XGBoost's
    QuantileDMatrix is built from `inputs` a block of rows at a time (here, or on a Dask cluster's
    workers with `client`), the same bins as the sklearn call on this machine. Returns the same
    sklearn model, so the artifacts and 05 cannot tell how it was trained."""
    import xgboost

    model = new_xgboost(task, settings, device, rounds)
    params = model.get_xgb_params()
    if task == "classifier":
        params["num_class"] = len(CLASS_NAMES)  # what XGBClassifier.fit adds
    train, evals = quantile_matrices(inputs, label, weight, fit_rows, validation_rows, client)
    options = dict(evals=evals, early_stopping_rounds=model.early_stopping_rounds, verbose_eval=False)
    if client is None:
        booster = xgboost.train(params, train, model.get_num_boosting_rounds(), **options)
    else:
        import xgboost.dask

        booster = xgboost.dask.train(client, params, train, model.get_num_boosting_rounds(), **options)["booster"]
    model.load_model(bytearray(booster.save_raw("ubj")))  # sets what fit would: classes, best iteration
    return model


def quantile_matrices(inputs, label, weight, fit_rows, validation_rows, client=None):
    """The training QuantileDMatrix of `fit_rows` and, for early stopping, the validation one
    (binned with the training one's cuts), named as XGBClassifier.fit names it."""
    import xgboost

    def parts(rows):
        return {"label": label[rows], "weight": None if weight is None else weight[rows]}

    if client is not None:
        train = cluster_matrix(client, inputs, fit_rows, parts)
        return train, [(cluster_matrix(client, inputs, validation_rows, parts, ref=train), "validation_0")] \
            if len(validation_rows) else []

    class RowBlocks(xgboost.DataIter):
        """`rows` of `inputs`, a block at a time: XGBoost reads them twice (sketch, then bins)."""

        def __init__(self, rows):
            self.blocks, self.next_block = inputs.blocks(rows), 0
            super().__init__()

        def next(self, input_data):
            if self.next_block == len(self.blocks):
                return False
            rows = self.blocks[self.next_block]
            input_data(data=inputs.block(rows), **parts(rows))
            self.next_block += 1
            return True

        def reset(self):
            self.next_block = 0

    train = xgboost.QuantileDMatrix(RowBlocks(fit_rows))
    return train, [(xgboost.QuantileDMatrix(RowBlocks(validation_rows), ref=train), "validation_0")] \
        if len(validation_rows) else []


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


def training_split(table, seed):
    """(fit rows, validation rows): the training rows, less a seeded slice for early stopping and
    for fitting 04's combiner, the same in 03b and 04. A class whose training rows all fell into
    the slice gets them back, so every class is seen in fitting (tiny inputs)."""
    train_rows = np.flatnonzero((table["split"] == "train").to_numpy())
    rng = np.random.default_rng(seed)
    in_validation = np.zeros(len(train_rows), dtype=bool)
    in_validation[rng.permutation(len(train_rows))[: max(1, round(len(train_rows) * VALIDATION_FRACTION))]] = True
    classes = table["popularity_class"].to_numpy()[train_rows]
    for k in range(len(CLASS_NAMES)):
        if not (classes[~in_validation] == k).any():
            in_validation[classes == k] = False
    return train_rows[~in_validation], train_rows[in_validation]


# ------------------------------------------------------------------- routing (04 fits, 05 uses)

ROUTINGS = ("learned", "soft", "hard")
# The learned routing corrects the global regressor: its inputs are each specialist's difference
# from it, alone and weighted by its class probability, and the rare classes' probabilities. So
# a shift that moves every model alike moves the result alike (a time split shifts the level),
# and the ridge penalty shrinks towards the global regressor, the safe answer when the
# specialists add nothing.
COMBINER_INPUTS = [*[f"specialist_{name} - global" for name in CLASS_NAMES],
                   *[f"probability_{name} x (specialist_{name} - global)" for name in CLASS_NAMES],
                   *[f"probability_{name}" for name in CLASS_NAMES[1:]]]


def predict_parts(classifier, regressors, global_regressor, X_classifier, X_regressor):
    """What each trained model says about each row: the classifier's probabilities with its class
    weights divided out (they inflate rare classes on purpose, right for recall and wrong for a
    probability) and its class-weighted pick, each specialist's and the global regressor's log1p."""
    weighted = load_booster(classifier).inplace_predict(X_classifier)
    probabilities = weighted / np.asarray(classifier["meta"]["class_weight"])
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    return {"probabilities": probabilities, "predicted_class": weighted.argmax(axis=1),
            "specialist_log": np.column_stack([np.asarray(load_booster(r).inplace_predict(X_regressor), dtype=float)
                                               for r in regressors]),
            "global": np.asarray(load_booster(global_regressor).inplace_predict(X_regressor), dtype=float)}


def cluster_predict_parts(client, models, classifier_inputs, regressor_inputs):
    """predict_parts(*models, ...) for every row of the inputs, a block of rows per task on the
    cluster's workers: predictions are row by row, so the figures are the ones made here."""
    [shared] = client.scatter([models], broadcast=True)  # the models travel once to each worker
    rows = np.arange(classifier_inputs.rows)
    blocks = client.gather([client.submit(predict_block, shared, classifier_inputs.task(block),
                                          regressor_inputs.task(block), pure=False)
                            for block in classifier_inputs.blocks(rows)])
    return {key: np.concatenate([block[key] for block in blocks]) for key in blocks[0]}


def predict_block(models, classifier_task, regressor_task):
    return predict_parts(*models, feature_block(*classifier_task), feature_block(*regressor_task))


def combiner_inputs(parts):
    """The learned routing's inputs, in COMBINER_INPUTS order."""
    p, gap = parts["probabilities"], parts["specialist_log"] - parts["global"][:, None]
    return np.column_stack([gap, p * gap, p[:, 1:]])


def route(parts, combiner):
    """log1p(likes) by each routing: `hard` takes the classifier's pick's specialist (the original
    design), `soft` the probability-weighted mean of the specialists, `learned` the global
    regressor plus the correction 04 fitted on rows none of the models trained on."""
    s = parts["specialist_log"]
    return {"hard": s[np.arange(len(s)), parts["predicted_class"]],
            "soft": (parts["probabilities"] * s).sum(axis=1),
            "learned": parts["global"] + combiner_inputs(parts) @ np.asarray(combiner["coefficients"])
                       + combiner["intercept"]}


def parse_features(spec, available):
    """`--features` to a tuple of groups: a preset (seed, history, all) or a comma list of groups,
    where `-GROUP` drops one (`all,-text` is everything but the embeddings). Signal groups whose
    column the input lacked (`available`, from 01) are left out; returns (groups, left_out)."""
    groups = []
    for item in (part.strip() for part in spec.split(",")):
        names = FEATURE_PRESETS.get(item.lstrip("-"), (item.lstrip("-"),))
        unknown = [name for name in names if name not in FEATURE_GROUPS]
        if unknown or not item:
            fail(f"--features: unknown group {item!r}; use {', '.join(FEATURE_PRESETS)} or a comma list of "
                 f"{', '.join(FEATURE_GROUPS)}, '-GROUP' to drop one")
        groups = [g for g in groups if g not in names] if item.startswith("-") else \
            groups + [name for name in names if name not in groups]
    left_out = tuple(g for g in groups if g in SIGNAL_FEATURES and g not in available)
    groups = tuple(g for g in FEATURE_GROUPS if g in groups and g not in left_out)
    if not groups:
        fail(f"--features {spec!r} leaves no input for the models")
    return groups, left_out


def feature_columns(groups):
    """The table columns (history and signals) that `groups` feed to the models, in order."""
    return [column for group in groups if group != "text"
            for column in (HISTORY_FEATURES if group == "history" else SIGNAL_FEATURES[group])]


BLOCK_ROWS = 16_384  # rows per block of model input (26 MB at 403 float32 columns)


def feature_block(embeddings, embedding_rows, columns):
    """Model input rows: embeddings[embedding_rows] (an array, or the path of a .npy that is
    memory-mapped for this block only, so a big file never sits whole in this process), then the
    feature columns, as float32."""
    parts = []
    if embeddings is not None:
        source = np.load(embeddings, mmap_mode="r") if isinstance(embeddings, str) else embeddings
        parts.append(np.asarray(source[embedding_rows], dtype=np.float32))
    if columns is not None:
        parts.append(columns)
    return np.hstack(parts) if len(parts) > 1 else parts[0]


class Features:
    """The model input of some rows, never built whole: row i is the embeddings' row index[i]
    (row i without an index) beside row i of the table's feature columns. The embeddings are an
    array or a .npy path (what training reads, a block at a time, here or on a cluster's workers)."""

    def __init__(self, embeddings, columns, index=None):
        self.embeddings = embeddings.filename if isinstance(embeddings, np.memmap) else embeddings
        self.columns, self.index = columns, index
        self.rows = len(columns) if columns is not None else len(index if index is not None else embeddings)
        self.width = (0 if embeddings is None else embeddings.shape[1]) + (0 if columns is None else columns.shape[1])

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


def features(table, embeddings, groups, index=None):
    """The model input as Features: the embeddings (when `text` is in `groups`; row i of the
    table is the embeddings' row index[i]), then the table's feature columns."""
    columns = feature_columns(groups)
    return Features(embeddings if "text" in groups else None,
                    table[columns].to_numpy(dtype=np.float32) if columns else None, index)


def seconds_since(start):
    return f"{time.perf_counter() - start:.1f}s"


# ------------------------------------------------------------------------------ history features

HISTORY_SMOOTHING = 5  # pseudo-posts pulling a small account's mean towards the global mean


def history_columns(kind, count, total, median, prior_mean, prior_median):
    """The three history features of one key kind from a key's training count, sum and median of
    log1p(likes); a key with no tweets gets the prior, and a small one is pulled towards it."""
    count = np.asarray(count, dtype=float)
    return {f"{kind}_log_count": np.log1p(count),
            f"{kind}_mean_log_likes": (np.asarray(total, dtype=float) + HISTORY_SMOOTHING * prior_mean)
                                      / (count + HISTORY_SMOOTHING),
            f"{kind}_median_log_likes": np.where(count > 0, np.asarray(median, dtype=float), prior_median)}


def key_stats(stats, kind, keys):
    """Each key's row of `stats` (count, sum_log_likes, median_log_likes, first_day) for one kind;
    empty or unseen keys get count 0."""
    by_key = stats[stats["kind"] == kind].set_index("key")
    found = by_key.reindex(keys.where(keys != "").to_numpy())
    found["count"] = found["count"].fillna(0)
    found["sum_log_likes"] = found["sum_log_likes"].fillna(0)
    return found.set_index(keys.index)


def lookup_history(table, stats, prior):
    """Per-row history features from `stats` (per-account and per-company count, sum and median
    of log1p(likes) over training rows, as 01 writes them). Unknown or empty keys get count 0 and
    the global prior, so new accounts are handled the same way in training and prediction."""
    features = {}
    for kind, column in (("user", "username"), ("company", "company")):
        found = key_stats(stats, kind, table[column])
        features.update(history_columns(kind, found["count"], found["sum_log_likes"], found["median_log_likes"],
                                        prior["mean_log_likes"], prior["median_log_likes"]))
    return pd.DataFrame(features, index=table.index)[HISTORY_FEATURES]


# ------------------------------------------------------------------------------------- signals

LINK = r"<hyperlink>|https?://\S+"
MENTION = r"<mention>|@\w+"
HASHTAG = r"#\w+"
EMOJI = "[\U0001F000-\U0001FAFF\u2600-\u27BF\u2B50\u2B55\u2764]"
MEDIA_KINDS = ("Photo", "Video", "Gif")  # Adobe's `[Photo(...), Video(...)]`; VideoVariant( is no video
TRUE_WORDS, FALSE_WORDS = {"1", "true", "t", "yes", "y"}, {"0", "false", "f", "no", "n"}
SECONDS_PER_DAY = 86_400


def parse_dates(values):
    """Days since 1970 (UTC, float) from ISO 8601 text with or without a time zone (none means
    UTC), as Adobe's `2020-12-12 00:47:00+00:00` or `2012-10-29T08:23:56Z`; NaN where unreadable."""
    text = pd.Series(values, dtype=object).fillna("").astype(str).str.strip()
    parsed = pd.to_datetime(text.where(text != ""), utc=True, errors="coerce", format="ISO8601")
    seconds = (parsed - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
    return (seconds / SECONDS_PER_DAY).astype(float)


def surface_signals(content):
    """Counts a reader sees at a glance: length, words, links, mentions, hashtags, emoji, ? and !."""
    text = pd.Series(content, dtype=object).fillna("").astype(str)
    columns = [text.str.len(), text.str.split().str.len(), text.str.count(LINK), text.str.count(MENTION),
               text.str.count(HASHTAG), text.str.count(EMOJI), text.str.count(r"\?"), text.str.count("!"),
               text.str.match(r"\s*(<mention>|@\w)")]
    return pd.DataFrame(dict(zip(SIGNAL_FEATURES["surface"], columns)), index=text.index).astype(float)


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
