"""The whole run: 01 to 05 on a few hundred synthetic tweets with the real MiniLM model (the files,
their shapes and alignment, the predictions, what the models record), nothing fitted depends on a
test row, two runs give the same predictions, and a tiny input runs without embeddings."""
import json
import shutil

import numpy as np
import pandas as pd
import pytest

import common
from conftest import EMBEDDING_DIM, SMALL_ROWS, STAGES, expect_error, run, run_all
from tweetlikes import encoder, features, models, tables


def test_every_script_answers_help(capsys):
    for name in STAGES:
        with pytest.raises(SystemExit) as stopped:
            run(name, "--help")
        assert stopped.value.code == 0
        assert "usage:" in capsys.readouterr().out


@pytest.mark.slow
def test_files_shapes_and_alignment(pipeline_dir, monkeypatch):
    monkeypatch.chdir(pipeline_dir)
    table, info = tables.load_classed()
    assert len(table) == SMALL_ROWS
    assert set(table["split"]) == {"train", "test"}
    assert set(table["popularity_class"]) == {0, 1, 2}
    meta = json.loads((pipeline_dir / common.EMBEDDINGS_META).read_text())
    for kind, name in (("content", common.EMBEDDINGS_CONTENT), ("combined", common.EMBEDDINGS_COMBINED)):
        matrix = np.load(pipeline_dir / name)
        assert matrix.shape == (SMALL_ROWS, EMBEDDING_DIM) and matrix.dtype == np.float32
        assert meta[kind]["model"] == encoder.DEFAULT_MODEL and meta[kind]["mode"] == "exact"
        assert meta[kind]["precision"] in ("openvino-fp32", "fp32")
        assert np.allclose(np.linalg.norm(matrix, axis=1), 1, atol=1e-4)  # MiniLM normalises
    # Row alignment: a few rows re-encoded directly with the model match the stored rows.
    model = encoder.load_sentence_model(encoder.DEFAULT_MODEL, "cpu")
    rows = [0, 7, SMALL_ROWS // 2, SMALL_ROWS - 1]
    content = np.load(pipeline_dir / common.EMBEDDINGS_CONTENT)[rows]
    combined = np.load(pipeline_dir / common.EMBEDDINGS_COMBINED)[rows]
    direct_content = model.encode(list(table["content"].iloc[rows]))
    direct_combined = model.encode([tables.combined_texts(table)[i] for i in rows])
    # Exact means float32 all the way: equal to plain encode up to rounding (float16 weights: 3e-4).
    assert np.abs(content - direct_content).max() < 1e-5
    assert np.abs(combined - direct_combined).max() < 1e-5
    assert np.max(np.sum(content * direct_combined, axis=1)) < 0.999  # the two files differ


@pytest.mark.slow
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


@pytest.mark.slow
def test_models_record_their_inputs(pipeline_dir, monkeypatch):
    monkeypatch.chdir(pipeline_dir)
    table, info = tables.load_classed()
    n_train = int((table["split"] == "train").sum())
    classifier = models.load_artifact(common.CLASSIFIER, {"classed_csv_sha256": info["classed_csv_sha256"]})
    assert classifier["meta"]["train_rows"] == n_train
    assert classifier["meta"]["embedding_model"] == encoder.DEFAULT_MODEL
    assert classifier["meta"]["thresholds"] == info["thresholds"]
    for k in range(3):
        regressor = models.load_artifact(common.REGRESSOR.format(k=k), {"popularity_class": k})
        in_class = (table["split"] == "train") & (table["popularity_class"] == k)
        assert regressor["meta"]["train_rows"] == int(in_class.sum())


@pytest.mark.slow
def test_no_test_row_reaches_training(small_csv, pipeline_dir, workdir):
    """Scramble the likes of the test rows only: every trained model must come out identical
    (the boosters' recorded sha256), since nothing fitted may depend on a test row."""
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
    pd.testing.assert_frame_equal(scrambled[train][features.HISTORY_FEATURES], table[train][features.HISTORY_FEATURES])
    before = pd.read_csv(pipeline_dir / common.PREDICTIONS)
    after = pd.read_csv(workdir / common.PREDICTIONS)
    for column in ("predicted_class", "probability_viral", "predicted_likes"):
        assert (before[column] == after[column]).all()
    # The models themselves: the same boosters, byte for byte, and the same learned routing.
    for name in (common.CLASSIFIER, *(common.REGRESSOR.format(k=k) for k in range(3)), common.GLOBAL_REGRESSOR):
        assert models.load_artifact(workdir / name, {})["meta"]["booster_sha256"] == \
            models.load_artifact(pipeline_dir / name, {})["meta"]["booster_sha256"], name
    here, there = (json.loads((folder / common.COMBINER).read_text()) for folder in (workdir, pipeline_dir))
    assert [here[key] for key in ("coefficients", "intercept", "smearing")] == \
        [there[key] for key in ("coefficients", "intercept", "smearing")]


@pytest.mark.slow
def test_two_runs_give_identical_predictions(small_csv, pipeline_dir, workdir):
    run("01_create_classes", "--input", small_csv)
    run("02_generate_embeddings", "--force")
    for name in ("03b_train_classifier_improved", "04_train_regressors", "05_predict_likes"):
        run(name)
    assert (workdir / common.PREDICTIONS).read_bytes() == (pipeline_dir / common.PREDICTIONS).read_bytes()


@pytest.mark.slow
def test_a_tiny_input_trains_and_predicts_without_embeddings(workdir):
    table = pd.DataFrame({"content": [f"t{i}" + " #x" * (i % 3) for i in range(50)],  # none empty: 01 refuses those
                          "username": [f"u{i % 4}" for i in range(50)],
                          "company": "c", "likes": np.arange(50)})
    table.to_csv("tiny.csv", index=False)
    run("01_create_classes", "--input", "tiny.csv")
    run("03b_train_classifier_improved", "--features", "all,-text")
    run("04_train_regressors", "--features", "all,-text")
    run("05_predict_likes", "--no-plots")
    predictions = pd.read_csv(common.PREDICTIONS)
    assert len(predictions) == 10 and np.isfinite(predictions["expected_likes"]).all()
    assert not list(workdir.glob("embeddings_*"))  # no embeddings were needed


@pytest.mark.slow
def test_a_final_model_trains_on_every_row_and_predicts_new_tweets(small_csv, pipeline_dir, workdir, capsys):
    """01 --test-fraction 0 keeps every row for training; 02-04 run as usual; 05 without --input or
    drafts says there is nothing to predict and writes nothing; drafts and --input work."""
    for name in (common.EMBEDDINGS_CONTENT, common.EMBEDDINGS_COMBINED, common.EMBEDDINGS_META):
        shutil.copy2(pipeline_dir / name, workdir / name)  # the same texts in the same order: 02 reuses them
    run("01_create_classes", "--input", small_csv, "--split", "time", "--test-fraction", 0)
    table, info = tables.load_classed(["split"])
    assert (table["split"] == "train").all() and info["test_fraction"] == 0
    for name in ("02_generate_embeddings", "03b_train_classifier_improved", "04_train_regressors"):
        run(name)
    assert "no test rows" in capsys.readouterr().out
    expect_error("has no test rows", "05_predict_likes")
    assert not (workdir / common.PREDICTIONS).exists() and not (workdir / "metrics.json").exists()
    run("05_predict_likes", "--text", "A new feature, out today <hyperlink>", "--username", "user1")
    assert "predicted likes:" in capsys.readouterr().out
    new = pd.read_csv(small_csv, keep_default_na=False).head(20).drop(columns="likes")
    new.to_csv("new.csv", index=False)
    run("05_predict_likes", "--input", "new.csv", "--no-plots")
    predictions = pd.read_csv(common.PREDICTIONS)
    assert len(predictions) == 20 and np.isfinite(predictions["predicted_likes"]).all()
