"""Writing the pipeline's files: output paths checked before any work (a missing or read-only
folder, a link, a folder where a file goes, a user's --output named as what is written), and every
file saved atomically, so a failure never leaves a half-written file nor loses the previous one.
"""
import json
import math
import os
import secrets
from pathlib import Path

import numpy as np

import common


def check_writable(paths):
    """Fail before any expensive work if an output could not be written or the rename onto it would
    lose something: its folder is missing or read-only; it is a link, a folder, a pipe or a device."""
    for path in map(str, paths):
        folder, name = Path(path).absolute().parent, os.path.basename(path)
        problem = (
            "it names no file" if name in ("", ".", "..") and not path.endswith("/") else
            "it ends in '/', so it names a folder: add the file's name" if not name else
            f"folder {folder} does not exist" if not folder.is_dir() else
            f"folder {folder} is not writable" if not os.access(folder, os.W_OK | os.X_OK) else
            f"it is a link (to {os.readlink(path)}), which writing would replace, not write through: remove "
            "the link or name a file" if os.path.islink(path) else
            "it is a folder" if Path(path).is_dir() else
            "it is not a regular file" if Path(path).exists() and not Path(path).is_file() else None)
        if problem:
            common.fail(f"cannot write {path if name else repr(path)}: {problem}")


def check_output(path):
    """A user-named output (05 --output), writable and named as what is written: CSV text in a
    file named preds.xlsx would be opened as a broken workbook."""
    check_writable([path])
    if Path(path).suffix.lower() != ".csv":
        common.fail(f"cannot write {path}: the output is CSV text; name it {Path(path).stem}.csv (Excel opens it)")


def atomic_write(path, write):
    """Call write(tmp_path), then rename onto `path`: a failure never leaves a half-written file
    and never destroys the previous good one. A full disk or similar ends in one line naming
    the file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        # Created like any new file, 0666 less the umask (mkstemp's private 0600 would survive
        # the rename and lock teammates out).
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        write(tmp)
        os.replace(tmp, path)
    except OSError as error:
        common.fail(f"could not write {path}: {error.strerror or error}")
    finally:
        tmp.unlink(missing_ok=True)


def save_json(path, data):
    """Strict JSON (no NaN or Infinity, which strict readers reject): a non-finite figure is
    written as null, "no figure"."""
    text = json.dumps(_finite_or_none(data), indent=2, allow_nan=False) + "\n"
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def _finite_or_none(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite_or_none(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(item) for item in value]
    return value


def save_csv(path, table):
    atomic_write(path, lambda tmp: table.to_csv(tmp, index=False))


def save_npy(path, array):
    def write(tmp):
        with open(tmp, "wb") as handle:
            np.save(handle, array)
    atomic_write(path, write)
