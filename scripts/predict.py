#!/usr/bin/env python
"""Predict a folder (or files, or glob patterns) of images into a CSV of top-k labels and scores; no test.csv needed.

    python scripts/predict.py --model runs/demo data/digits/test --output predictions.csv
    python scripts/predict.py --model your-name/sketch-convnext 'photos/**/*.png' --top_k 3 --tta hflip

The model is a run's output_dir or a Hub model id. Prediction runs batched through Trainer with the precision and
memory layout of `run_classification.py --do_predict`, and images are converted as in training (transparent areas
become white), so the same image gets the same scores on every path. Columns: image_path (relative to its folder,
or as matched), target (the top-1 class id), label_1, score_1, ... label_k, score_k.
"""

import argparse
import logging
import sys
import tempfile
from pathlib import Path

from transformers.utils import logging as transformers_logging

from sketch_data import SketchDataError
from sketch_train.arguments import SketchTrainingArguments
from sketch_train.inference import predict_files
from sketch_train.model import ModelSourceError
from sketch_train.result_files import write_top_k


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+", help="Folders (searched recursively), image files or quoted glob patterns.")
    parser.add_argument("--model", required=True, help="A run's output_dir or a Hub model id.")
    parser.add_argument("--output", default="predictions.csv", help="CSV to write (default: predictions.csv).")
    parser.add_argument("--top_k", type=int, default=5, help="Labels per image (default 5).")
    parser.add_argument("--tta", nargs="*", default=[], choices=["hflip", "vflip"],
                        help="Average the logits with flipped views, as run_classification.py --tta does.")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--precision", default="auto", help="auto, fp32, fp16 or bf16, as in run_classification.py.")
    parser.add_argument("--channels_last", type=lambda v: v.lower() in ("1", "true", "yes"), default=True)
    parser.add_argument("--dataloader_num_workers", type=int, default=-1, help="-1: picked from the machine.")
    parser.add_argument("--bad_images", choices=["error", "skip"], default="error",
                        help="error: stop and list unreadable images; skip: leave them out and count them.")
    parser.add_argument("--cache_dir", help="Where Hub models are cached.")
    args = parser.parse_args(argv)
    if args.top_k < 1 or args.batch_size < 1:
        parser.error("--top_k and --batch_size must be at least 1.")
    return args


def predict(args: argparse.Namespace, work_dir: str) -> Path:
    """Write the CSV of top-k predictions for `args.inputs`; returns its path."""
    # The arguments --do_predict runs under, so precision, layout and batching are the same.
    run_args = SketchTrainingArguments(
        output_dir=work_dir, precision=args.precision, channels_last=args.channels_last,
        per_device_eval_batch_size=args.batch_size, dataloader_num_workers=args.dataloader_num_workers,
    )
    found = predict_files(args.model, args.inputs, run_args, args.tta, args.bad_images, args.cache_dir)
    path = write_top_k(found.image_paths, found.logits, found.label_names, args.top_k, args.output)
    skipped = f"; skipped {found.skipped} unreadable image(s)" if found.skipped else ""
    count = len(found.logits)
    print(f"Wrote {path} ({count} image{'s' * (count != 1)}, top {min(args.top_k, len(found.label_names))}{skipped})")
    return path


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(format="%(levelname)s | %(message)s", level=logging.INFO)
    transformers_logging.set_verbosity_warning()
    try:
        with tempfile.TemporaryDirectory(prefix="predict-") as work_dir:
            predict(args, work_dir)
    except (SketchDataError, ModelSourceError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
