"""End to end: 01 to 05 on a few hundred synthetic tweets with the real MiniLM model."""
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import common
from conftest import SMALL_ROWS, STAGES, run, run_all, stage


def test_every_script_answers_help(capsys):
    for name in STAGES:
        with pytest.raises(SystemExit) as stopped:
            run(name, "--help")
        assert stopped.value.code == 0
        assert "usage:" in capsys.readouterr().out


def test_files_shapes_and_alignment(pipeline_dir, monkeypatch):
    monkeypatch.chdir(pipeline_dir)
    table, info = common.load_classed()
    assert len(table) == SMALL_ROWS
    assert set(table["split"]) == {"train", "test"}
    assert set(table["popularity_class"]) == {0, 1, 2}
    meta = json.loads((pipeline_dir / common.EMBEDDINGS_META).read_text())
    for kind, name in (("content", common.EMBEDDINGS_CONTENT), ("combined", common.EMBEDDINGS_COMBINED)):
        matrix = np.load(pipeline_dir / name)
        assert matrix.shape == (SMALL_ROWS, common.EMBEDDING_DIM) and matrix.dtype == np.float32
        assert meta[kind]["model"] == common.DEFAULT_MODEL and meta[kind]["mode"] == "exact"
        assert meta[kind]["precision"] in ("openvino-fp32", "fp32")
        assert np.allclose(np.linalg.norm(matrix, axis=1), 1, atol=1e-4)  # MiniLM normalises
    # Row alignment: a few rows re-encoded directly with the model match the stored rows.
    model = stage("02_generate_embeddings").load_sentence_model(common.DEFAULT_MODEL, "cpu")
    rows = [0, 7, SMALL_ROWS // 2, SMALL_ROWS - 1]
    content = np.load(pipeline_dir / common.EMBEDDINGS_CONTENT)[rows]
    combined = np.load(pipeline_dir / common.EMBEDDINGS_COMBINED)[rows]
    direct_content = model.encode(list(table["content"].iloc[rows]))
    direct_combined = model.encode([common.combined_texts(table)[i] for i in rows])
    # Exact means float32 all the way: equal to plain encode up to rounding (float16 weights: 3e-4).
    assert np.abs(content - direct_content).max() < 1e-5
    assert np.abs(combined - direct_combined).max() < 1e-5
    assert np.max(np.sum(content * direct_combined, axis=1)) < 0.999  # the two files differ


def test_predictions_cover_test_rows(pipeline_dir):
    table = pd.read_csv(pipeline_dir / common.CLASSED_CSV)
    predictions = pd.read_csv(pipeline_dir / common.PREDICTIONS)
    test = table[table["split"] == "test"].reset_index(drop=True)
    assert len(predictions) == len(test)
    assert (predictions["id"] == test["id"]).all() and (predictions["likes"] == test["likes"]).all()
    for column in ("content", "company", "username", "predicted_class", "probability_common",
                   "probability_popular", "probability_viral", "predicted_likes"):
        assert column in predictions.columns
    assert np.isfinite(predictions["predicted_likes"]).all() and (predictions["predicted_likes"] >= 0).all()
    probabilities = predictions[["probability_common", "probability_popular", "probability_viral"]]
    assert np.allclose(probabilities.sum(axis=1), 1, atol=2e-3)
    assert set(predictions["predicted_class"]) <= {0, 1, 2}


def test_models_record_their_inputs(pipeline_dir, monkeypatch):
    monkeypatch.chdir(pipeline_dir)
    table, info = common.load_classed()
    n_train = int((table["split"] == "train").sum())
    classifier = common.load_artifact(common.CLASSIFIER, {"classed_csv_sha256": info["classed_csv_sha256"]})
    assert classifier["meta"]["train_rows"] == n_train
    assert classifier["meta"]["embedding_model"] == common.DEFAULT_MODEL
    assert classifier["meta"]["thresholds"] == info["thresholds"]
    for k in range(3):
        regressor = common.load_artifact(common.REGRESSOR.format(k=k), {"popularity_class": k})
        in_class = (table["split"] == "train") & (table["popularity_class"] == k)
        assert regressor["meta"]["train_rows"] == int(in_class.sum())


def test_no_test_row_reaches_training(small_csv, pipeline_dir, workdir):
    """Scramble the likes of the test rows only: every trained model must come out identical,
    since nothing fitted may depend on a test row."""
    table = pd.read_csv(pipeline_dir / common.CLASSED_CSV)
    is_test = (table["split"] == "test").to_numpy()
    tweets = pd.read_csv(small_csv)
    rng = np.random.default_rng(0)
    tweets.loc[is_test, "likes"] = rng.integers(0, 10**6, size=is_test.sum())
    tweets.to_csv(workdir / "scrambled.csv", index=False)
    for name in (common.EMBEDDINGS_CONTENT, common.EMBEDDINGS_COMBINED, common.EMBEDDINGS_META):
        (workdir / name).write_bytes((pipeline_dir / name).read_bytes())  # same texts: reused
    run_all("--input", workdir / "scrambled.csv")
    scrambled = pd.read_csv(workdir / common.CLASSED_CSV)
    assert (scrambled["split"] == table["split"]).all()
    assert json.loads((workdir / common.THRESHOLDS_JSON).read_text())["thresholds"] == \
        json.loads((pipeline_dir / common.THRESHOLDS_JSON).read_text())["thresholds"]
    train = ~is_test
    pd.testing.assert_frame_equal(scrambled[train][common.HISTORY_FEATURES], table[train][common.HISTORY_FEATURES])
    before = pd.read_csv(pipeline_dir / common.PREDICTIONS)
    after = pd.read_csv(workdir / common.PREDICTIONS)
    for column in ("predicted_class", "probability_viral", "predicted_likes"):
        assert (before[column] == after[column]).all()


def test_new_tweets_without_likes(pipeline_copy, capsys):
    new = pd.DataFrame({
        "username": ["adobe", "someone_new", ""],
        "inferred company": ["adobe", "unknown co", ""],
        "content": ["Introducing the new Photoshop <hyperlink> #Adobe", "<mention> sorry to hear that 😞", ""],
        "extra column": [1, 2, 3],
    })
    new.to_csv(pipeline_copy / "new.csv", index=False)
    run("05_predict_likes", "--input", "new.csv", "--output", "new_predictions.csv")
    predictions = pd.read_csv(pipeline_copy / "new_predictions.csv", keep_default_na=False)
    assert len(predictions) == 3
    assert list(predictions["extra column"]) == [1, 2, 3]
    assert (predictions["predicted_likes"] >= 0).all() and np.isfinite(predictions["predicted_likes"]).all()
    # Nothing to score without likes, and the last run's scores must not pass for these.
    assert "removed metrics.json, predicted_vs_actual.png, confusion_matrix.png of an earlier run" in \
        capsys.readouterr().out
    assert not (pipeline_copy / "metrics.json").exists() and not list(pipeline_copy.glob("*.png"))


def test_company_column_name_is_accepted(small_csv, workdir):
    tweets = pd.read_csv(small_csv).rename(columns={"inferred company": "company"})
    tweets.to_csv(workdir / "renamed.csv", index=False)
    run("01_create_classes", "--input", "renamed.csv")
    assert "company" in pd.read_csv(workdir / common.CLASSED_CSV).columns


def test_a_draft_is_predicted_without_torch(pipeline_copy):
    """With the model converted (the pipeline above did it), predicting one new tweet loads neither
    torch nor sentence-transformers, prints what the history features knew, and leaves the last
    run's predictions and report as they were."""
    evaluation = {path: path.read_bytes() for path in pipeline_copy.iterdir()
                  if path.name in (common.PREDICTIONS, "metrics.json")}
    script = ("import importlib, sys; sys.path.insert(0, sys.argv[1]); "
              "importlib.import_module('05_predict_likes').main(['--text', 'New Photoshop <hyperlink>', "
              "'--username', 'adobe', '--company', 'a company never seen']); "
              "print(sorted(name for name in ('torch', 'sentence_transformers', 'transformers', "
              "'matplotlib') if name in sys.modules))")
    done = subprocess.run([sys.executable, "-c", script, str(common.PROJECT_DIR)], cwd=pipeline_copy,
                          capture_output=True, text=True, check=True)
    assert done.stdout.splitlines()[-1] == "[]"
    assert "username 'adobe': seen in training" in done.stdout
    assert "company 'a company never seen': unseen in training" in done.stdout
    assert "predicted likes: " in done.stdout and "class probabilities: common " in done.stdout
    assert len(evaluation) == 2 and all(path.read_bytes() == data for path, data in evaluation.items())


def test_a_draft_is_written_only_when_asked(pipeline_copy):
    report = (pipeline_copy / "metrics.json").read_bytes()
    run("05_predict_likes", "--text", "New Photoshop <hyperlink>", "--username", "adobe", "--output", "draft.csv")
    assert (pipeline_copy / "metrics.json").read_bytes() == report  # the test run's, still beside its predictions
    draft = pd.read_csv(pipeline_copy / "draft.csv")
    assert len(draft) == 1 and draft["content"].iloc[0] == "New Photoshop <hyperlink>"
    assert draft["predicted_likes"].iloc[0] >= 0 and np.isclose(draft.filter(like="probability_").sum(axis=1), 1,
                                                                atol=1e-3).all()
