"""Stage 3, 03b_train_classifier_improved.py: balanced class weights from the training rows,
recorded in the bundle with what the classifier was trained on; early stopping on the validation
slice, the booster cut to the round it kept; the test report beside the majority baseline; Ctrl-C
while it trains."""
import signal
import subprocess
import sys

import numpy as np
import pytest

import common
from conftest import PROJECT_DIR, interrupt_at_blocks, run, stage
from tweetlikes import features, models, tables

train_classifier = stage("03b_train_classifier_improved")


def test_the_test_report_stands_beside_the_majority_baseline(capsys):
    y = np.array([0, 0, 0, 1, 2, 0, 0, 1, 2, 2])
    train_rows, test_rows = np.arange(5), np.arange(5, 10)
    train_classifier.print_test_report(y, np.array([0, 1, 1, 2, 0]), train_rows, test_rows)
    out = capsys.readouterr().out
    assert "test rows (5), never seen in training:" in out
    # F1 common 1/2, popular 2/3, viral 2/3; always 'common' (the training majority): 4/7, 0, 0.
    assert "macro-F1 0.611 vs 0.190 always answering 'common'" in out
    assert "[[1 1 0]\n [0 1 0]\n [1 0 1]]" in out


@pytest.mark.slow
def test_class_weights_are_balanced_on_the_training_rows_and_recorded(pipeline_dir, monkeypatch):
    monkeypatch.chdir(pipeline_dir)
    table, info = tables.load_classed()
    meta = models.load_classifier({"classed_csv_sha256": info["classed_csv_sha256"]})["meta"]
    train_classes = table.loc[table["split"] == "train", "popularity_class"].to_numpy()
    counts = np.bincount(train_classes, minlength=3)
    assert meta["class_weight"] == pytest.approx(list(len(train_classes) / (3 * counts)))
    assert np.allclose(counts * np.array(meta["class_weight"]), len(train_classes) / 3)  # each class weighs alike
    assert meta["class_weight"][0] < meta["class_weight"][1] < meta["class_weight"][2]  # 75/20/5
    assert meta["train_rows"] == len(train_classes) and meta["rows"] == len(table)
    assert meta["features"] == ["text", "history", "surface", "media", "time", "wording"]
    raw = meta["text_form"] == "raw"
    assert meta["n_features"] == meta["embedding_dim"] * raw + len(features.feature_columns(meta["features"],
                                                                                           meta["text_form"]))


@pytest.mark.slow
def test_the_text_form_is_the_one_that_errs_least_on_the_validation_slice(pipeline_dir):
    bundle = models.load_artifact(pipeline_dir / common.CLASSIFIER, {})
    meta, scores = bundle["meta"], bundle["meta"]["text_form_scores"]
    assert list(scores) == [form for form in features.TEXT_FORMS if form != "finetuned"]  # none without 02 --finetune
    assert meta["text_form"] == min(scores, key=lambda form: scores[form]["validation_log_rmse"])
    no_text = len(features.feature_columns(meta["features"][1:]))
    assert scores["none"]["columns"] == no_text and scores["score"]["columns"] == no_text + 1
    assert scores["raw"]["columns"] == meta["embedding_dim"] + no_text
    assert set(bundle["text"]) >= {"ridge", "projection", "out_of_fold_score"}


@pytest.mark.slow
def test_text_form_none_trains_the_classifier_that_text_off_trains(pipeline_copy):
    run("03b_train_classifier_improved", "--text-form", "none")
    forced = models.load_artifact(pipeline_copy / common.CLASSIFIER, {})
    run("03b_train_classifier_improved", "--features", "all,-text")
    off = models.load_artifact(pipeline_copy / common.CLASSIFIER, {})
    assert forced["meta"]["text_form"] == "none" and forced["meta"]["text_form_scores"] == {}
    assert forced["model"] == off["model"]  # the same columns, the same booster


@pytest.mark.slow
def test_the_classifier_is_early_stopped_and_keeps_only_its_best_rounds(pipeline_dir):
    bundle = models.load_artifact(pipeline_dir / common.CLASSIFIER, {})
    meta = bundle["meta"]
    tc = train_classifier
    assert meta["settings"] == {"n_estimators": tc.N_ESTIMATORS, "learning_rate": tc.LEARNING_RATE,
                                "max_depth": tc.MAX_DEPTH, "subsample": tc.SUBSAMPLE,
                                "colsample_bytree": tc.COLSAMPLE_BYTREE,
                                "early_stopping_rounds": tc.EARLY_STOPPING_ROUNDS, "seed": common.SEED,
                                "sketch_above": tc.SKETCH_ABOVE, "sketch_rows": tc.SKETCH_ROWS}
    assert meta["sketch_sample_rows"] is None  # a few hundred fit rows: the bins of all of them
    assert meta["best_iteration"] + 1 < tc.N_ESTIMATORS  # early stopping stopped it
    assert models.load_booster(bundle).num_boosted_rounds() == meta["best_iteration"] + 1


@pytest.mark.slow
def test_ctrl_c_in_a_stage_is_one_line_and_exit_130(pipeline_copy):
    """Press Ctrl-C while 03 trains (slowly enough to go on for minutes)."""
    before = (pipeline_copy / common.CLASSIFIER).read_bytes()
    script = "03b_train_classifier_improved.py"
    # A shell starts background jobs with Ctrl-C ignored, and Python keeps it so: undo that.
    process = subprocess.Popen([sys.executable, "-u", PROJECT_DIR / script, "--n-estimators", "1000000",
                                "--learning-rate", "0.001"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    for line in process.stdout:
        if line.startswith("text form, by its global regressor"):  # the last line before training
            break
    process.send_signal(signal.SIGINT)
    try:
        _, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130, err
    assert err.strip() == f"error: interrupted; rerun {script} to resume or redo it"
    assert (pipeline_copy / common.CLASSIFIER).read_bytes() == before
    assert not list(pipeline_copy.glob(".*.tmp"))


@pytest.mark.slow
def test_ctrl_c_anywhere_in_the_matrix_build_is_one_line_and_keeps_the_files(pipeline_copy):
    # 9 blocks of fitting rows and one of validation rows, read twice each: blocks 1 to 20.
    interrupt_at_blocks(pipeline_copy, "03b_train_classifier_improved.py", (1, 9, 10, 19, 20))
