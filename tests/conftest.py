"""Shared fixtures: the scripts are loaded by module name and run in-process in a temporary
folder, on a small deterministic sample made by data/make_synthetic_tweets.py, with the real
MiniLM model."""
import importlib
import os
import shutil
import sys
from pathlib import Path

import pytest

PROJECT_DIR = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(PROJECT_DIR), str(PROJECT_DIR / "data")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the model comes from a package, never a hub
STAGES = ("01_create_classes", "02_generate_embeddings", "03b_train_classifier_improved",
          "04_train_regressors", "05_predict_likes")
SMALL_ROWS = 400


# Every test in these modules encodes tweets with MiniLM, and every test that reads the session's
# pipeline run waits for it: both are slow.
SLOW_MODULES = ("test_embeddings",)
SLOW_FIXTURES = ("pipeline_dir",)


def pytest_collection_modifyitems(items):
    for item in items:
        if item.module.__name__ in SLOW_MODULES or set(SLOW_FIXTURES) & set(item.fixturenames):
            item.add_marker(pytest.mark.slow)


def stage(name):
    return importlib.import_module(name)


def run(name, *args):
    """Run one script's main in the current folder, as `python NAME.py ARGS` would."""
    return stage(name).main([str(a) for a in args])


def run_all(*input_args):
    run("01_create_classes", *input_args)
    for name in STAGES[1:]:
        run(name)


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


@pytest.fixture
def pipeline_copy(pipeline_dir, workdir):
    """A private copy of the finished pipeline folder, for tests that change files."""
    for path in pipeline_dir.iterdir():
        if path.is_file():
            shutil.copy2(path, workdir / path.name)
    return workdir
