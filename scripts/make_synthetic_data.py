#!/usr/bin/env python
"""Write a seeded synthetic sketch data set in the competition layout, by default at the competition's size.

    python scripts/make_synthetic_data.py --output_dir data/synthetic
    python scripts/make_synthetic_data.py --output_dir data/synthetic-small --num_classes 50 --train_images 1500 \\
        --test_images 1000 --seed 1 --workers 4

For timing and scaling runs where the real data is not at hand: 500 classes, 15,021 training and 10,014 test images
of 200-500 pixels a side, with solution.csv as the answer key. The same flags give byte-identical files on any
machine with any number of workers; a set already in --output_dir with the same flags is reused.
"""

import argparse
import logging
import sys
import time
from pathlib import Path

from sketch_data.synthetic import write_synthetic_competition


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", required=True, help="An empty or new folder (a finished set there is reused).")
    parser.add_argument("--num_classes", type=int, default=500, help="Classes (default 500, as the competition).")
    parser.add_argument("--train_images", type=int, default=15_021, help="Training images (default 15021).")
    parser.add_argument("--test_images", type=int, default=10_014, help="Test images (default 10014).")
    parser.add_argument("--seed", type=int, default=0, help="Same seed, same files (default 0).")
    parser.add_argument("--workers", type=int, help="Processes drawing (default: every available core).")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", level=logging.INFO)
    start, existed = time.perf_counter(), (Path(args.output_dir) / "train.csv").is_file()
    try:
        root = write_synthetic_competition(args.output_dir, args.num_classes, args.train_images, args.test_images,
                                           args.seed, args.workers)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    verb = "Reused" if existed else "Wrote"  # a set with other flags would have been refused above
    print(f"{verb} {args.train_images} training images ({args.num_classes} classes) and {args.test_images} test "
          f"images to {root} in {time.perf_counter() - start:.1f} s")
    print(f"Next: python run_classification.py training_args/convnext_base_448.yaml --data_dir {root} "
          "--output_dir runs/synthetic")
    return 0


if __name__ == "__main__":
    sys.exit(main())
