"""GPU check (not part of the test suite; needs a CUDA machine): stage 2's encoder on CUDA in
exact fp32 and in --fast fp16, throughput and cosine agreement on the same texts, and XGBoost
training on CUDA when its wheel has CUDA support.

Prints one JSON object and writes it to --output.

Usage: python tests/gpu_check.py [--texts 200000] [--batch-size 1024] [--output gpu_check.json]
"""
import argparse
import importlib
import json
import sys
import time
from pathlib import Path

import numpy as np

PROJECT_DIR = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(PROJECT_DIR), str(PROJECT_DIR / "data")]
import common  # noqa: E402


def synthetic_texts(count):
    import pandas as pd

    path = Path("/tmp/gpu_check_tweets.csv")
    importlib.import_module("make_synthetic_tweets").main(["--rows", str(count), "--output", str(path)])
    tweets = pd.read_csv(path, keep_default_na=False)
    return list(tweets["content"]) + common.combined_texts(tweets.rename(columns={"inferred company": "company"}))


def time_encoder(stage2, model, texts, precision, batch_size):
    import torch

    stage2.encode(texts[:batch_size], model, common.DEFAULT_MODEL, precision, batch_size)  # warm-up
    torch.cuda.synchronize()
    started = time.perf_counter()
    embeddings = stage2.encode(texts, model, common.DEFAULT_MODEL, precision, batch_size)
    torch.cuda.synchronize()
    return embeddings, len(texts) / (time.perf_counter() - started)


def xgboost_on_cuda():
    import xgboost

    if not xgboost.build_info().get("USE_CUDA"):
        return {"skipped": "this xgboost wheel has no CUDA support (xgboost-cpu); pip install xgboost"}
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(200_000, 390)).astype(np.float32), rng.integers(0, 3, 200_000)
    figures = {}
    for device in ("cpu", "cuda"):
        started = time.perf_counter()
        xgboost.XGBClassifier(n_estimators=100, tree_method="hist", device=device).fit(X, y)
        figures[f"{device}_seconds_100_rounds"] = time.perf_counter() - started
    return figures


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--texts", type=int, default=200_000, help="synthetic tweets (two texts each)")
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--output", default="gpu_check.json")
    args = parser.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("error: no CUDA device here")
    stage2 = importlib.import_module("02_generate_embeddings")
    texts = list(dict.fromkeys(synthetic_texts(args.texts // 2)))
    model = stage2.load_sentence_model(common.DEFAULT_MODEL, "cuda")
    exact, exact_rate = time_encoder(stage2, model, texts, "fp32", args.batch_size)
    fast, fast_rate = time_encoder(stage2, model, texts, "fp16", args.batch_size)
    started = time.perf_counter()
    plain = model.encode(texts[:20_000], batch_size=args.batch_size)
    plain_rate = 20_000 / (time.perf_counter() - started)
    cosine = np.sum(exact * fast, axis=1) / np.linalg.norm(exact, axis=1) / np.linalg.norm(fast, axis=1)
    results = {
        "device": torch.cuda.get_device_name(), "distinct_texts": len(texts), "batch_size": args.batch_size,
        "plain_encode_fp32_texts_per_s (20K texts)": plain_rate,
        "ours_fp32_texts_per_s": exact_rate, "ours_fp16_texts_per_s": fast_rate,
        "fp16_vs_fp32_cosine_mean": float(cosine.mean()), "fp16_vs_fp32_cosine_min": float(cosine.min()),
        "ours_fp32_vs_plain_cosine_min": float(np.min(np.sum(exact[:20_000] * plain, axis=1))),
        "xgboost": xgboost_on_cuda(),
    }
    print(json.dumps(results, indent=2))
    Path(args.output).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
