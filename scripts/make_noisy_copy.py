#!/usr/bin/env python
"""Copy a competition-layout data set with seeded, recorded label flips and near-duplicates, to score a data doctor.

    python scripts/make_noisy_copy.py --source ../shared/data/quickdraw100 --output_dir /tmp/qd100_noisy
    python scripts/make_noisy_copy.py --source data --output_dir /tmp/noisy --seed 1 --label_noise 0.05 \\
        --within_class 100 --cross_class 50 --train_test 50

The truth goes to OUTPUT_DIR/injected.csv (for scripts/score_doctor.py), and the answer key of the original test
images alone to OUTPUT_DIR/solution_original.csv. The same flags give the same bytes; a previous noisy copy in
--output_dir is replaced, any other non-empty folder refused.
"""

import argparse
import logging
import sys
import time

from sketch_data.noisy_copy import NoiseCounts, make_noisy_copy


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", required=True, help="A data set in the competition layout (read only).")
    parser.add_argument("--output_dir", required=True,
                        help="An empty or new folder (a previous noisy copy there is replaced).")
    parser.add_argument("--seed", type=int, default=0, help="Same seed, same files (default 0).")
    parser.add_argument("--label_noise", type=float, default=0.1,
                        help="Fraction of the train images moved to another class (default 0.1).")
    parser.add_argument("--within_class", type=int, default=60, help="Near-duplicates in their own class (default 60).")
    parser.add_argument("--cross_class", type=int, default=40, help="Near-duplicates in another class (default 40).")
    parser.add_argument("--train_test", type=int, default=40,
                        help="Near-duplicates of train images in test/ (default 40).")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", level=logging.INFO)
    start = time.perf_counter()
    counts = NoiseCounts(args.label_noise, args.within_class, args.cross_class, args.train_test)
    try:
        injected = make_noisy_copy(args.source, args.output_dir, counts, args.seed)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    kinds = injected["kind"].value_counts()
    print(f"Copied {args.source} to {args.output_dir} in {time.perf_counter() - start:.1f} s, injecting "
          + ", ".join(f"{kinds.get(kind, 0)} {kind}" for kind in
                      ("label", "duplicate", "cross_class_duplicate", "train_test_duplicate")))
    transforms = injected["transform"][injected["transform"] != ""]
    if len(transforms):
        dihedral = transforms.str.split("+").str[0].where(lambda op: ~op.str.startswith(("rescale", "jpeg")))
        print(f"Copies: {int(dihedral.notna().sum())} of {len(transforms)} flipped or rotated, "
              f"{int(transforms.str.contains('rescale').sum())} rescaled, all re-encoded as JPEG")
    print(f"Truth: {args.output_dir}/injected.csv; original test key: {args.output_dir}/solution_original.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
