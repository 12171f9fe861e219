"""tweetlikes/files.py: outputs checked before any work (a link, a folder, a missing folder, a
name that is not .csv), atomic writes that keep the previous file, strict JSON."""
import errno
import os

import pytest

from conftest import strict_json
from tweetlikes import files


def test_json_files_are_strict(workdir):
    files.save_json("figures.json", {"rmse": float("inf"), "spearman": float("nan"), "by_class": [1.5, float("-inf")]})
    assert strict_json((workdir / "figures.json").read_text()) == {"rmse": None, "spearman": None,
                                                                   "by_class": [1.5, None]}


def test_a_failed_write_keeps_the_previous_file(workdir):
    (workdir / "kept.txt").write_text("before")

    def disk_full(tmp):
        open(tmp, "w").write("half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    with pytest.raises(SystemExit, match="^error: could not write kept.txt: No space left on device$"):
        files.atomic_write("kept.txt", disk_full)
    assert (workdir / "kept.txt").read_text() == "before" and sorted(os.listdir(workdir)) == ["kept.txt"]
    (workdir / "folder").mkdir()
    for path, reason in (("folder", "it is a folder"), ("", "it names no file"), ("no/such.csv", "does not exist")):
        with pytest.raises(SystemExit, match=reason):
            files.check_writable([path])


def test_a_link_at_an_output_is_refused_never_replaced(workdir):
    # As a tester found it: a link at the output was replaced by a file, its target left as it was.
    (workdir / "precious.txt").write_text("mine")
    (workdir / "folder").mkdir()
    for target in ("precious.txt", "folder", "gone.txt"):  # a file, a folder, nothing (a dangling link)
        (workdir / "out.csv").symlink_to(target)
        with pytest.raises(SystemExit, match=f"^error: cannot write out.csv: it is a link \\(to {target}\\)"):
            files.check_writable(["out.csv"])
        assert os.readlink(workdir / "out.csv") == target
        (workdir / "out.csv").unlink()
    assert (workdir / "precious.txt").read_text() == "mine"


def test_an_output_ending_in_a_slash_names_a_folder(workdir):
    # As a tester found it: `--output newdir/` wrote a file named newdir.
    for path in ("newdir/", "folder/"):
        with pytest.raises(SystemExit, match=f"cannot write '{path}': it ends in '/', so it names a folder"):
            files.check_writable([path])
    assert list(workdir.iterdir()) == []


def test_a_user_named_output_is_named_as_csv(workdir):
    # As a tester found it: `--output preds.xlsx` was CSV text in a file Excel opens as a broken workbook.
    for path, name in (("preds.xlsx", "preds.csv"), ("preds.xls", "preds.csv"), ("preds", "preds.csv"),
                       ("out.tsv", "out.csv")):
        with pytest.raises(SystemExit, match=f"cannot write {path}: the output is CSV text; name it {name}"):
            files.check_output(path)
    for path in ("preds.csv", "PREDS.CSV"):
        files.check_output(path)
    with pytest.raises(SystemExit, match="is a link"):  # and every rule of check_writable
        (workdir / "link.csv").symlink_to("elsewhere.csv")
        files.check_output("link.csv")
