"""Stages 2-5 on a Dask cluster (--cluster), and the one-machine training that never builds the
feature matrix whole. The cluster is a real LocalCluster with two workers as threads of this
process (common.LOCAL_PROCESSES off): it starts in a fraction of a second."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import common
from conftest import PROJECT_DIR, run, stage

CLUSTER = ("--cluster", "local:2")
SMALL_CHUNK = 128  # texts per chunk, so the few hundred test tweets make several chunks


@pytest.fixture
def threads_cluster(monkeypatch):
    pytest.importorskip("distributed")
    monkeypatch.setattr(common, "LOCAL_PROCESSES", False)
    monkeypatch.setattr(stage("02_generate_embeddings"), "CHUNK_TEXTS", SMALL_CHUNK)


def run_on_cluster(*names):
    for name in names:
        run(name, *CLUSTER)


def test_cluster_address_is_checked():
    pytest.importorskip("distributed")
    for good in ("local", "local:3", "tcp://10.0.0.5:8786"):
        assert common.cluster_address(good) == good
    for bad in ("local:0", "local:two"):
        with pytest.raises(Exception, match="expected an integer > 0"):
            common.cluster_address(bad)


class FakeClient:
    def __init__(self, answers):
        self.answers = answers

    def run(self, function, *args):
        function(*args)  # as a worker would: the check file must exist while it runs
        return self.answers


def test_workers_must_share_the_working_directory(workdir):
    with pytest.raises(SystemExit, match=r"worker\(s\) tcp://a:1, tcp://b:1 cannot read .* on a filesystem every worker shares"):
        common.check_workers(FakeClient({"tcp://a:1": (None, True), "tcp://b:1": (None, True)}))
    assert not list(workdir.iterdir())  # the check file is gone again


def test_blockwise_training_equals_sklearn_fit(workdir, monkeypatch):
    """train_xgboost bins the rows a block at a time from the .npy file: same model as fit()."""
    monkeypatch.setattr(common, "BLOCK_ROWS", 300)
    rng = np.random.default_rng(0)
    embeddings, columns = rng.normal(size=(2000, 16)).astype(np.float32), rng.normal(size=(2000, 3)).astype(np.float32)
    columns[rng.random(2000) < 0.1, 0] = np.nan
    np.save("e.npy", embeddings)
    inputs = common.Features(np.load("e.npy", mmap_mode="r"), columns)
    X = np.hstack([embeddings, columns])
    y = (X[:, 0] + X[:, 16] > 0).astype(int) + (X[:, 1] > 1)
    weight = np.array([0.5, 1.0, 3.0])[y]
    fit_rows, validation_rows = np.arange(1800), np.arange(1800, 2000)
    settings = {**common.training_settings(type("Args", (), {"n_estimators": 60, "learning_rate": 0.1,
                                                             "max_depth": 4, "seed": 1})),
                "early_stopping_rounds": 5}
    reference = common.new_xgboost("classifier", settings, "cpu")
    reference.fit(X[fit_rows], y[fit_rows], sample_weight=weight[fit_rows], eval_set=[(X[validation_rows], y[validation_rows])],
                  sample_weight_eval_set=[weight[validation_rows]], verbose=False)
    model = common.train_xgboost("classifier", settings, "cpu", inputs, y, fit_rows, validation_rows, weight=weight)
    assert type(model) is type(reference) and model.best_iteration == reference.best_iteration
    assert np.array_equal(model.predict_proba(X), reference.predict_proba(X))
    rows = rng.permutation(2000)[:700]  # unsorted rows, no early stopping: 04's tiny-class path
    reference = common.new_xgboost("regressor", settings, "cpu", rounds=20).fit(X[rows], X[rows, 2])
    model = common.train_xgboost("regressor", settings, "cpu", inputs, X[:, 2], rows, rounds=20)
    assert np.array_equal(model.predict(X), reference.predict(X))
    assert np.array_equal(common.predict_rows(model.predict, inputs, rows), reference.predict(X[rows]))


def test_without_cluster_dask_is_never_imported(pipeline_copy):
    code = ("import sys, importlib; sys.path[:0] = [sys.argv[1]]\n"
            "for name in ('02_generate_embeddings', '03b_train_classifier_improved', '04_train_regressors',"
            " '05_predict_likes'):\n"
            "    importlib.import_module(name).main(['--no-plots'] if name.startswith('05') else [])\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))")
    done = subprocess.run([sys.executable, "-c", code, str(PROJECT_DIR)], cwd=pipeline_copy, capture_output=True,
                          text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_pipeline_on_cluster_matches_one_machine(small_csv, pipeline_dir, workdir, threads_cluster):
    run("01_create_classes", "--input", small_csv)
    run_on_cluster("02_generate_embeddings", "03b_train_classifier_improved", "04_train_regressors",
                   "05_predict_likes")
    for name in (common.EMBEDDINGS_CONTENT, common.EMBEDDINGS_COMBINED):
        assert np.abs(np.load(name) - np.load(pipeline_dir / name)).max() <= 1e-6
    meta = json.loads((workdir / common.EMBEDDINGS_META).read_text())
    assert meta["content"]["cluster"] == {"address": "local:2", "workers": 2}
    assert common.load_artifact(common.CLASSIFIER, {})["meta"]["cluster"]["workers"] == 2
    here = json.loads((workdir / "metrics.json").read_text())
    there = json.loads((pipeline_dir / "metrics.json").read_text())
    assert here["settings"]["cluster"]["address"] == "local:2"
    for method, scores in there["regression"].items():
        assert abs(here["regression"][method]["log_rmse"] - scores["log_rmse"]) <= 0.03, method
    first = (workdir / common.PREDICTIONS).read_bytes()
    run_on_cluster("03b_train_classifier_improved", "04_train_regressors", "05_predict_likes")
    assert (workdir / common.PREDICTIONS).read_bytes() == first  # a second cluster run: the same
    # Prediction by partitions gives what one machine gives, from the same models.
    for path in pipeline_dir.iterdir():
        if path.suffix in (".joblib", ".json", ".csv", ".npy") and path.name != common.PREDICTIONS:
            (workdir / path.name).write_bytes(path.read_bytes())
    run("05_predict_likes", *CLUSTER)
    assert (workdir / common.PREDICTIONS).read_bytes() == (pipeline_dir / common.PREDICTIONS).read_bytes()


def test_cluster_encode_resumes_after_a_lost_worker(small_csv, pipeline_dir, workdir, threads_cluster,
                                                    monkeypatch, capsys):
    stage2 = stage("02_generate_embeddings")
    run("01_create_classes", "--input", small_csv)
    encode_part = stage2.encode_part

    # Tasks travel to the workers by value, so these report through files, not variables.
    def dies_after_two(texts, path, *args):
        if len(list(Path(path).parent.glob("part_*.npy"))) >= 2:
            raise RuntimeError("worker lost")
        encode_part(texts, path, *args)

    def logged(texts, path, *args):
        (Path(path).parents[2] / f"encoded_{Path(path).name}").touch()
        encode_part(texts, path, *args)

    monkeypatch.setattr(stage2, "encode_part", dies_after_two)
    with pytest.raises(RuntimeError, match="worker lost"):
        run("02_generate_embeddings", *CLUSTER)
    finished = {path.name for path in stage2.CACHE_DIR.glob("*/part_*.npy")}
    assert len(finished) >= 2 and not (workdir / common.EMBEDDINGS_CONTENT).exists()
    monkeypatch.setattr(stage2, "encode_part", logged)
    capsys.readouterr()
    run("02_generate_embeddings", *CLUSTER)
    assert f"resuming from {len(finished)} finished chunks" in capsys.readouterr().out
    encoded = {path.name.removeprefix("encoded_") for path in workdir.glob("encoded_part_*.npy")}
    assert not finished & encoded  # no finished chunk is encoded again
    table, _ = common.load_classed()
    unique = len(set(table["content"]) | set(common.combined_texts(table)))
    assert len(finished | encoded) == -(-unique // stage2.chunk_length(unique, stage2.BATCH_SIZE["cpu"]))
    for name in (common.EMBEDDINGS_CONTENT, common.EMBEDDINGS_COMBINED):
        assert np.abs(np.load(name) - np.load(pipeline_dir / name)).max() <= 1e-6
