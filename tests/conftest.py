"""Shared fixtures and helpers: the scripts are loaded by module name and run in-process in a
temporary folder, on a small deterministic sample made by data/make_synthetic_tweets.py, with the
real MiniLM model.

A test that runs the model or a pipeline carries `@pytest.mark.slow` itself (or its module's
`pytestmark`); collection fails if one that reads the session's pipeline run (pipeline_dir,
pipeline_copy) lacks it, so `-m "not slow"` never waits for that run."""
import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

PROJECT_DIR = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(PROJECT_DIR), str(PROJECT_DIR / "data")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the model comes from a package, never a hub
# OpenMP threads (XGBoost's, torch's) that wait by spinning crawl when the cores are shared with
# other work: a 30-round fit took 4 s instead of 0.04 s beside two busy processes on 2 cores.
# Waiting asleep changes no result. Set before anything loads libgomp (subprocesses inherit it).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
STAGES = ("01_create_classes", "02_generate_embeddings", "03b_train_classifier_improved",
          "04_train_regressors", "05_predict_likes")
SMALL_ROWS = 400
EMBEDDING_DIM = 384  # all-MiniLM-L6-v2's output size
PIPELINE_FIXTURES = ("pipeline_dir", "pipeline_copy")  # they wait for the session's pipeline run


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    unmarked = [item.nodeid for item in items
                if set(PIPELINE_FIXTURES) & set(item.fixturenames) and item.get_closest_marker("slow") is None]
    if unmarked:
        raise pytest.UsageError(f"these tests use {' or '.join(PIPELINE_FIXTURES)} but are not marked "
                                "@pytest.mark.slow: " + ", ".join(unmarked))


def stage(name):
    return importlib.import_module(name)


def run(name, *args):
    """Run one script's main in the current folder, as `python NAME.py ARGS` would."""
    return stage(name).main([str(a) for a in args])


def run_all(*input_args):
    run("01_create_classes", *input_args)
    for name in STAGES[1:]:
        run(name)


def expect_error(match, name, *args):
    """Run a script that must stop with a one-line `error: ...` containing `match`; the message."""
    with pytest.raises(SystemExit) as stopped:
        run(name, *args)
    message = str(stopped.value.code)
    assert message.startswith("error: ") and match in message, message
    return message


def write_csv(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding))
    return path


def sample(small_csv, rows=200):
    """The first `rows` tweets of the small sample, every cell as read (empty stays "")."""
    return pd.read_csv(small_csv, keep_default_na=False).head(rows)


def read_only(folder, monkeypatch):
    """Make `folder` read-only as access(2) answers for it: root ignores the permission bits, so
    the answer access(2) gives in a read-only folder is stood in."""
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: real_access(path, mode) and not (
        mode & os.W_OK and os.path.samefile(path, folder)))


@pytest.fixture(scope="session")
def small_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "tweets.csv"
    importlib.import_module("make_synthetic_tweets").main(["--rows", str(SMALL_ROWS), "--output", str(path)])
    return path


@pytest.fixture(scope="session")
def pipeline_dir(small_csv, tmp_path_factory):
    """A folder where 01 to 05 ran once on the small sample; tests only read from it."""
    folder = tmp_path_factory.mktemp("pipeline")
    previous = os.getcwd()
    os.chdir(folder)
    try:
        run_all("--input", small_csv)
    finally:
        os.chdir(previous)
    return folder


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def copy_files(source, target):
    for path in source.iterdir():
        if path.is_file():
            shutil.copy2(path, target / path.name)
    return target


@pytest.fixture
def pipeline_copy(pipeline_dir, workdir):
    """A private copy of the finished pipeline folder, for tests that change files."""
    return copy_files(pipeline_dir, workdir)


def strict_json(text):
    """json.loads that refuses NaN and Infinity, as strict readers do."""
    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")
    return json.loads(text, parse_constant=refuse)


def tweets_with_copies(n=300, copies=100, seed=0):
    """n distinct tweets, then `copies` of them again (same content and username, other likes,
    posted up to a month later): reposts."""
    rng = np.random.default_rng(seed)
    table = pd.DataFrame({"content": [f"tweet {i}" for i in range(n)], "username": [f"user{i % 7}" for i in range(n)],
                          "company": [f"co{i % 3}" for i in range(n)], "likes": rng.integers(0, 10_000, size=n),
                          "date": [(pd.Timestamp("2021-01-01") + pd.Timedelta(hours=int(h))).isoformat()
                                   for h in rng.permutation(n)]})
    again = table.sample(copies, random_state=seed).assign(likes=rng.integers(0, 10_000, size=copies))
    again["date"] = [(pd.Timestamp(day) + pd.Timedelta(days=int(k))).isoformat()
                     for day, k in zip(again["date"], rng.integers(0, 30, size=copies))]
    return pd.concat([table, again], ignore_index=True)


def run_python(code, *args, cwd=None, timeout=300):
    """Run `code` in a fresh Python, started as a shell starts one (Ctrl-C not ignored)."""
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


# A stage run as `python SCRIPT` would run it, which sends itself a real SIGINT at the Nth block of
# model input it reads (XGBoost's DataIter asks for them while it builds its QuantileDMatrix),
# with blocks of 32 rows so the small sample makes dozens of them.
CTRL_C_AT_BLOCK = """
import os, runpy, signal, sys
script, nth = sys.argv[1], int(sys.argv[2])
sys.path.insert(0, os.path.dirname(script))
from tweetlikes import features
features.BLOCK_ROWS = 32
calls, block = [0], features.ModelInput.block
def counted(self, rows):
    calls[0] += 1
    if calls[0] == nth:
        os.kill(os.getpid(), signal.SIGINT)
    return block(self, rows)
features.ModelInput.block = counted
sys.argv = [script]
runpy.run_path(script, run_name="__main__")
"""


def interrupt_at_blocks(folder, script, blocks):
    """Press Ctrl-C in `script`, run in `folder`, at each of its `blocks` of model input in turn:
    each run must end in the one line and exit code 130, and leave every file as it was."""
    before = {path.name: path.read_bytes() for path in folder.iterdir() if path.is_file()}
    for nth in blocks:
        done = run_python(CTRL_C_AT_BLOCK, PROJECT_DIR / script, nth, cwd=folder)
        assert done.returncode == 130, (nth, done.stderr)
        assert done.stderr.strip() == f"error: interrupted; rerun {script} to resume or redo it", (nth, done.stderr)
    assert {path.name: path.read_bytes() for path in folder.iterdir() if path.is_file()} == before
