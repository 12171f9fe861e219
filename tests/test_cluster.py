"""tweetlikes/cluster.py and stages 2-5 on a Dask cluster (--cluster): the address and the
workers are checked, Dask is never imported without --cluster, a cluster run gives what one
machine gives, a cluster encode resumes after a lost worker, each worker compiles the model once
on its own threads and records its own precision, and 05 embeds new tweets on the workers. The
cluster is a real LocalCluster with two workers as threads of this process (processes=False): it
starts in a fraction of a second; the test of one compile per worker process starts real ones."""
import argparse
import functools
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

import common
from conftest import PROJECT_DIR, expect_error, run, sample, stage
from tweetlikes import cluster, encoder, models, tables

CLUSTER = ("--cluster", "local:2")
SMALL_CHUNK = 128  # texts per chunk, so the few hundred test tweets make several chunks


@pytest.fixture
def threads_cluster(monkeypatch):
    distributed = pytest.importorskip("distributed")
    # cluster.cluster() imports LocalCluster from distributed when it starts one: threads, not processes.
    monkeypatch.setattr(distributed, "LocalCluster", functools.partial(distributed.LocalCluster, processes=False))
    monkeypatch.setattr(encoder, "CHUNK_TEXTS", SMALL_CHUNK)


def run_on_cluster(*names):
    for name in names:
        run(name, *CLUSTER)


def test_cluster_address_is_checked():
    pytest.importorskip("distributed")
    for good in ("local", "local:3", "tcp://10.0.0.5:8786"):
        assert cluster.cluster_address(good) == good
    for bad in ("local:0", "local:two"):
        with pytest.raises(argparse.ArgumentTypeError, match="expected an integer > 0"):
            cluster.cluster_address(bad)


def test_local_starts_the_workers_it_names(threads_cluster):
    with cluster.cluster(None) as client:
        assert client is None and cluster.cluster_record(None, client) == {}
    with cluster.cluster("local:2") as client:
        assert cluster.cluster_record("local:2", client) == {"cluster": {"address": "local:2", "workers": 2}}
        assert set(client.run(os.getpid).values()) == {os.getpid()}  # the tests' workers are threads of this process


class FakeClient:
    def __init__(self, answers):
        self.answers = answers

    def run(self, function, *args):
        function(*args)  # as a worker would: the check file must exist while it runs
        return self.answers


def test_workers_must_share_the_working_directory(workdir):
    with pytest.raises(SystemExit, match=r"worker\(s\) tcp://a:1, tcp://b:1 cannot read .* on a filesystem every worker shares"):
        cluster.check_workers(FakeClient({"tcp://a:1": (None, True), "tcp://b:1": (None, True)}))
    assert not list(workdir.iterdir())  # the check file is gone again


def test_workers_must_import_the_project(workdir):
    class Importless(FakeClient):
        def run(self, function, *args):
            text, _ = function(*args)  # it reads the check file, but cannot import the project
            return {"tcp://a:1": (text, False)}
    with pytest.raises(SystemExit, match=r"worker\(s\) tcp://a:1 cannot import common and tweetlikes from "):
        cluster.check_workers(Importless({}))
    assert not list(workdir.iterdir())


@pytest.mark.slow
def test_without_cluster_dask_is_never_imported(pipeline_copy):
    code = ("import sys, importlib; sys.path[:0] = [sys.argv[1]]\n"
            "for name in ('02_generate_embeddings', '03b_train_classifier_improved', '04_train_regressors',"
            " '05_predict_likes'):\n"
            "    importlib.import_module(name).main(['--no-plots'] if name.startswith('05') else [])\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))")
    done = subprocess.run([sys.executable, "-c", code, str(PROJECT_DIR)], cwd=pipeline_copy, capture_output=True,
                          text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.slow
def test_pipeline_on_cluster_matches_one_machine(small_csv, pipeline_dir, workdir, threads_cluster):
    run("01_create_classes", "--input", small_csv)
    run_on_cluster("02_generate_embeddings", "03b_train_classifier_improved", "04_train_regressors",
                   "05_predict_likes")
    for name in (common.EMBEDDINGS_CONTENT, common.EMBEDDINGS_COMBINED):
        assert np.abs(np.load(name) - np.load(pipeline_dir / name)).max() <= 1e-6
    meta = json.loads((workdir / common.EMBEDDINGS_META).read_text())
    assert meta["content"]["cluster"] == {"address": "local:2", "workers": 2}
    assert models.load_artifact(common.CLASSIFIER, {})["meta"]["cluster"]["workers"] == 2
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


@pytest.mark.slow
def test_cluster_encode_resumes_after_a_lost_worker(small_csv, pipeline_dir, workdir, threads_cluster,
                                                    monkeypatch, capsys):
    stage2 = stage("02_generate_embeddings")
    run("01_create_classes", "--input", small_csv)
    encode_part = encoder.encode_part

    # Tasks travel to the workers by value, so these report through files, not variables.
    def dies_after_two(texts, path, *args):
        if len(list(Path(path).parent.glob("part_*.npy"))) >= 2:
            raise RuntimeError("worker lost")
        encode_part(texts, path, *args)

    def logged(texts, path, *args):
        (Path(path).parents[2] / f"encoded_{Path(path).name}").touch()
        encode_part(texts, path, *args)

    monkeypatch.setattr(encoder, "encode_part", dies_after_two)
    with pytest.raises(RuntimeError, match="worker lost"):
        run("02_generate_embeddings", *CLUSTER)
    finished = {path.name for path in stage2.CACHE_DIR.glob("*/part_*.npy")}
    assert len(finished) >= 2 and not (workdir / common.EMBEDDINGS_CONTENT).exists()
    monkeypatch.setattr(encoder, "encode_part", logged)
    capsys.readouterr()
    run("02_generate_embeddings", *CLUSTER)
    assert f"resuming from {len(finished)} finished chunks" in capsys.readouterr().out
    encoded = {path.name.removeprefix("encoded_") for path in workdir.glob("encoded_part_*.npy")}
    assert not finished & encoded  # no finished chunk is encoded again
    table, _ = tables.load_classed()
    unique = len(set(table["content"]) | set(tables.combined_texts(table)))
    assert len(finished | encoded) == -(-unique // encoder.chunk_length(unique, stage2.BATCH_SIZE["cpu"]))
    for name in (common.EMBEDDINGS_CONTENT, common.EMBEDDINGS_COMBINED):
        assert np.abs(np.load(name) - np.load(pipeline_dir / name)).max() <= 1e-6


def encode_on(client, texts, model, chunk_dir):
    """encode() as 02 runs it on a cluster: batches of 4, so a few dozen texts make 8 chunks."""
    on_cluster = encoder.cluster_encoder(client, encoder.DEFAULT_MODEL, "cpu", False)
    return encoder.encode(texts, model, 4, chunk_dir, on_cluster)


TEXTS = [f"tweet {i} " + "word " * (i % 7) for i in range(48)]  # 8 chunks of 6 (encoder.chunk_length)


@pytest.mark.slow
def test_each_worker_process_compiles_the_model_once_on_its_own_threads(workdir):
    distributed = pytest.importorskip("distributed")
    pytest.importorskip("openvino")

    def log_compiles(log):  # run on each worker, in its own process: a monkeypatch here would not reach it
        import os

        import openvino
        compile_model = openvino.Core.compile_model

        def logged(self, *args, **kwargs):
            with open(log, "a") as handle:
                handle.write(f"{os.getpid()}\n")
            return compile_model(self, *args, **kwargs)
        openvino.Core.compile_model = logged

    here = encoder.load_encoder(encoder.DEFAULT_MODEL, "cpu", False)
    log = workdir / "compiles.log"
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as local, \
            distributed.Client(local) as client:
        pids = client.run(os.getpid)
        assert os.getpid() not in pids.values()  # worker processes, as --cluster local:2 starts
        client.run(log_compiles, str(log))
        matrix = encode_on(client, TEXTS, here, workdir)
    records = [json.loads(path.read_text()) for path in sorted(workdir.glob("part_*.json"))]
    chunks_by = Counter(pids[record["worker"]] for record in records)
    assert len(records) == 8 and max(chunks_by.values()) >= 2  # some worker encoded several chunks
    assert Counter(int(pid) for pid in log.read_text().split()) == {pid: 1 for pid in chunks_by}
    # The compiled model's threads are the worker's one, not the cores OpenVINO would take uncapped.
    assert {record["threads"] for record in records} == {1} != {here.threads}
    assert {record["precision"] for record in records} == {"openvino-fp32"}
    assert np.abs(matrix - encoder.encode(TEXTS, here, 4)).max() <= 1e-6


@pytest.mark.slow
def test_a_worker_of_two_threads_compiles_once_and_encodes_a_chunk_at_a_time(workdir, monkeypatch):
    distributed = pytest.importorskip("distributed")
    openvino = pytest.importorskip("openvino")
    here = encoder.load_encoder(encoder.DEFAULT_MODEL, "cpu", False)
    compiles = []
    compile_model = openvino.Core.compile_model

    def slow_compile(self, *args, **kwargs):  # slow enough for the worker's other thread to start a chunk
        compiles.append(kwargs or args[-1])
        time.sleep(0.5)
        return compile_model(self, *args, **kwargs)
    monkeypatch.setattr(openvino.Core, "compile_model", slow_compile)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as local, distributed.Client(local) as client:
        matrix = encode_on(client, TEXTS, here, workdir)  # two chunks sharing one OpenVINO request: "busy"
    assert len(compiles) == 1 and compiles[0]["INFERENCE_NUM_THREADS"] == 2
    assert np.abs(matrix - encoder.encode(TEXTS, here, 4)).max() <= 1e-6


@pytest.mark.slow
def test_the_precision_recorded_is_the_workers_and_a_mix_is_refused(small_csv, workdir, threads_cluster, monkeypatch,
                                                                     capsys):
    distributed = pytest.importorskip("distributed")
    sample(small_csv, 60).to_csv("tweets.csv", index=False)
    run("01_create_classes", "--input", "tweets.csv")
    load_encoder, encode_part = encoder.load_encoder, encoder.encode_part

    def workers_own(*args):  # the workers' CPUs have bfloat16, this machine's not: what --fast then picks
        model = load_encoder(*args)
        try:
            distributed.get_worker()
        except ValueError:
            return model
        return model._replace(precision="openvino-bf16")
    monkeypatch.setattr(encoder, "load_encoder", workers_own)
    run("02_generate_embeddings", "--batch-size", 8, *CLUSTER)
    assert "on the workers, openvino-bf16" in capsys.readouterr().out
    meta = json.loads((workdir / common.EMBEDDINGS_META).read_text())
    assert meta["content"]["precision"] == meta["combined"]["precision"] == "openvino-bf16"

    # A cluster run that lost a worker, resumed on this machine: its chunks would mix precisions.
    def dies_after_two(texts, path, *args):
        if len(list(Path(path).parent.glob("part_*.npy"))) >= 2:
            raise RuntimeError("worker lost")
        encode_part(texts, path, *args)
    monkeypatch.setattr(encoder, "encode_part", dies_after_two)
    with pytest.raises(RuntimeError, match="worker lost"):
        run("02_generate_embeddings", "--batch-size", 8, "--force", *CLUSTER)
    message = expect_error("were encoded in more than one precision", "02_generate_embeddings", "--batch-size", 8,
                           "--force")
    assert " in openvino-bf16" in message and " in openvino-fp32" in message and "\n" not in message
    assert message.endswith("rerun on workers alike in CPU and packages, or without --fast (float32 on every CPU)")
    assert json.loads((workdir / common.EMBEDDINGS_META).read_text()) == meta  # the files stay as they were

@pytest.mark.slow
def test_new_tweets_are_embedded_on_the_workers(pipeline_copy, small_csv, threads_cluster, monkeypatch, capsys):
    distributed = pytest.importorskip("distributed")
    sample(small_csv, 40).assign(content=lambda t: t["content"] + " again").to_csv("new.csv", index=False)
    run("05_predict_likes", "--input", "new.csv", "--output", "here.csv", "--no-plots")
    encode_part = encoder.encode_part

    def logged(texts, path, *args):  # who encodes each chunk
        with open(Path(path).parents[1] / "encoded_by.log", "a") as log:
            log.write(f"{distributed.get_worker().address}\n")
        encode_part(texts, path, *args)
    monkeypatch.setattr(encoder, "encode_part", logged)
    capsys.readouterr()
    run("05_predict_likes", "--input", "new.csv", "--output", "there.csv", "--no-plots", *CLUSTER)
    assert "embedded 40 new tweets with all-MiniLM-L6-v2 on the workers, openvino-fp32" in capsys.readouterr().out
    encoded_by = (pipeline_copy / "encoded_by.log").read_text().split()
    assert len(encoded_by) >= 2 and all(address.startswith("inproc://") for address in encoded_by)
    assert not list(pipeline_copy.glob(".new_tweets_*"))  # the chunks are gone once read
    assert (pipeline_copy / "there.csv").read_bytes() == (pipeline_copy / "here.csv").read_bytes()
