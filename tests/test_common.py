"""common.py: classes, argument types, the one-line errors (a missing, damaged or hand-edited
file names the script that remakes it; a full disk, a read-only folder and Ctrl-C are one line,
never a traceback), and the stages' files honouring the umask (the writes themselves: test_files.py)."""
import argparse
import errno
import json
import os
import signal
import stat

import pandas as pd
import pytest

import common
from conftest import PROJECT_DIR, STAGES, expect_error, read_only, run, run_python
from tweetlikes import tables


def test_classes_split_at_the_thresholds():
    likes = [0, 75, 75.5, 95, 96, 10**6]
    assert common.assign_classes(likes, (75.0, 95.0)).tolist() == [0, 0, 1, 1, 2, 2]


def test_class_labels_are_the_indices_of_the_class_names():
    assert common.CLASS_LABELS == [0, 1, 2] and len(common.CLASS_NAMES) == 3
    assert common.assign_classes([0, 50, 100], (10, 60)).tolist() == common.CLASS_LABELS


def test_argument_types_refuse_what_they_must():
    assert common.positive_int("3") == 3 and common.non_negative_int("0") == 0
    assert common.positive_float("0.5") == 0.5
    for parse, bad in ((common.positive_int, "0"), (common.positive_int, "1.5"), (common.positive_int, "x"),
                       (common.non_negative_int, "-1"), (common.positive_float, "0"),
                       (common.positive_float, "inf"), (common.positive_float, "nan")):
        with pytest.raises(argparse.ArgumentTypeError, match=f"got {bad!r}"):
            parse(bad)


def test_a_missing_or_damaged_json_names_the_script_that_remakes_it(workdir):
    with pytest.raises(SystemExit, match=f"^error: {common.THRESHOLDS_JSON} not found; run 01_create_classes.py first$"):
        common.read_json(common.THRESHOLDS_JSON)
    with pytest.raises(SystemExit, match="^error: elsewhere.json not found$"):  # not a pipeline file: no hint
        common.require(["elsewhere.json"])
    (workdir / common.COMBINER).write_text("[1, 2]")
    with pytest.raises(SystemExit, match=f"{common.COMBINER} is damaged \\(not a JSON object\\); rerun 04_train_regressors.py"):
        common.read_json(common.COMBINER)
    (workdir / common.COMBINER).write_text('{"coefficients": ')
    with pytest.raises(SystemExit, match=f"{common.COMBINER} is damaged .*; rerun 04_train_regressors.py"):
        common.read_json(common.COMBINER)


@pytest.mark.parametrize("name, option, value", [
    ("01_create_classes", "--seed", "-1"),
    ("03b_train_classifier_improved", "--n-estimators", "0"),
    ("03b_train_classifier_improved", "--max-depth", "-2"),
    ("03b_train_classifier_improved", "--learning-rate", "0"),
    ("04_train_regressors", "--learning-rate", "-0.1"),
    ("04_train_regressors", "--learning-rate", "nan"),
    ("04_train_regressors", "--seed", "1.5"),
    ("05_predict_likes", "--batch-size", "0"),
    ("05_predict_likes", "--batch-size", "-5"),
])
def test_bad_settings_are_refused_before_any_work(workdir, capsys, name, option, value):
    with pytest.raises(SystemExit) as stopped:  # in an empty folder: nothing else was looked at
        run(name, option, value)
    assert stopped.value.code == 2  # argparse's usage error
    assert f"error: argument {option}: expected " in capsys.readouterr().err.splitlines()[-1]


@pytest.mark.slow
@pytest.mark.parametrize("name, missing, maker", [
    ("02_generate_embeddings", common.CLASSED_CSV, "01_create_classes.py"),
    ("03b_train_classifier_improved", common.EMBEDDINGS_CONTENT, "02_generate_embeddings.py"),
    ("04_train_regressors", common.EMBEDDINGS_COMBINED, "02_generate_embeddings.py"),
    ("05_predict_likes", common.REGRESSOR.format(k=2), "04_train_regressors.py"),
    ("05_predict_likes", common.CLASSIFIER, "03b_train_classifier_improved.py"),
])
def test_missing_input_names_the_script_that_makes_it(pipeline_copy, name, missing, maker):
    (pipeline_copy / missing).unlink()
    expect_error(f"{missing} not found; run {maker} first", name)


@pytest.mark.slow
@pytest.mark.parametrize("damaged, name", [
    (common.CLASSIFIER, "05_predict_likes"),
    (common.REGRESSOR.format(k=1), "05_predict_likes"),
    (common.THRESHOLDS_JSON, "04_train_regressors"),
    (common.EMBEDDINGS_META, "03b_train_classifier_improved"),
    (common.EMBEDDINGS_CONTENT, "03b_train_classifier_improved"),
    (common.EMBEDDINGS_COMBINED, "05_predict_likes"),
])
def test_truncated_files_name_the_script_to_rerun(pipeline_copy, damaged, name):
    path = pipeline_copy / damaged
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    message = expect_error(f"rerun {common.MAKERS[damaged]}", name)
    assert message.startswith(f"error: {damaged} ") and "\n" not in message


@pytest.mark.slow
@pytest.mark.parametrize("name, edit, stage", [
    (common.COMBINER, lambda d: d.update(coefficients="x"), "05_predict_likes"),
    (common.COMBINER, lambda d: d.update(coefficients=d["coefficients"][:3]), "05_predict_likes"),
    (common.COMBINER, lambda d: d.update(intercept=None), "05_predict_likes"),
    (common.COMBINER, lambda d: d.pop("smearing"), "05_predict_likes"),
    # Each number 05 reads of the combiner: NaN, infinite, of the wrong sign, length or kind.
    (common.COMBINER, lambda d: d.update(intercept=float("nan")), "05_predict_likes"),
    (common.COMBINER, lambda d: d["coefficients"].__setitem__(0, float("inf")), "05_predict_likes"),
    (common.COMBINER, lambda d: d["smearing"].update(learned=-1.2), "05_predict_likes"),
    (common.COMBINER, lambda d: d["smearing"].update(soft=0), "05_predict_likes"),
    (common.COMBINER, lambda d: d.update(calibration={"method": "temperature", "temperature": 0.0,
                                                      "bias": [0.0] * 3}), "05_predict_likes"),
    (common.COMBINER, lambda d: d.update(calibration={"method": "vector", "temperature": -1.0,
                                                      "bias": [0.0] * 3}), "05_predict_likes"),
    (common.COMBINER, lambda d: d.update(calibration={"method": "vector", "temperature": 1.0,
                                                      "bias": [0.0, float("nan")]}), "05_predict_likes"),
    (common.COMBINER, lambda d: d.update(calibration={"method": "sigmoid", "platt": [[1.0, 0.0]] * 2}),
     "05_predict_likes"),
    (common.COMBINER, lambda d: d["calibration"].pop("method"), "05_predict_likes"),
    (common.COMBINER, lambda d: d["pair_chance"]["learned"].update(slope=-5.22, pairs=4), "05_predict_likes"),
    (common.COMBINER, lambda d: d["pair_chance"].pop("soft"), "05_predict_likes"),
    (common.COMBINER, lambda d: d["intervals"]["routings"]["learned"]["all rows"]["offsets"].__setitem__(
        3, [0.5, -0.5]), "05_predict_likes"),
    (common.COMBINER, lambda d: d["intervals"]["routings"]["hard"]["all rows"].update(rows=-3), "05_predict_likes"),
    (common.COMBINER, lambda d: d.pop("intervals"), "05_predict_likes"),
    (common.COMBINER, lambda d: d.update(fitted_rows="32"), "05_predict_likes"),
    (common.THRESHOLDS_JSON, lambda d: d.update(thresholds="abc"), "05_predict_likes"),
    (common.THRESHOLDS_JSON, lambda d: d.pop("history_prior"), "03b_train_classifier_improved"),
    (common.THRESHOLDS_JSON, lambda d: d.update(signal_groups=5), "03b_train_classifier_improved"),
])
def test_hand_edited_json_that_still_parses_is_one_line(pipeline_copy, name, edit, stage):
    data = json.loads(open(name).read())
    edit(data)
    open(name, "w").write(json.dumps(data))
    message = expect_error(f"{name} has no valid", stage)
    assert f"rerun {common.maker(name)}" in message and "\n" not in message


@pytest.mark.parametrize("name", ["01_create_classes", "03b_train_classifier_improved",
                                  "04_train_regressors", "05_predict_likes"])
def test_read_only_folder_is_refused_before_any_work(workdir, monkeypatch, name):
    # Reading any input first would fail the test.
    read_only(workdir, monkeypatch)
    for reader in ("read_table", "load_classed", "check_classed"):
        monkeypatch.setattr(tables, reader, lambda *args, **kwargs: pytest.fail("read its inputs first"))
    expect_error(f"folder {workdir} is not writable", name)


@pytest.mark.slow
def test_full_disk_names_the_file_and_keeps_the_previous_one(pipeline_copy, monkeypatch):
    before = (pipeline_copy / common.PREDICTIONS).read_bytes()

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(pd.DataFrame, "to_csv", disk_full)
    expect_error(f"could not write {common.PREDICTIONS}: No space left on device", "05_predict_likes")
    assert (pipeline_copy / common.PREDICTIONS).read_bytes() == before
    assert not list(pipeline_copy.glob(".*.tmp"))


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_files_honour_the_umask(small_csv, workdir, umask):
    previous = os.umask(umask)
    try:
        run("01_create_classes", "--input", small_csv)
    finally:
        os.umask(previous)
    for name in (common.CLASSED_CSV, common.THRESHOLDS_JSON, common.HISTORY_CSV):
        assert stat.S_IMODE((workdir / name).stat().st_mode) == 0o666 & ~umask, name


def test_faults_of_the_machine_are_one_line(capsys):
    def full(argv=None):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "embeddings_content.npy")

    def interrupted(argv=None):
        raise KeyboardInterrupt
    with pytest.raises(SystemExit, match="^error: embeddings_content.npy: No space left on device$"):
        common.run(full)
    with pytest.raises(SystemExit) as stopped:
        common.run(interrupted)
    assert stopped.value.code == 130
    assert capsys.readouterr().err.strip() == "error: interrupted; rerun test_common.py to resume or redo it"


# --------------------------------------------------------------------- Ctrl-C while importing

# A stage run as `python SCRIPT` would run it, with a real SIGINT sent as it starts importing pandas.
CTRL_C_WHILE_IMPORTING = """
import os, runpy, signal, sys
script = sys.argv[1]
class Interrupt:
    def find_spec(self, name, path=None, target=None):
        if name == "pandas":
            sys.meta_path.remove(self)
            os.kill(os.getpid(), signal.SIGINT)
sys.meta_path.insert(0, Interrupt())
sys.path.insert(0, os.path.dirname(script))
sys.argv = [script]
runpy.run_path(script, run_name="__main__")
"""


@pytest.mark.parametrize("name", STAGES)
def test_ctrl_c_while_a_stage_imports_is_one_line(name, workdir):
    done = run_python(CTRL_C_WHILE_IMPORTING, PROJECT_DIR / f"{name}.py", cwd=workdir, timeout=60)
    assert done.returncode == 130, done.stderr
    assert done.stderr.strip() == f"error: interrupted; rerun {name}.py to resume or redo it"


# 01 run as `python SCRIPT` would run it, with a real SIGINT once common.run has returned: while Python
# shuts down (waiting for the thread that sends it), where a press used to be an "Exception ignored"
# traceback, or, once Python has restored Ctrl-C's default, a silent exit 130 after a full receipt.
CTRL_C_WHILE_SHUTTING_DOWN = """
import os, runpy, signal, sys, threading, time
script = sys.argv[1]
sys.modules["__main__"].__file__ = script  # common sees a stage started as a script
sys.path.insert(0, os.path.dirname(script))
import common
finish = common.run
def run(main):
    finish(main)
    threading.Thread(target=lambda: (time.sleep(0.2), os.kill(os.getpid(), signal.SIGINT))).start()
common.run = run
sys.argv = [script]
runpy.run_path(script, run_name="__main__")
"""


def test_ctrl_c_after_the_receipt_is_still_one_line(workdir):
    done = run_python(CTRL_C_WHILE_SHUTTING_DOWN, PROJECT_DIR / "01_create_classes.py", cwd=workdir, timeout=120)
    assert done.stdout.splitlines()[-1].startswith(f"wrote {common.CLASSED_CSV}")  # the run had finished
    assert done.returncode == 130, done.stderr
    assert done.stderr.strip() == "error: interrupted; rerun 01_create_classes.py to resume or redo it"


def test_importing_common_leaves_ctrl_c_alone():
    # This process imported common without being a stage: Ctrl-C is still Python's (pytest's).
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert os.environ.get("PYTEST_CURRENT_TEST")
