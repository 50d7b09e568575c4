#!/usr/bin/env python
"""Score a data doctor's issues.csv against the truth of a noisy copy (scripts/make_noisy_copy.py).

    python scripts/score_doctor.py --issues OUT/issues.csv --injected /tmp/qd100_noisy/injected.csv \\
        --output OUT/doctor_scores.json
    python scripts/score_doctor.py --injected /tmp/qd100_noisy/injected.csv --submission runs/noisy/submission.csv

Prints precision, recall, TP, FP and FN of the duplicate and label-issue detectors as a markdown table
(sketch_data/doctor_score.py says how clusters are matched). --submission adds the accuracy of a model trained on
the noisy copy on the original test images alone (the injected test copies left out; scripts/score_submission.py
needs the same rows as its key).
"""

import argparse
import json
import math
import sys
from pathlib import Path

from sketch_data.atomic import atomic_write_text
from sketch_data.doctor_score import INJECTED_COLUMNS, markdown_table, oof_accuracies, read_table, score_doctor
from sketch_data.noisy_copy import original_test_accuracy


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--injected", required=True, help="The noisy copy's injected.csv.")
    parser.add_argument("--issues", help="The doctor's issues.csv.")
    parser.add_argument("--submission", help="A submission.csv for the noisy copy's test.csv, scored on the original "
                        "test images (solution_original.csv beside --injected).")
    parser.add_argument("--oof", help="The --output_dir of a scripts/train_kfold.py run on the noisy copy: its "
                                      "out-of-fold accuracy against the given and the true labels.")
    parser.add_argument("--output", help="Also write the scores here as JSON.")
    args = parser.parse_args(argv)
    if not (args.issues or args.submission):
        parser.error("give --issues, --submission or both.")
    return args


def without_nan(value):
    """`value` with NaN (a ratio of nothing) as None, which JSON allows."""
    if isinstance(value, dict):
        return {key: without_nan(item) for key, item in value.items()}
    return None if isinstance(value, float) and math.isnan(value) else value


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    scores = {}
    try:
        if args.issues:
            scores = score_doctor(args.issues, args.injected)
            print(markdown_table(scores))
        if args.submission:
            if not Path(args.injected).is_file():
                raise ValueError(f"{args.injected}: no such file.")
            scores["original_test_accuracy"] = original_test_accuracy(args.submission, Path(args.injected).parent)
            print(f"accuracy on the original test images {scores['original_test_accuracy']:.4f}")
        if args.oof:
            scores["oof_accuracy"] = oof_accuracies(args.oof, read_table(args.injected, INJECTED_COLUMNS))
            print(f"out-of-fold accuracy on {scores['oof_accuracy']['images']} images: "
                  f"{scores['oof_accuracy']['against_given_labels']:.4f} against the labels given, "
                  f"{scores['oof_accuracy']['against_true_labels']:.4f} against the true labels")
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.output:
        atomic_write_text(args.output, json.dumps(without_nan(scores), indent=2) + "\n")
        print(f"Wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
