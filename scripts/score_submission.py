#!/usr/bin/env python
"""Score a submission.csv against an answer key in the same format: `python scripts/score_submission.py SUB KEY`."""

import argparse
import sys

import pandas as pd


def accuracy(submission_csv: str, solution_csv: str) -> float:
    """Fraction of test images whose target matches the key; the rows must name the same images in the same order."""
    submission, solution = pd.read_csv(submission_csv), pd.read_csv(solution_csv)
    if list(submission["image_path"]) != list(solution["image_path"]):
        raise ValueError(f"{submission_csv} and {solution_csv} do not list the same image_path values in the same order.")
    return float((submission["target"].to_numpy() == solution["target"].to_numpy()).mean())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("submission")
    parser.add_argument("solution")
    args = parser.parse_args()
    try:
        print(f"accuracy {accuracy(args.submission, args.solution):.4f}")
    except (ValueError, KeyError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
