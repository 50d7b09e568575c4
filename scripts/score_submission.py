#!/usr/bin/env python
"""Score a submission.csv against an answer key in the same format: `python scripts/score_submission.py SUB KEY`."""

import argparse
import sys

from sketch_train.result_files import submission_accuracy


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("submission")
    parser.add_argument("solution")
    args = parser.parse_args()
    try:
        print(f"accuracy {submission_accuracy(args.submission, args.solution):.4f}")
    except (ValueError, KeyError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
