#!/usr/bin/env python
"""Train the K folds of a preset into sibling folders, then ensemble them, all in one process.

    python scripts/train_kfold.py training_args/eva02_large_448_5fold_frozen.yaml 5 [--flag value ...]
    accelerate launch scripts/train_kfold.py PRESET 5          # each fold on every GPU of the machine

Fold k is `run_classification.py PRESET [flags] --num_folds K --fold k --output_dir <output_dir>_fold{k}`, where
<output_dir> is the preset's (or --output_dir's). The folds are stratified with the same --split_seed, so their
validation sets partition train.csv. A fold whose folder already holds all_results.json and test_logits.npy is
skipped (delete the folder to retrain it); an interrupted fold resumes from its last checkpoint. When every fold has
test logits, <output_dir>_ensemble/submission.csv is their softmax mean, and the out-of-fold accuracy is printed.
--duplicate_labels OUT/issues.csv (an opt-in, for the ensemble only) gives each test image that the data doctor
found to copy a training image that image's label (scripts/ensemble.py). --group_duplicates true keeps copies in
one fold.
--push_to_hub is refused before any fold trains (the folds would push over each other); push_to_hub.py pushes a
finished fold, each to its own --revision if you like.
"""

import sys
from pathlib import Path

from accelerate.utils.memory import clear_device_cache

import run_classification
from sketch_data import SketchDataError
from sketch_data.issues_file import read_issues
from sketch_train.ensemble import EnsembleError, duplicate_labels_line, ensemble
from sketch_train.machine import leave_process_group

USAGE = "usage: train_kfold.py PRESET K [--flag value ...]"


def is_complete(run: Path) -> bool:
    return (run / "all_results.json").is_file() and (run / "test_logits.npy").is_file()


def fold_folders(output_dir: str, folds: int) -> list[Path]:
    return [Path(f"{output_dir}_fold{fold}") for fold in range(folds)]


def train_folds(preset_and_flags: list[str], folds: int, runs: list[Path], announce: bool) -> int:
    """Train every unfinished fold; the exit code of the first one that fails, else 0."""
    for fold, run in enumerate(runs):
        done = is_complete(run)
        if announce:
            print(f"Fold {fold}: {run} is complete, skipping it." if done else f"Fold {fold} of {folds} -> {run}",
                  flush=True)
        if done:
            continue
        code = run_classification.cli([*preset_and_flags, "--num_folds", str(folds), "--fold", str(fold),
                                       "--output_dir", str(run)], keep_process_group=True)
        if code:
            return code
        clear_device_cache(garbage_collection=True)  # the fold's model and optimizer, before the next one's
    return 0


def ensemble_folds(runs: list[Path], output_dir: Path, duplicate_labels: str | None = None) -> int:
    if missing := [run for run in runs if not (run / "test_logits.npy").is_file()]:
        print(f"No test_logits.npy in {missing[0]} (no --do_predict?): not ensembling.")
        return 0
    try:
        results = ensemble(runs, None, "softmax", None, output_dir, duplicate_labels=duplicate_labels)
    except (EnsembleError, SketchDataError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"Wrote {output_dir / 'submission.csv'} ({results['test_images']} rows) from {len(runs)} folds.")
    if "duplicate_labels" in results:
        print(duplicate_labels_line(results))
    if "oof_accuracy" in results:
        print(f"Out-of-fold accuracy on {results['oof_images']} images: {results['oof_accuracy']:.4f}; folds alone: "
              + ", ".join(f"{accuracy:.4f}" for accuracy in results["run_eval_accuracy"]))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] in (["-h"], ["--help"]):
        print(__doc__)
        return 0
    if len(argv) < 2 or not argv[1].isdigit():
        print(USAGE, file=sys.stderr)
        return 2
    preset, folds, flags = argv[0], int(argv[1]), argv[2:]
    try:  # the run's own parser: bad flags stop here, before any fold, and the folders match what the runs use
        flags, duplicate_labels = _pop_option(flags, "--duplicate_labels")
        if duplicate_labels:  # a typo shows now, not after every fold has trained
            read_issues(duplicate_labels)
        args = run_classification.parse([preset, *flags, "--num_folds", str(folds), "--fold", "0"])[2]
    except (ValueError, FileNotFoundError) as error:  # SketchDataError is a ValueError
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.push_to_hub:  # every fold would push to the same repository, each over the one before
        print(f"error: train_kfold.py does not push: its {folds} folds would overwrite each other in "
              f"{args.hub_model_id}. Drop --push_to_hub, then push the fold you want with `python push_to_hub.py "
              f"--output_dir {args.output_dir}_fold0 --repo_id {args.hub_model_id}` (--revision fold0 keeps each "
              "fold on its own branch).", file=sys.stderr)
        return 2
    runs = fold_folders(args.output_dir, folds)
    main_process = args.process_index == 0  # sets up the processes as every fold's Trainer will
    try:
        code = train_folds([preset, *flags], folds, runs, announce=main_process)
    finally:
        leave_process_group()
    if code or not main_process:
        return code
    return ensemble_folds(runs, Path(f"{args.output_dir}_ensemble"), duplicate_labels)


def _pop_option(flags: list[str], name: str) -> tuple[list[str], str | None]:
    """The flags without `name VALUE` (an option of this script, not of the folds), and VALUE."""
    flags = [part for flag in flags for part in (flag.split("=", 1) if flag.startswith(f"{name}=") else [flag])]
    if name not in flags:
        return flags, None
    at = flags.index(name)
    if at + 1 == len(flags) or flags[at + 1].startswith("--"):
        raise ValueError(f"{name} needs a value: the issues.csv of scripts/doctor.py.")
    return flags[:at] + flags[at + 2:], flags[at + 1]


if __name__ == "__main__":
    sys.exit(main())
