"""GPU check (not part of the test suite; meant for a CUDA machine): what the pipeline gains there.

1. Stage 2's encoder on N texts (N/2 synthetic tweets, content and combined text each), exact
   (float32) and --fast (float16), against plain sentence-transformers `encode` timed before and
   after ours in the same run, with each one's cosine to plain.
2. Stages 2, 3 and 4 as processes on the same rows: stage 2 exact and --fast, then the XGBoost
   stages 3 and 4 on the CPU (CUDA hidden from them) and on CUDA, back to back.

Without a CUDA device it runs the same steps on the CPU and skips the CUDA ones, so the script can
be checked anywhere: `python tools/gpu_check.py --texts 200`. Prints the figures as it goes and
writes them all, with the card's name, to --output.

Usage: python tools/gpu_check.py [--texts 200000] [--rows 100000] [--batch-size 1024] [--output gpu_check.json]
"""
import importlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

PROJECT_DIR = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(PROJECT_DIR), str(PROJECT_DIR / "data")]
import common  # noqa: E402
from tweetlikes import encoder as encoding, tables  # noqa: E402


def cosine(a, b):
    return np.sum(a * b, axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def synchronized(device, work):
    """Seconds `work()` takes, waiting for the GPU to finish; and its result."""
    if device == "cuda":
        import torch

        torch.cuda.synchronize()
    started = time.perf_counter()
    result = work()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started, result


def compare_encoders(texts, device, batch_size):
    """Texts per second of plain encode (before and after ours), ours exact and ours --fast."""
    model = encoding.load_sentence_model(encoding.DEFAULT_MODEL, device)
    encoders = {mode: encoding.load_encoder(encoding.DEFAULT_MODEL, device, mode == "fast")
                for mode in ("exact", "fast")}
    for encoder in encoders.values():  # warm-up: kernel choice and one-time costs are not throughput
        encoding.encode(texts[:batch_size], encoder, batch_size)
    model.encode(texts[:batch_size], batch_size=batch_size)

    def plain():
        return synchronized(device, lambda: model.encode(texts, batch_size=batch_size))
    before, reference = plain()
    figures = {}
    for mode, encoder in encoders.items():
        seconds, ours = synchronized(device, lambda: encoding.encode(texts, encoder, batch_size))
        agreement = cosine(ours, reference)
        figures[mode] = {"precision": encoder.precision, "texts_per_s": len(texts) / seconds,
                         "cosine_to_plain_mean": float(agreement.mean()),
                         "cosine_to_plain_min": float(agreement.min()),
                         "max_abs_diff_to_plain": float(np.abs(ours - reference).max())}
    after, _ = plain()
    base = len(texts) / ((before + after) / 2)
    for mode, figure in figures.items():
        figure["ratio_to_plain"] = figure["texts_per_s"] / base
        print(f"  ours {mode:5s} ({figure['precision']}) {figure['texts_per_s']:9.0f} texts/s  "
              f"x{figure['ratio_to_plain']:.2f} plain  cosine min {figure['cosine_to_plain_min']:.6f}", flush=True)
    print(f"  plain encode {base:9.0f} texts/s (before {len(texts) / before:.0f}, after {len(texts) / after:.0f})")
    return {"plain_texts_per_s": base, "plain_before_after_s": [before, after], **figures}


def time_stages(rows_csv, folder, cuda):
    """Seconds of stage 2 (exact, --fast) and of stages 3 and 4 on CPU and, with `cuda`, on CUDA."""
    def run(script, *args, hide_gpu=False):
        env = {**os.environ, **({"CUDA_VISIBLE_DEVICES": ""} if hide_gpu else {})}
        started = time.perf_counter()
        done = subprocess.run([sys.executable, str(PROJECT_DIR / script), *args], cwd=folder, env=env,
                              capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"{script} {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
        seconds = time.perf_counter() - started
        label = " ".join([script, *args]) + (" (GPU hidden)" if hide_gpu else "")
        print(f"  {label:52s} {seconds:7.1f}s", flush=True)
        return seconds

    figures = {}
    run("01_create_classes.py", "--input", rows_csv.name)
    figures["02 --fast"] = run("02_generate_embeddings.py", "--fast")
    figures["02 exact"] = run("02_generate_embeddings.py", "--force")
    for script in ("03b_train_classifier_improved.py", "04_train_regressors.py"):
        figures[f"{script} cpu"] = run(script, hide_gpu=True)
        if cuda:
            figures[f"{script} cuda"] = run(script)
    return figures


def main(argv=None):
    parser = common.argument_parser(__doc__)
    parser.add_argument("--texts", type=int, default=200_000, help="texts for the encoders (N/2 tweets)")
    parser.add_argument("--rows", type=int, default=None, help="tweets for stages 2-4 (default: N/2)")
    parser.add_argument("--batch-size", type=int, default=None, help="default: stage 2's for the device")
    parser.add_argument("--output", default="gpu_check.json")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    device = encoding.pick_device("auto")
    cuda = device == "cuda"
    if cuda:
        import torch

        card = torch.cuda.get_device_name()
    else:
        card = None
        print("no CUDA device: timing on the CPU, skipping the CUDA runs")
    import xgboost

    xgboost_cuda = bool(xgboost.build_info().get("USE_CUDA"))
    if cuda and not xgboost_cuda:
        print("this xgboost wheel has no CUDA support (xgboost-cpu): pip uninstall xgboost-cpu && "
              "pip install xgboost==3.2.0 for the CUDA figures of stages 3 and 4")
    batch_size = args.batch_size or importlib.import_module("02_generate_embeddings").BATCH_SIZE[device]
    rows = args.rows or args.texts // 2
    results = {"device": device, "card": card, "cpu_count": os.cpu_count(), "batch_size": batch_size,
               "xgboost_has_cuda": xgboost_cuda}

    with tempfile.TemporaryDirectory(prefix="tweet-likes-gpu-") as tmp:
        folder = Path(tmp)
        tweets_csv = folder / "tweets.csv"
        importlib.import_module("make_synthetic_tweets").main(
            ["--rows", str(max(rows, args.texts // 2)), "--output", str(tweets_csv)])
        tweets = pd.read_csv(tweets_csv, dtype=str, keep_default_na=False).rename(
            columns={"inferred company": "company"})
        texts = list(dict.fromkeys(list(tweets["content"][:args.texts // 2])
                                   + tables.combined_texts(tweets[:args.texts // 2])))
        print(f"encoders on {len(texts)} distinct texts, {device}, batch {batch_size}:", flush=True)
        results["encoders"] = {"distinct_texts": len(texts), **compare_encoders(texts, device, batch_size)}
        tweets.head(rows).to_csv(folder / "rows.csv", index=False)
        print(f"stages as processes on {rows} tweets:", flush=True)
        results["stages_seconds"] = {"rows": rows, **time_stages(folder / "rows.csv", folder, cuda and xgboost_cuda)}

    Path(args.output).write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
