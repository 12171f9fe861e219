"""Evaluation you can rerun (not part of the test run): the configurations of docs/evaluation.md's tables
on one CSV and split, over several seeds, printed as one table of test-row figures.

For each seed it runs 01 (split and history with that seed), 02 once (the texts don't change
with the seed, so later seeds reuse the embeddings), then 03b, 04 and 05 for each feature
configuration, in one working folder, and reads each run's metrics.json. The seed moves the
split, the validation slice and XGBoost's sampling together, so the spread is the honest one.

Rows: every method of 05's report for the default features, and the learned routing and the
single regressor for each ablation (a feature group dropped) and for the original design
(--features seed), over all seeds or, with --ablation-seeds K, the first K (large inputs).
Columns: log1p RMSE (mean and min-max over seeds), MAE, Spearman, viral-class log MAE, viral
precision/recall of predicting above the viral threshold, and the classifier's macro-F1 / viral
recall. Then the default's likes ranges on the test rows (coverage and median width, overall and
for seen and unseen accounts and companies) and the ECE of the chance that one draft beats another.

Usage: python tools/evaluate.py --input TWEETS.csv [--split random|account|company|time]
           [--seeds 42,43,44] [--ablations all,-text all@raw all@finetuned all,-wording ...] [--ablation-seeds K]
           [--workdir DIR] [--rows N] [--sketch-rows N]

--sketch-rows N adds the configuration `sketch N`: the default features with every model of more
than N fit rows cutting its bins from a seeded sample of N of them, as 03b and 04 do by default
above 100,000 fit rows (docs/speed-and-memory.md); the table sets it beside the default.
"""
import contextlib
import importlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

PROJECT_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_DIR))
import common  # noqa: E402
from tweetlikes import tables  # noqa: E402
from tweetlikes.features import DEFAULT_FEATURES  # noqa: E402

DEFAULT_ABLATIONS = ("all,-text", "all,-history", "all,-surface", "all,-media", "all,-time", "history", "seed")
METHODS = ("global median", "per-account median", "per-company median", "single regressor",
           "two-stage, learned routing", "two-stage, soft routing", "two-stage, hard routing",
           "two-stage, oracle routing", "oracle class median")


def stage(name, *args, log):
    """Run one script's main in-process, its receipt going to `log`."""
    with contextlib.redirect_stdout(log):
        importlib.import_module(name).main([str(a) for a in args])


def run_config(training_args, text_form, seed, log):
    """03b and 04 with one configuration's arguments (03b also with --text-form `text_form`, when
    given; 04 reads the form from the classifier), then 05; its metrics.json, with the seconds 03b
    and 04 took."""
    started = time.perf_counter()
    stage("03b_train_classifier_improved", *training_args, "--seed", seed,
          *(("--text-form", text_form) if text_form else ()), log=log)
    stage("04_train_regressors", *training_args, "--seed", seed, log=log)
    seconds = time.perf_counter() - started
    stage("05_predict_likes", "--no-plots", log=log)
    return {**json.loads(Path("metrics.json").read_text()), "training_seconds": seconds}


def figures(metrics, method):
    score = metrics["regression"][method]
    return {"rmse": score["log_rmse"], "mae": score["log_mae"], "spearman": score["spearman"],
            "viral_mae": score["log_mae_by_class"]["viral"], "viral_p": score["viral_precision"],
            "viral_r": score["viral_recall"], "macro_f1": metrics["classifier"]["macro_f1"],
            "pairwise": metrics["pairwise"]["accuracy"][method],
            "clf_viral_r": metrics["classifier"]["per_class"]["viral"]["recall"]}


def fmt(values):
    values = [v for v in values if v is not None]
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{np.mean(values):.3f} ({min(values):.3f}-{max(values):.3f})"


def print_text_forms(results, finetune_seconds):
    """Per configuration, the learned routing's RMSE and pairwise accuracy, the text form each seed
    read, and the seconds 03b and 04 took (plus 02 --finetune's, for the fine-tuned form)."""
    print("\ntext forms, learned routing, mean (min-max over seeds):")
    print("| configuration | text form per seed | RMSE | pairwise | 03b+04 seconds |")
    print("|---|---|---|---|---|")
    for config, runs in results.items():
        rows = [figures(m, "two-stage, learned routing") for m in runs]
        forms = ", ".join(m["settings"]["text_form"] if "text" in m["settings"]["features"] else "off" for m in runs)
        extra = f" + {fmt(finetune_seconds)} fine-tuning" if config.endswith("@finetuned") else ""
        print(f"| {config} | {forms} | {fmt([r['rmse'] for r in rows])} | {fmt([r['pairwise'] for r in rows])} | "
              f"{fmt([m['training_seconds'] for m in runs])}{extra} |")


def print_same_kind(runs):
    """Within-account pairwise accuracy over all pairs and over pairs of one kind (the same media
    and reply status: what comparing wordings asks), with the pair counts."""
    print("\npairwise accuracy, all same-account pairs and same-kind pairs, mean (min-max over seeds):")
    print("| method | all pairs | same-kind pairs | pairs: all / same-kind |")
    print("|---|---|---|---|")
    for method in ("per-account median", "single regressor", "two-stage, learned routing"):
        every = [m["pairwise"]["accuracy"][method] for m in runs]
        same = [m["pairwise"]["same_kind"]["accuracy"][method] for m in runs]
        counts = " / ".join(f"{min(c):,}-{max(c):,}" for c in ([m["pairwise"]["pairs"] for m in runs],
                                                                 [m["pairwise"]["same_kind"]["pairs"] for m in runs]))
        print(f"| {method} | {fmt(every)} | {fmt(same)} | {counts} |")


def print_calibration(runs):
    """The default's class probabilities on the test rows before and after 04's calibration."""
    methods = ", ".join(sorted({m["calibration"]["method"] for m in runs}))
    print(f"\ncalibration ({methods}), mean (min-max over seeds):")
    print("| class | share | mean probability before | after | ECE before | after | Brier before | after |")
    print("|---|---|---|---|---|---|---|---|")
    for name in common.CLASS_NAMES:
        cells = [fmt([m["calibration"]["after"][name]["share"] for m in runs])]
        for figure in ("mean_probability", "ece", "brier"):
            cells += [fmt([m["calibration"][stage][name][figure] for m in runs]) for stage in ("before", "after")]
        print(f"| {name} | " + " | ".join(cells) + " |")


def print_intervals(runs):
    """The default's likes ranges on the test rows (coverage and median width, overall and for seen
    and unseen accounts and companies) and the ECE of the chance of one draft beating another."""
    level = runs[0]["interval"]["level"]
    print(f"\nlikes ranges ({level:.0%}, learned routing) and the chance to beat a draft, mean (min-max over seeds):")
    print("| rows | test rows | coverage | median width (high+1)/(low+1) |")
    print("|---|---|---|---|")
    parts = [("all", lambda m: m["interval"])] + [
        (f"{kind} {state}", lambda m, kind=kind, state=state: m["interval"][f"by_{kind}"][state])
        for kind in ("account", "company") for state in ("seen", "unseen")]
    for name, part in parts:
        if any(part(m)["rows"] for m in runs):
            rows = [part(m)["rows"] for m in runs]
            print(f"| {name} | {min(rows)}-{max(rows)} | {fmt([part(m)['coverage'] for m in runs])} | "
                  f"{fmt([part(m)['median_width'] for m in runs])} |")
    pairs = [m["pair_chance"]["pairs"] for m in runs]
    print(f"chance to beat a draft: ECE {fmt([m['pair_chance']['ece'] for m in runs])} over "
          f"{min(pairs)}-{max(pairs)} same-{runs[0]['pairwise']['within']} test pairs"
          + "".join(f"; seed {i}: {m['pair_chance']['why']}" for i, m in enumerate(runs)
                    if m["pair_chance"]["ece"] is None))


def parse_arguments(argv):
    parser = common.argument_parser(__doc__)
    parser.add_argument("--input", required=True, help="CSV/.xlsx of tweets with likes")
    parser.add_argument("--split", default="random", choices=("random", "account", "company", "time"))
    parser.add_argument("--seeds", default="42,43,44", help="comma list; the spread is over these")
    parser.add_argument("--validation", default="random", choices=("random", "latest"),
                        help="01's --validation: the slice 03b and 04 choose on (latest: with --split time)")
    parser.add_argument("--ablations", nargs="*", default=DEFAULT_ABLATIONS,
                        help="configurations run beside the default: a --features value, and @FORM for "
                             "03b's --text-form (all@raw); @finetuned runs 02 --finetune for each seed")
    parser.add_argument("--ablation-seeds", type=int, default=0, help="run the ablations on the first K seeds (0: all)")
    parser.add_argument("--rows", type=int, default=0, help="a seeded sample of this many rows (0: all)")
    parser.add_argument("--sketch-rows", type=int, default=0, metavar="N",
                        help="also run the default features, every seed, with every model of more fit rows than "
                             "this cutting its bins from a seeded sample of this many (03b/04 --sketch-above 0 "
                             "--sketch-rows N), as configuration 'sketch N' (0: not)")
    parser.add_argument("--workdir", default="evaluation", help="working folder (embeddings are reused there)")
    parser.add_argument("--json", default=None, help="also write the raw figures here")
    return parser.parse_args(argv)


def configurations(ablations, sketch_rows):
    """Each configuration's 03b/04 arguments and 03b's text form: the default and the sketch's on
    every seed, the ablations (FEATURES[@TEXT_FORM]) on theirs."""
    return {"default": (["--features", DEFAULT_FEATURES], ""),
            **({f"sketch {sketch_rows}": (["--features", DEFAULT_FEATURES, "--sketch-above", 0,
                                           "--sketch-rows", sketch_rows], "")}
               if sketch_rows else {}),
            **{config: (["--features", config.partition("@")[0]], config.partition("@")[2]) for config in ablations}}


def run_seeds(args, source, started):
    """For each seed, 01 and 02 (and 02 --finetune when an ablation reads the fine-tuned form),
    then every configuration that seed runs: their metrics.json per configuration, and the
    seconds each fine-tuning took."""
    seeds = [int(s) for s in args.seeds.split(",")]
    runs = configurations(args.ablations, args.sketch_rows)
    every_seed = 2 if args.sketch_rows else 1  # the default, and the sketch beside it
    results = {name: [] for name in runs}
    finetune_seconds = []
    with open("evaluate.log", "a", buffering=1) as log:
        for index, seed in enumerate(seeds):
            stage("01_create_classes", "--input", source, "--split", args.split, "--seed", seed,
                  "--validation", args.validation, log=log)
            stage("02_generate_embeddings", log=log)
            if any(config.endswith("@finetuned") for config in args.ablations):
                started_finetune = time.perf_counter()
                stage("02_generate_embeddings", "--finetune", log=log)
                finetune_seconds.append(time.perf_counter() - started_finetune)
            for name in list(runs)[:None if index < (args.ablation_seeds or len(seeds)) else every_seed]:
                results[name].append(run_config(*runs[name], seed, log))
                print(f"  seed {seed}, {name}: done at {time.perf_counter() - started:.0f}s", file=sys.stderr)
    return results, finetune_seconds


def print_methods(results, source, args):
    """Every method's test-row figures for the default, and the single regressor and learned
    routing (and, for seed, the hard and soft routings) for each other configuration."""
    columns = ("rmse", "mae", "spearman", "pairwise", "viral_mae", "viral_p", "viral_r")
    default = results["default"]
    print(f"\n{source.name}, {args.split} split, test rows {default[0]['settings']['rows_scored']}, "
          f"seeds {args.seeds}" + (f" (ablations: the first {args.ablation_seeds})" if args.ablation_seeds else "")
          + "; log1p(likes) errors, mean (min-max over seeds); pairwise: within-"
          + f"{default[0]['pairwise']['within']} accuracy over "
          + f"{min(m['pairwise']['pairs'] for m in default)}-{max(m['pairwise']['pairs'] for m in default)} pairs")
    print("| features | method | RMSE | MAE | Spearman | pairwise | viral MAE | viral P | viral R | "
          "macro-F1 / viral recall |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for features, runs in results.items():
        methods = METHODS if features == "default" else ("single regressor", "two-stage, learned routing") + \
            (("two-stage, hard routing", "two-stage, soft routing") if features == "seed" else ())
        for method in methods:
            rows = [figures(m, method) for m in runs if method in m["regression"]]
            if not rows:
                continue
            cells = [fmt([r[c] for r in rows]) for c in columns]
            classifier = f"{fmt([r['macro_f1'] for r in rows])} / {fmt([r['clf_viral_r'] for r in rows])}" \
                if method.startswith("two-stage") else ""
            print(f"| {features} | {method} | " + " | ".join(cells) + f" | {classifier} |")


def command_line(args):
    """The command that reruns this evaluation, less its defaults."""
    return (f"python tools/evaluate.py --input {args.input} --split {args.split} --seeds {args.seeds}"
            f"{f' --rows {args.rows}' if args.rows else ''}"
            f"{f' --sketch-rows {args.sketch_rows}' if args.sketch_rows else ''}"
            f"{f' --ablation-seeds {args.ablation_seeds}' if args.ablation_seeds else ''}"
            f"{'' if tuple(args.ablations) == DEFAULT_ABLATIONS else ' --ablations ' + ' '.join(args.ablations)}")


def main(argv=None):
    args = parse_arguments(argv)
    source = Path(args.input).resolve()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    os.chdir(workdir)

    # 1. The input, or a seeded sample of its rows as read (all text: sampled rows stay as they were).
    if args.rows:
        _, tweets = tables.read_table(source)
        tweets.sample(n=min(args.rows, len(tweets)), random_state=0).to_csv("sample.csv", index=False)
        source = Path("sample.csv").resolve()

    # 2. Every configuration on its seeds.
    started = time.perf_counter()
    results, finetune_seconds = run_seeds(args, source, started)
    if args.json:
        Path(args.json).write_text(json.dumps({**results, "finetune_seconds": finetune_seconds}, indent=1))

    # 3. The tables.
    print_methods(results, source, args)
    print_text_forms(results, finetune_seconds)
    print_calibration(results["default"])
    print_same_kind(results["default"])
    print_intervals(results["default"])
    print(f"\n({time.perf_counter() - started:.0f}s; command: {command_line(args)})")


if __name__ == "__main__":
    main()
