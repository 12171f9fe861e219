"""What the five pipeline scripts share: file names, class quantiles, seeds, the text template,
the embedding model and device, input reading, provenance checks and atomic writes.

Every generated file goes to the current working directory; the scripts themselves (and the
embedded data/) are found relative to this file, so the pipeline runs from any folder.
"""
import hashlib
import json
import os
import sys
import tempfile
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
PREDICTIONS = "final_predictions.csv"
MAKERS = {
    CLASSED_CSV: "01_create_classes.py", THRESHOLDS_JSON: "01_create_classes.py",
    HISTORY_CSV: "01_create_classes.py",
    EMBEDDINGS_CONTENT: "02_generate_embeddings.py", EMBEDDINGS_COMBINED: "02_generate_embeddings.py",
    EMBEDDINGS_META: "02_generate_embeddings.py",
    CLASSIFIER: "03b_train_classifier_improved.py",
    GLOBAL_REGRESSOR: "04_train_regressors.py",
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

# Model inputs: `seed` is the original design (classifier on content embeddings, regressors on
# combined embeddings); `history` adds the history features to both. The classifier keeps the
# content embeddings: on combined ones it learns account names that do not carry over to new
# accounts (see the README's figures).
FEATURE_SETS = ("seed", "history")
DEFAULT_FEATURES = "history"
CLASSIFIER_EMBEDDINGS = {"seed": "content", "history": "content"}

DEFAULT_MODEL = "all-MiniLM-L6-v2"
EMBEDDING_DIM = 384


def fail(message):
    """Stop with a one-line message and exit code 1: for problems the user can fix (bad input,
    missing or stale files), which deserve a sentence, not a traceback."""
    raise SystemExit(f"error: {message}")


# ---------------------------------------------------------------------------------- input tables

def read_table(path, required=("content", "username", "likes")):
    """Read a CSV or .xlsx export, normalise the company column to `company` and the text columns
    to plain strings (missing -> ""). `required` may omit `likes` for new tweets."""
    path = Path(path)
    if not path.is_file():
        fail(f"input file not found: {path}")
    try:
        if path.suffix.lower() in (".xlsx", ".xls"):
            table = pd.read_excel(path, dtype=str)
        else:
            # Everything as text, so ids and usernames like "007" pass through unchanged;
            # utf-8-sig strips a byte-order mark; only empty cells are missing ("NA" is a name).
            table = pd.read_csv(path, dtype=str, encoding="utf-8-sig", keep_default_na=False,
                                na_values=[""])
    except pd.errors.EmptyDataError:
        fail(f"{path} is empty: expected a header row and tweets")
    except UnicodeDecodeError as error:
        fail(f"{path} is not UTF-8 text ({error.reason} at byte {error.start}); "
             "re-save it as UTF-8 CSV")
    except (pd.errors.ParserError, ValueError, OSError, zipfile.BadZipFile) as error:
        fail(f"could not read {path}: {error}")
    table.columns = [str(column).strip() for column in table.columns]
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
    return table.reset_index(drop=True)


def assign_classes(likes, thresholds):
    """0 common (likes <= low), 1 popular (low < likes <= high), 2 viral (likes > high)."""
    likes = np.asarray(likes, dtype=float)
    return (likes > thresholds[0]).astype(int) + (likes > thresholds[1]).astype(int)


def clean_likes(likes):
    """Likes as float; text, negative and missing counts become NaN (the caller decides)."""
    numeric = pd.to_numeric(likes, errors="coerce").astype(float)
    return numeric.where(numeric >= 0)


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
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8", "surrogatepass"))
        digest.update(b"\0")
    return digest.hexdigest()


def require(paths):
    """Fail before any expensive work if an input is missing, naming the script that makes it."""
    for path in paths:
        if not Path(path).exists():
            maker = MAKERS.get(Path(path).name)
            hint = f"; run {maker} first" if maker else ""
            fail(f"{path} not found{hint}")


def load_classed():
    """The classed CSV written by 01, with its thresholds and the fingerprint others check."""
    require([CLASSED_CSV, THRESHOLDS_JSON])
    info = json.loads(Path(THRESHOLDS_JSON).read_text())
    sha = file_sha256(CLASSED_CSV)
    if info.get("classed_csv_sha256") != sha:
        fail(f"{CLASSED_CSV} changed after {THRESHOLDS_JSON} was written; "
             "rerun 01_create_classes.py")
    table = pd.read_csv(CLASSED_CSV, dtype=str, keep_default_na=False, na_values=[""])
    for column in TEXT_COLUMNS:
        table[column] = table[column].fillna("")
    table["likes"] = table["likes"].astype(float)
    table["popularity_class"] = table["popularity_class"].astype(int)
    table[HISTORY_FEATURES] = table[HISTORY_FEATURES].astype(float)
    return table, info


def load_embeddings(kind, table):
    """Memory-map embeddings_{kind}.npy and check that it encodes exactly the texts of `table`."""
    path = EMBEDDINGS_CONTENT if kind == "content" else EMBEDDINGS_COMBINED
    require([path, EMBEDDINGS_META])
    meta = json.loads(Path(EMBEDDINGS_META).read_text()).get(kind, {})
    if not {"texts_sha256", "model", "mode", "precision", "dim"} <= meta.keys():
        fail(f"{EMBEDDINGS_META} lacks a complete record of {path} (an older or damaged file); "
             "rerun 02_generate_embeddings.py")
    texts = list(table["content"]) if kind == "content" else combined_texts(table)
    if meta["texts_sha256"] != texts_fingerprint(texts):
        fail(f"{path} was made from other texts than {CLASSED_CSV} holds now; "
             "rerun 02_generate_embeddings.py")
    matrix = np.load(path, mmap_mode="r")
    if matrix.shape != (len(table), meta["dim"]):
        fail(f"{path} has shape {matrix.shape}, expected ({len(table)}, {meta['dim']}); "
             "rerun 02_generate_embeddings.py")
    return matrix, meta


def training_provenance(info, embeddings_meta):
    """What a trained model records about its inputs; 05 checks it against the current files."""
    return {"classed_csv_sha256": info["classed_csv_sha256"], "thresholds": info["thresholds"],
            "split": info["split"], "rows": info["rows"], "embeddings_sha256": embeddings_meta["texts_sha256"],
            "embedding_model": embeddings_meta["model"], "embedding_mode": embeddings_meta["mode"],
            "embedding_precision": embeddings_meta["precision"],
            "embedding_dim": embeddings_meta["dim"]}


def load_artifact(path, expect):
    """Load one of our .joblib bundles and check its recorded provenance against `expect`.
    joblib runs code when loading: only ever load files this pipeline wrote."""
    import joblib

    require([path])
    bundle = joblib.load(path)
    if not isinstance(bundle, dict) or "model" not in bundle or "meta" not in bundle:
        fail(f"{path} is not an artifact of this pipeline; rerun {MAKERS.get(Path(path).name)}")
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

def atomic_write(path, write):
    """Call write(tmp_path), then rename onto `path`: a failure never leaves a half-written file
    and never destroys the previous good one."""
    path = Path(path)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def save_json(path, data):
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(data, indent=2) + "\n"))


def save_csv(path, table):
    atomic_write(path, lambda tmp: table.to_csv(tmp, index=False))


def save_npy(path, array):
    def write(tmp):
        with open(tmp, "wb") as handle:
            np.save(handle, array)
    atomic_write(path, write)


def save_artifact(path, model, meta):
    import joblib

    atomic_write(path, lambda tmp: joblib.dump({"model": model, "meta": meta}, tmp))


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


def xgboost_device():
    """XGBoost trains on CUDA only if its wheel was built with CUDA (the `xgboost` package,
    not `xgboost-cpu`) and a GPU is present."""
    import xgboost

    if not xgboost.build_info().get("USE_CUDA"):
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def validation_mask(n_rows, seed=SEED):
    """A seeded slice of the training rows for early stopping; the same in 03 and 04."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(n_rows, dtype=bool)
    mask[rng.permutation(n_rows)[: max(1, round(n_rows * VALIDATION_FRACTION))]] = True
    return mask


def feature_matrix(table, embeddings, features):
    """The model input: embeddings alone (`seed`), or with the history features (`history`)."""
    if features == "seed":
        return np.asarray(embeddings, dtype=np.float32)
    history = table[HISTORY_FEATURES].to_numpy(dtype=np.float32)
    return np.hstack([np.asarray(embeddings, dtype=np.float32), history])


def seconds_since(start):
    return f"{time.perf_counter() - start:.1f}s"


# ------------------------------------------------------------------------------ history features

HISTORY_SMOOTHING = 5  # pseudo-posts pulling a small account's mean towards the global mean


def lookup_history(table, stats, prior):
    """Per-row history features from `stats` (per-account and per-company count, sum and median
    of log1p(likes) over training rows, as 01 writes them). Unknown or empty keys get count 0 and
    the global prior, so new accounts are handled the same way in training and prediction."""
    features = {}
    for kind, column in (("user", "username"), ("company", "company")):
        by_key = stats[stats["kind"] == kind].set_index("key")
        keys = table[column].where(table[column] != "")
        count = keys.map(by_key["count"]).fillna(0).to_numpy(dtype=float)
        total = keys.map(by_key["sum_log_likes"]).fillna(0).to_numpy(dtype=float)
        median = keys.map(by_key["median_log_likes"]).fillna(prior["median_log_likes"])
        features[f"{kind}_log_count"] = np.log1p(count)
        features[f"{kind}_mean_log_likes"] = ((total + HISTORY_SMOOTHING * prior["mean_log_likes"])
                                              / (count + HISTORY_SMOOTHING))
        features[f"{kind}_median_log_likes"] = median.to_numpy(dtype=float)
    return pd.DataFrame(features, index=table.index)[HISTORY_FEATURES]
