"""The Dask client of --cluster (stages 2 to 5): starting or joining a cluster, checking that every
worker shares the working directory and imports this project, and the feature blocks and
matrices that XGBoost trains on there. Without --cluster none of this runs and Dask is never
imported.
"""
import argparse
import contextlib
import os
import secrets
from pathlib import Path

import numpy as np

import common
from tweetlikes import features, models

CONNECT_TIMEOUT = "30s"  # for a scheduler, and for its first worker


def cluster_address(text):
    """argparse `type=` for --cluster: `local`, `local:N` or a scheduler address; refused at once
    when dask is not installed, before any work."""
    import importlib.util

    kind, _, workers = text.partition(":")
    if kind == "local" and workers:
        common.positive_int(workers)
    if importlib.util.find_spec("distributed") is None:
        raise argparse.ArgumentTypeError("needs dask: pip install -r requirements-cluster.txt")
    return text


def add_cluster_argument(parser):
    parser.add_argument("--cluster", type=cluster_address, default=None, metavar="ADDRESS",
                        help="run on a Dask cluster: local or local:N starts N workers here, tcp://HOST:8786 "
                             "joins a running scheduler; the working directory must be shared with every "
                             "worker (see README, Running on a cluster)")


@contextlib.contextmanager
def cluster(address):
    """A distributed.Client for --cluster ADDRESS (None when there is none; dask is then never
    imported), checked: every worker sees this working directory and can import this project."""
    if address is None:
        yield None
        return
    from distributed import Client, LocalCluster

    with contextlib.ExitStack() as stack:
        kind, _, workers = address.partition(":")
        try:
            if kind == "local":
                # Worker processes of one thread each: XGBoost and the encoder thread within a worker.
                local = stack.enter_context(LocalCluster(n_workers=int(workers or os.cpu_count()), threads_per_worker=1,
                                                         dashboard_address=None))
                client = stack.enter_context(Client(local))
            else:
                client = stack.enter_context(Client(address, timeout=CONNECT_TIMEOUT))
                client.wait_for_workers(1, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError, ValueError) as error:
            common.fail(f"--cluster {address}: no scheduler with workers there ({error})")
        check_workers(client)
        yield client


def check_workers(client):
    """Fail in one line unless every worker reads a file written here into the working directory
    (the stages pass files through it) and imports common and the tweetlikes package (it runs
    their functions)."""
    token = secrets.token_hex(8)
    path = Path(f".cluster_check_{token}").absolute()
    path.write_text(token)

    def sees(path, project):  # defined here, so it is sent by value: a worker need not import this file
        import importlib.util
        import sys
        from pathlib import Path

        if project not in sys.path and Path(project, "common.py").is_file():
            sys.path.insert(0, project)
        try:
            text = Path(path).read_text()
        except OSError:
            text = None
        return text, all(importlib.util.find_spec(name) is not None for name in ("common", "tweetlikes"))

    try:
        answers = client.run(sees, str(path), str(common.PROJECT_DIR))
    finally:
        path.unlink()
    blind = sorted(worker for worker, (text, _) in answers.items() if text != token)
    if blind:
        common.fail(f"--cluster: worker(s) {', '.join(blind)} cannot read {path.parent}; the working directory must be "
                    "on a filesystem every worker shares, at the same path (see README, Running on a cluster)")
    lost = sorted(worker for worker, (_, importable) in answers.items() if not importable)
    if lost:
        common.fail(f"--cluster: worker(s) {', '.join(lost)} cannot import common and tweetlikes from "
                    f"{common.PROJECT_DIR}; "
                    "put the project on the shared filesystem too, or start `dask worker` with it on PYTHONPATH")


def cluster_record(address, client):
    """What artifacts record of how they were made: {} without a cluster."""
    return {"cluster": {"address": address, "workers": len(client.scheduler_info()["workers"])}} if client else {}


def cluster_blocks(client, inputs, rows):
    """`rows` of `inputs` as futures of feature blocks, each built by a worker from the shared
    files, spread round-robin over the workers in a fixed order so that a rerun partitions and
    places the data the same way (distributed XGBoost is deterministic only then)."""
    workers = sorted(client.scheduler_info()["workers"].items(), key=lambda item: str(item[1].get("name")))
    return [(client.submit(features.feature_block, *inputs.task(block), workers=[workers[i % len(workers)][0]],
                           allow_other_workers=False, pure=False), block)
            for i, block in enumerate(inputs.blocks(rows))]


def cluster_matrix(client, inputs, rows, parts, ref=None):
    """A DaskQuantileDMatrix of `rows` of `inputs`; parts(rows) gives the label and weight."""
    import dask.array as da
    import xgboost.dask

    blocks = cluster_blocks(client, inputs, rows)
    data = da.concatenate([da.from_delayed(future, shape=(len(block), inputs.width), dtype=np.float32)
                           for future, block in blocks])
    chunks = (tuple(len(block) for _, block in blocks),)
    extra = {key: da.from_array(values, chunks=chunks) for key, values in parts(rows).items() if values is not None}
    return xgboost.dask.DaskQuantileDMatrix(client, data, ref=ref, **extra)


def cluster_predict(client, trained, classifier_inputs, regressor_inputs):
    """models.predict(trained, ...) for every row of the inputs, a block of rows per task on the
    cluster's workers: predictions are row by row, so the figures are the ones made here."""
    [shared] = client.scatter([trained], broadcast=True)  # the models travel once to each worker
    rows = np.arange(classifier_inputs.rows)
    blocks = client.gather([client.submit(predict_block, shared, classifier_inputs.task(block),
                                          regressor_inputs.task(block), pure=False)
                            for block in classifier_inputs.blocks(rows)])
    return models.ModelOutputs.concatenate(blocks)


def predict_block(trained, classifier_task, regressor_task):
    return models.predict(trained, features.feature_block(*classifier_task), features.feature_block(*regressor_task))
