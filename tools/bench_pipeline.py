"""Benchmark (not part of the test suite): stage 2's encoder against plain sentence-transformers
`encode` in the same run, then the whole pipeline on N synthetic tweets, stage by stage.

--fake-embeddings skips stage 2 and writes random unit float32 embeddings of the right shape with
a matching embeddings_meta.json (stages 3-5 only need the files), so the memory of stages 3 and 4
can be measured at 300K rows without hours of encoding; each stage's peak RSS is then also given
as a multiple of one embeddings file. Random embeddings carry no signal, so 03b's choice of text
form drops them (`none`) and stages 4 and 5 never read the files: `--text-form raw` passes 03b
the form that reads them everywhere, for the memory of the raw columns. --cluster passes --cluster
to stages 2-5; --project runs another checkout's scripts (say, the code before a change) on the
same input, for before/after.

Absolute seconds on a shared 2-core machine are noise; the ratio to plain `encode`, measured
minutes apart on the same texts, is the figure to quote. Peak memory is each stage's maximum
resident set size, read from the kernel when its process ends.

Writes bench_results/bench_<rows>[_fast].json and prints a table.

Usage: python tools/bench_pipeline.py --rows 10000 [--fast] [--sample 4000] [--texts-csv PATH] [--no-pipeline]
       python tools/bench_pipeline.py --rows 300000 --sample 0 --fake-embeddings [--text-form raw] [--project DIR]
                                      [--cluster local:2]
"""
import importlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

PROJECT_DIR = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(PROJECT_DIR), str(PROJECT_DIR / "data")]
import common  # noqa: E402
from tweetlikes import encoder as encoding, tables  # noqa: E402

STAGES = ("01_create_classes.py", "02_generate_embeddings.py", "03b_train_classifier_improved.py",
          "04_train_regressors.py", "05_predict_likes.py")
BATCH_SIZE = 64
EMBEDDING_DIM = 384  # all-MiniLM-L6-v2


def cosine(a, b):
    return np.sum(a * b, axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def compare_encoders(texts, fast):
    """Throughput of plain encode, our exact encoder (and torch float32 beside it) and optionally
    --fast, on the same texts. Plain encode is timed before and after ours; its mean is the base."""
    model = encoding.load_sentence_model(encoding.DEFAULT_MODEL, "cpu")
    encoders = [encoding.load_encoder(encoding.DEFAULT_MODEL, "cpu", False), encoding.torch_encoder(model, "fp32")]
    encoders += [encoding.load_encoder(encoding.DEFAULT_MODEL, "cpu", True)] if fast else []
    encoders = {encoder.precision: encoder for encoder in encoders}
    for encoder in encoders.values():  # warm-up: one-time costs are not throughput
        encoding.encode(texts[:BATCH_SIZE], encoder, BATCH_SIZE)
    model.encode(texts[:BATCH_SIZE], batch_size=BATCH_SIZE)

    def plain_rate():
        started = time.perf_counter()
        embeddings = model.encode(texts, batch_size=BATCH_SIZE)
        return embeddings, len(texts) / (time.perf_counter() - started)

    plain, rate_before = plain_rate()
    figures = {}
    for precision, encoder in encoders.items():
        started = time.perf_counter()
        ours = encoding.encode(texts, encoder, BATCH_SIZE)
        rate = len(texts) / (time.perf_counter() - started)
        agreement = cosine(ours, plain)
        figures[precision] = {"texts_per_s": rate, "cosine_mean": float(agreement.mean()),
                              "cosine_min": float(agreement.min()),
                              "max_abs_diff": float(np.abs(ours - plain).max())}
    _, rate_after = plain_rate()
    base = (rate_before + rate_after) / 2
    for precision in encoders:
        figures[precision]["ratio_to_plain"] = figures[precision]["texts_per_s"] / base
    return {"texts": len(texts), "batch_size": BATCH_SIZE, "plain_encode_texts_per_s": base,
            "plain_encode_before_after": [rate_before, rate_after], **figures}


def write_fake_embeddings(folder, seed=0, block=50_000):
    """Random unit float32 embeddings for every row of the classed CSV, with the meta record 02
    would write, so that stages 3-5 accept them; written a block at a time."""
    import pandas as pd

    table = pd.read_csv(folder / common.CLASSED_CSV, dtype=str, keep_default_na=False)
    rng = np.random.default_rng(seed)
    meta = {}
    for kind, name, texts in (("content", common.EMBEDDINGS_CONTENT, list(table["content"])),
                              ("combined", common.EMBEDDINGS_COMBINED, tables.combined_texts(table))):
        matrix = np.lib.format.open_memmap(folder / name, mode="w+", dtype=np.float32,
                                           shape=(len(table), EMBEDDING_DIM))
        for start in range(0, len(table), block):
            rows = rng.standard_normal((min(block, len(table) - start), EMBEDDING_DIM), dtype=np.float32)
            matrix[start:start + len(rows)] = rows / np.linalg.norm(rows, axis=1, keepdims=True)
        matrix.flush()
        del matrix
        meta[kind] = {"texts_sha256": tables.texts_fingerprint(texts), "rows": len(table),
                      "model": encoding.DEFAULT_MODEL, "mode": "exact",
                      "template": tables.COMBINED_TEMPLATE if kind == "combined" else "{content}",
                      "precision": "random (benchmark)", "device": "cpu", "dim": EMBEDDING_DIM,
                      "npy_sha256": common.file_sha256(folder / name)}
    (folder / common.EMBEDDINGS_META).write_text(json.dumps(meta, indent=2) + "\n")
    return (folder / common.EMBEDDINGS_CONTENT).stat().st_size


# Starts a command and writes its peak RSS (KB) to the file named first. Linux counts in a child's
# peak RSS the memory of the process it was started from (it keeps the larger across exec), and
# this one has held whole tables (the synthetic tweets, the fake embeddings' texts): started from
# this small process instead, a stage's figure is its own.
LAUNCHER = """import os, subprocess, sys
_, status, usage = os.wait4(subprocess.Popen(sys.argv[2:]).pid, 0)
open(sys.argv[1], "w").write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))"""


def measured(command, folder, log):
    """Run `command` in `folder` from the launcher, output to `log`; return its wall seconds and
    its own peak RSS in MB, or stop naming the log when it fails."""
    started = time.perf_counter()
    peak_file = folder / ".peak_rss_kb"
    if subprocess.call([sys.executable, "-c", LAUNCHER, str(peak_file), *map(str, command)], cwd=folder, stdout=log,
                       stderr=subprocess.STDOUT):
        raise SystemExit(f"{' '.join(map(str, command))} failed; see {log.name}")
    return time.perf_counter() - started, int(peak_file.read_text()) / 1024


def run_stage(script, args, folder, log, project=PROJECT_DIR):
    """Run one stage as its own process; return wall seconds and its peak RSS in MB."""
    return measured([sys.executable, project / script, *args], folder, log)


class PipelineRun(NamedTuple):
    """One run of the whole pipeline to time: `rows` synthetic tweets through `project`'s stages."""
    rows: int
    fast: bool = False              # 02 --fast
    fake_embeddings: bool = False   # random embeddings instead of 02 (write_fake_embeddings)
    cluster: str | None = None      # --cluster ADDRESS for stages 2-5
    project: Path = PROJECT_DIR     # the checkout whose stage scripts run
    text_form: str | None = None    # 03b's --text-form


def time_pipeline(run, folder):
    """Each stage's wall seconds and peak RSS for `run` (a PipelineRun), run in `folder`, with the
    pipeline's total, the models' size and the predictions' sha256."""
    data = folder / "tweets.csv"
    importlib.import_module("make_synthetic_tweets").main(["--rows", str(run.rows), "--output", str(data)])
    on_cluster = ["--cluster", run.cluster] if run.cluster else []
    stage_args = {STAGES[0]: ["--input", str(data)], STAGES[1]: (["--fast"] if run.fast else []) + on_cluster,
                  **{script: on_cluster for script in STAGES[2:]}}
    if run.text_form:
        stage_args[STAGES[2]] = [*stage_args[STAGES[2]], "--text-form", run.text_form]
    timings, embeddings_mb = {}, None
    with open(folder / "stages.log", "w") as log:
        for script in STAGES:
            if script == STAGES[1] and run.fake_embeddings:
                embeddings_mb = write_fake_embeddings(folder) / 2**20
                print(f"  {'random embeddings':36s} one file {embeddings_mb:.0f} MB", flush=True)
                continue
            seconds, peak_mb = run_stage(script, stage_args.get(script, []), folder, log, run.project)
            timings[script] = {"seconds": seconds, "peak_rss_mb": peak_mb}
            if embeddings_mb:
                timings[script]["peak_rss_per_embeddings_file"] = peak_mb / embeddings_mb
            print(f"  {script:36s} {seconds:8.1f}s  peak RSS {peak_mb:7.0f} MB"
                  + (f" ({peak_mb / embeddings_mb:.2f}x one embeddings file)" if embeddings_mb else ""), flush=True)
        if not run.fake_embeddings:
            seconds, peak_mb = run_stage(STAGES[1], stage_args[STAGES[1]], folder, log, run.project)
            timings["02 rerun, unchanged input"] = {"seconds": seconds, "peak_rss_mb": peak_mb}
            print(f"  {'02 rerun, unchanged input':36s} {seconds:8.1f}s  peak RSS {peak_mb:7.0f} MB")
    meta = json.loads((folder / common.EMBEDDINGS_META).read_text())
    models_mb = sum(path.stat().st_size for path in folder.glob("*.joblib")) / 2**20
    return {"stages": timings, "pipeline_seconds": sum(timings[s]["seconds"] for s in STAGES if s in timings),
            "peak_rss_mb": max(t["peak_rss_mb"] for t in timings.values()),
            "precision": meta["content"]["precision"], "embeddings_file_mb": embeddings_mb,
            "models_mb": models_mb, "cluster": run.cluster, "project": str(run.project),
            "final_predictions_sha256": common.file_sha256(folder / common.PREDICTIONS)}


def parse_arguments(argv):
    parser = common.argument_parser(__doc__)
    parser.add_argument("--rows", type=int, default=10_000, help="synthetic tweets for the pipeline run")
    parser.add_argument("--fast", action="store_true", help="run stage 2 with --fast")
    parser.add_argument("--sample", type=int, default=4000, help="texts for the encoder comparison (0: skip)")
    parser.add_argument("--texts-csv", default=None,
                        help="compare the encoders on this CSV's `content` column instead of synthetic tweets")
    parser.add_argument("--no-pipeline", action="store_true", help="only compare the encoders")
    parser.add_argument("--fake-embeddings", action="store_true",
                        help="skip stage 2: random embeddings of the right shape (for stages 3-5's memory)")
    parser.add_argument("--text-form", default=None, help="pass --text-form FORM to 03b (raw: the embeddings read "
                                                          "by every stage, whatever they hold)")
    parser.add_argument("--cluster", default=None, help="pass --cluster ADDRESS to stages 2-5")
    parser.add_argument("--project", type=Path, default=PROJECT_DIR,
                        help="run this checkout's stage scripts (e.g. the code before a change)")
    parser.add_argument("--output-dir", default="bench_results")
    return parser.parse_args(argv)


def sample_texts(sample, texts_csv, folder):
    """`sample` distinct texts of the `content` column of `texts_csv`, or of synthetic tweets."""
    import pandas as pd

    sample_csv = texts_csv or folder / "sample.csv"
    if not texts_csv:
        importlib.import_module("make_synthetic_tweets").main(
            ["--rows", str(sample * 2), "--seed", "7", "--output", str(sample_csv)])
    return list(pd.read_csv(sample_csv, keep_default_na=False)["content"].drop_duplicates())[:sample]


def print_encoders(encoders):
    print(f"  plain encode            {encoders['plain_encode_texts_per_s']:7.1f} texts/s  "
          f"(before {encoders['plain_encode_before_after'][0]:.1f}, after "
          f"{encoders['plain_encode_before_after'][1]:.1f})")
    for mode, figures in encoders.items():
        if isinstance(figures, dict):  # one entry per mode
            print(f"  ours, {mode:17s} {figures['texts_per_s']:7.1f} texts/s  "
                  f"x{figures['ratio_to_plain']:.2f}  cosine mean {figures['cosine_mean']:.6f} "
                  f"min {figures['cosine_min']:.6f}  max |diff| {figures['max_abs_diff']:.1e}")


def results_path(args):
    """bench_<rows>, tagged with what differs from a plain run, in --output-dir."""
    tags = "".join(f"_{tag}" for tag, on in (("fast", args.fast), ("fake", args.fake_embeddings),
                                             (str(args.text_form), args.text_form),
                                             (str(args.cluster).replace(":", ""), args.cluster),
                                             (args.project.resolve().name, args.project.resolve() != PROJECT_DIR))
                   if on)
    return Path(args.output_dir) / f"bench_{args.rows}{tags}.json"


def main(argv=None):
    args = parse_arguments(argv)
    results = {"rows": args.rows, "fast": args.fast, "cpu_count": os.cpu_count()}

    with tempfile.TemporaryDirectory(prefix="tweet-likes-bench-") as tmp:
        folder = Path(tmp)
        # 1. The encoders against plain encode, on the same texts.
        if args.sample:
            texts = sample_texts(args.sample, args.texts_csv, folder)
            print(f"encoder comparison on {len(texts)} distinct texts from {args.texts_csv or 'synthetic tweets'}, "
                  f"batch {BATCH_SIZE}:", flush=True)
            results["encoders"] = compare_encoders(texts, args.fast)
            results["encoders"]["texts_from"] = str(args.texts_csv or "synthetic")
            print_encoders(results["encoders"])
        # 2. The whole pipeline, stage by stage.
        if not args.no_pipeline:
            print(f"pipeline on {args.rows} synthetic tweets{' (--fast)' if args.fast else ''}:", flush=True)
            run = PipelineRun(args.rows, args.fast, args.fake_embeddings, args.cluster, args.project.resolve(),
                              args.text_form)
            pipeline = results["pipeline"] = time_pipeline(run, folder)
            print(f"  whole pipeline {pipeline['pipeline_seconds']:.1f}s, peak RSS {pipeline['peak_rss_mb']:.0f} MB, "
                  f"models {pipeline['models_mb']:.1f} MB, "
                  f"final_predictions.csv sha256 {pipeline['final_predictions_sha256'][:16]}")

    # 3. The figures, as JSON.
    path = results_path(args)
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
