#!/usr/bin/env python
"""Ensemble finished runs (e.g. the folds of scripts/train_kfold.py) into one submission.

    python scripts/ensemble.py --runs runs/x_fold0 runs/x_fold1 runs/x_fold2 --output_dir runs/x_ensemble
    python scripts/ensemble.py --runs runs/a runs/b --weights 2 1 --method vote --test_csv data/test.csv \\
        --output_dir runs/ab --solution data/solution.csv

Test predictions: each run's test_logits.npy, combined by the (weighted) mean of their softmax probabilities,
or by (weighted) majority vote of their top classes, ties going to the higher mean probability. Written as
submission.csv and test_logits.npy (log of the ensemble's probabilities or vote shares, so an ensemble can
itself be ensembled) in --output_dir, in test.csv order.

Validation: each run's eval_predictions.csv and eval_logits.npy are pooled; an image predicted by several runs
gets their combined prediction. For the folds of a k-fold run every training image is predicted once, by
the one fold that did not train on it, so this is the ensemble's out-of-fold (OOF) accuracy.

--duplicate_labels OUT/issues.csv (an opt-in): each test image that the data doctor found to copy a training
image takes that image's train.csv target; the log and ensemble_results.json say how many changed.
"""

import argparse
import sys
from pathlib import Path

from sketch_data import SketchDataError
from sketch_train.ensemble import METHODS, EnsembleError, duplicate_labels_line, ensemble


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="+", required=True, type=Path, help="run folders (output_dir of each run)")
    parser.add_argument("--weights", nargs="+", type=float, help="one weight per run (default: equal)")
    parser.add_argument("--method", default="softmax", choices=METHODS)
    parser.add_argument("--test_csv", help="test.csv whose order the submission follows (default: the first run's)")
    parser.add_argument("--output_dir", required=True, type=Path, help="where submission.csv and test_logits.npy go")
    parser.add_argument("--solution", help="answer key (ID,image_path,target) to score the submission against")
    parser.add_argument("--duplicate_labels", help="a data doctor's issues.csv (scripts/doctor.py): a test image that "
                                                   "copies a training drawing takes that drawing's class (its train.csv target)")
    args = parser.parse_args(argv)
    try:
        results = ensemble(args.runs, args.weights, args.method, args.test_csv, args.output_dir, args.solution,
                           args.duplicate_labels)
    except (EnsembleError, SketchDataError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"Wrote {args.output_dir / 'submission.csv'} ({results['test_images']} rows) from {len(args.runs)} runs "
          f"({args.method}).")
    if "oof_accuracy" in results:
        print(f"Validation accuracy of the ensemble on {results['oof_images']} images (out-of-fold when the runs are "
              f"folds): {results['oof_accuracy']:.4f}; runs alone: "
              + ", ".join(f"{a:.4f}" for a in results["run_eval_accuracy"]))
    if "duplicate_labels" in results:
        print(duplicate_labels_line(results))
    if "test_accuracy" in results:
        without = results.get("duplicate_labels", {}).get("test_accuracy_without")
        print(f"Test accuracy against {args.solution}: {results['test_accuracy']:.4f}"
              + (f" ({without:.4f} without --duplicate_labels)" if without is not None else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
