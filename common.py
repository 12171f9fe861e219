"""What every stage needs: the file names and which script makes each, the classes and their
quantiles, the seed, and the few helpers every stage uses (the one-line error, Ctrl-C's one line,
the command line and its argument types, `require`, checked JSON).

What two or more stages share beyond this lives in the tweetlikes package, a module per concern.
Every generated file goes to the current working directory; the scripts themselves (and the
embedded data/) are found relative to this file, so the pipeline runs from any folder.
"""
import argparse
import atexit
import errno
import hashlib
import json
import math
import os
import signal
import sys
import time
from pathlib import Path


def stop_interrupted(script, shutting_down=False):
    """Ctrl-C's one line and exit code (every write is atomic: finished work is intact, the rest left
    no trace); while Python shuts down, at once (an exception there would only be "ignored")."""
    print(f"\nerror: interrupted; rerun {script} to resume or redo it", file=sys.stderr)
    if shutting_down:
        sys.stdout.flush(), sys.stderr.flush(), os._exit(130)
    sys.exit(130)  # 128 + SIGINT, as shells report it


def _interrupted_while_starting(signum, frame):
    stop_interrupted(Path(sys.argv[0]).name)


# A stage started as a script (each imports this module first): Ctrl-C while it still imports
# numpy, pandas, xgboost (seconds) gets the one line too, not a traceback; run() hands Ctrl-C
# back to Python once main starts. Never in a process that merely imports this module (tests).
_SCRIPT = getattr(sys.modules.get("__main__"), "__file__", None)
_AS_SCRIPT = bool(_SCRIPT) and Path(_SCRIPT).resolve().parent == Path(__file__).resolve().parent
if _AS_SCRIPT and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
    signal.signal(signal.SIGINT, _interrupted_while_starting)

import numpy as np  # noqa: E402 (after the guard above)

PROJECT_DIR = Path(__file__).resolve().parent
DEFAULT_INPUT = PROJECT_DIR / "data" / "train_data.csv"

# Generated files (current working directory), with the script that makes each one.
CLASSED_CSV = "train_data_with_classes.csv"
THRESHOLDS_JSON = "class_thresholds.json"
HISTORY_CSV = "history_stats.csv"
EMBEDDINGS_CONTENT = "embeddings_content.npy"
EMBEDDINGS_COMBINED = "embeddings_combined.npy"
EMBEDDINGS_META = "embeddings_meta.json"
FINETUNED_SCORES = "text_finetuned.npy"  # 02 --finetune: the tuned MiniLM's out-of-fold scores
CLASSIFIER = "classifier_model_improved.joblib"
REGRESSOR = "regressor_model_class_{k}.joblib"
GLOBAL_REGRESSOR = "regressor_model_global.joblib"
COMBINER = "routing_combiner.json"
PREDICTIONS = "final_predictions.csv"
MAKERS = {path: script for script, paths in {
    "01_create_classes.py": (CLASSED_CSV, THRESHOLDS_JSON, HISTORY_CSV),
    "02_generate_embeddings.py": (EMBEDDINGS_CONTENT, EMBEDDINGS_COMBINED, EMBEDDINGS_META, FINETUNED_SCORES),
    "03b_train_classifier_improved.py": (CLASSIFIER,),
    "04_train_regressors.py": (*(REGRESSOR.format(k=k) for k in range(3)), GLOBAL_REGRESSOR, COMBINER),
}.items() for path in paths}

# Classes: 0 common (bottom 75%), 1 popular (75th-95th percentile), 2 viral (top 5%).
QUANTILES = (0.75, 0.95)
CLASS_NAMES = ("common", "popular", "viral")
CLASS_LABELS = list(range(len(CLASS_NAMES)))  # 0, 1, 2: what scikit-learn's figures take as `labels`
SEED = 42  # the default of every --seed: split, history folds, validation slice, XGBoost


def fail(message):
    """Stop with a one-line message, exit code 1: for what the user can fix (bad input, missing or stale files)."""
    raise SystemExit(f"error: {message}")


# Faults of the machine, not of the code: they deserve a line, not a traceback.
USER_FAULTS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM)


def run(main):
    """Each script's entry point. main() raises as usual (tests call it directly); here Ctrl-C
    and a full disk or read-only folder become one line on stderr and a nonzero exit code."""
    script = Path(main.__code__.co_filename).name
    if signal.getsignal(signal.SIGINT) is _interrupted_while_starting:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    # After main, Python shuts down (threads, exit handlers, modules) and restores Ctrl-C's default,
    # which kills without a word (exit 130 after a full receipt): a press gets the line until the
    # exit handlers main's work registered have run, and is ignored after (nothing is left to stop).
    if _AS_SCRIPT:
        atexit.register(signal.signal, signal.SIGINT, signal.SIG_IGN)
    try:
        main()
        if _AS_SCRIPT:
            signal.signal(signal.SIGINT, lambda *_: stop_interrupted(script, shutting_down=True))
    except KeyboardInterrupt:
        stop_interrupted(script)
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


def argument_parser(doc):
    """Every script's command line: its docstring's first paragraph, then each setting with its default."""
    return argparse.ArgumentParser(description=doc.split("\n\n")[0], formatter_class=_WithDefaults)


class _WithDefaults(argparse.ArgumentDefaultsHelpFormatter):
    """--help shows each setting's default, except where there is none or its help says it."""

    def _get_help_string(self, action):
        if action.default is None or "(default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


# argparse `type=`s for every numeric setting, so a bad value is refused before any work starts.
positive_int = _checked(int, lambda v: v > 0, "an integer > 0")
non_negative_int = _checked(int, lambda v: v >= 0, "an integer >= 0")
positive_float = _checked(float, lambda v: 0 < v < math.inf, "a finite number > 0")


def assign_classes(likes, thresholds):
    """0 common (likes <= low), 1 popular (low < likes <= high), 2 viral (likes > high)."""
    likes = np.asarray(likes, dtype=float)
    return (likes > thresholds[0]).astype(int) + (likes > thresholds[1]).astype(int)


def file_sha256(path):
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def maker(path):
    """The script that makes `path`, one of the pipeline's files (None for any other file)."""
    return MAKERS.get(Path(path).name)


def require(paths):
    """Fail before any expensive work if an input is missing, naming the script that makes it."""
    for path in paths:
        if not Path(path).exists():
            fail(f"{path} not found" + (f"; run {maker(path)} first" if maker(path) else ""))


def is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_fields(path, data, fields):
    """Fail in one line when a JSON file this pipeline wrote lacks a field or holds another kind of
    value there (edited by hand, or from another version), instead of failing later, deep inside."""
    for key, valid in fields.items():
        if key not in data or not valid(data[key]):
            fail(f"{path} has no valid `{key}` (edited, or written by another version); "
                 f"rerun {maker(path)}")


def read_json(path):
    """A JSON file this pipeline wrote, or a one-line error naming the script that remakes it."""
    require([path])
    try:
        data = json.loads(Path(path).read_text())
        problem = None if isinstance(data, dict) else "not a JSON object"
    except (json.JSONDecodeError, UnicodeDecodeError) as error:  # e.g. cut short by a full disk
        problem = error
    if problem:
        fail(f"{path} is damaged ({problem}); rerun {maker(path)}")
    return data


def seconds_since(start):
    return f"{time.perf_counter() - start:.1f}s"

