#!/usr/bin/env python
"""The 5-fold frozen-backbone workflow at the competition's size, timed step by step, with the disk each cache takes.

    python scripts/make_synthetic_data.py --output_dir data/synthetic        # 500 classes, 15,021 + 10,014 JPEGs
    python scripts/benchmark_scale.py --data_dir data/synthetic --output runs/benchmark_scale.json

1. encoding: decode, resize and encode a sample of the training images as the pre-resize cache would, as PNG at
   zlib levels 6, 1 and 0 and as raw uint8 arrays: ms per image to build and to read back, KiB per image.
2. first run: `scripts/train_kfold.py` with empty caches, in this process, each step timed: the data check, the
   pre-resize cache, the backbone features (train.csv's eval view, test.csv's eval and flipped views), each
   fold's head training with validation, its TTA prediction, its fixed cost (everything else: reading the CSVs
   and caches, building the model and Trainer), and the ensemble.
3. rerun: the same command again in a new process, into new run folders, with every cache in place: when its
   first head starts training, and its total time.
4. full fine-tuning: --finetune_steps steps of the whole model on the same images, at the same size, in a
   process of its own: training images/s against what the data loader alone delivers
   (sketch_train/benchmarking.py), and so the time of one epoch and the share of it the loader would need.

--quick is a smoke test of the script itself (2 folds of 1 epoch, a few images and steps, all in this process).
"""

import argparse
import functools
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import datasets
import pandas as pd
from PIL import Image

import run_classification
from sketch_data import cache as preresize
from sketch_data import dataset as sketch_dataset
from sketch_train import benchmarking
from sketch_train import features as feature_cache
from sketch_train.arguments import ModelArguments
from sketch_train.model import build_model
from sketch_train.trainer import SketchTrainer

REPO = Path(__file__).resolve().parent.parent

DEFAULT_MODEL = str(REPO.parent / "shared" / "models" / "tf_efficientnet_lite0.in1k")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", required=True, help="a data set in the competition layout")
    parser.add_argument("--model_name_or_path", default=DEFAULT_MODEL)
    parser.add_argument("--image_size", type=int, default=128)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=10, help="head epochs per fold")
    parser.add_argument("--work_dir", help="runs and caches (default: a temporary folder, removed at the end)")
    parser.add_argument("--encoding_sample", type=int, default=500, help="images in the encoding comparison")
    parser.add_argument("--finetune_steps", type=int, default=40, help="0: skip the full fine-tuning part")
    parser.add_argument("--finetune_batch", type=int, default=32)
    parser.add_argument("--output", help="write the results here as JSON")
    parser.add_argument("--quick", action="store_true", help="smoke test: 2 folds of 1 epoch, a few images and steps, "
                                                             "the fine-tuning in this process")
    args = parser.parse_args(argv)
    if args.quick:
        args.folds, args.epochs, args.encoding_sample, args.finetune_steps, args.finetune_batch = 2, 1, 8, 4, 8
    return args


def kfold_flags(args, output_dir: Path, cache: Path) -> list[str]:
    """The frozen-backbone recipe of the strongest public entries, at CPU size: a linear head on each fold,
    validated every epoch, the best epoch kept, the test set predicted with the horizontal flip; crop 1.0 (the
    whole drawing), which every part of this benchmark uses, so that they share one pre-resize cache."""
    return [
        str(REPO / "training_args" / "demo.yaml"), str(args.folds), "--build_demo_data", "false", "--data_dir", args.data_dir,
        "--model_name_or_path", args.model_name_or_path, "--image_size", str(args.image_size), "--crop_pct", "1.0",
        "--freeze_backbone", "true", "--tta", "hflip", "--preresize_cache", str(cache),
        "--num_train_epochs", str(args.epochs), "--per_device_train_batch_size", "256",
        "--per_device_eval_batch_size", "256", "--learning_rate", "0.01", "--warmup_steps", "0",
        "--save_strategy", "epoch", "--save_total_limit", "1", "--logging_strategy", "epoch",
        "--disable_tqdm", "true", "--report_to", "none", "--output_dir", str(output_dir),
    ]


def encoding_costs(data_dir: Path, model: str, image_size: int, sample: int) -> list[dict]:
    """ms per image to make and to read back each way of storing a pre-resized image, and KiB per image."""
    frame = pd.read_csv(data_dir / "train.csv")
    frame = frame.sample(n=min(sample, len(frame)), random_state=0)
    resize = preresize.eval_resize(build_model(ModelArguments(model_name_or_path=model, image_size=image_size,
                                                              crop_pct=1.0), ["a", "b"])[1])
    images = [preresize.resized_image(str(data_dir / "train" / path), resize) for path in frame["image_path"]]
    # name: (encode an image, decode its bytes given the image's mode and size)
    ways = {f"PNG level {level}": (functools.partial(preresize.png_bytes, level=level),
                                   lambda data, _: Image.open(io.BytesIO(data))) for level in (6, 1, 0)}
    ways["raw uint8"] = (lambda image: image.tobytes(),
                         lambda data, image: Image.frombytes(image.mode, image.size, data))
    rows = []
    for name, (encode, decode) in ways.items():
        start = time.perf_counter()
        blobs = [encode(image) for image in images]
        encode_ms = (time.perf_counter() - start) / len(images) * 1e3
        start = time.perf_counter()
        for image, blob in zip(images, blobs):
            decode(blob, image).load()
        rows.append({"storage": name, "build_ms_per_image": round(encode_ms, 3),
                     "read_ms_per_image": round((time.perf_counter() - start) / len(images) * 1e3, 3),
                     "KiB_per_image": round(statistics.mean(len(blob) for blob in blobs) / 1024, 1)})
    return rows


class StepClock:
    """Seconds spent in chosen functions, per fold: the functions are wrapped in place for the run."""

    def __init__(self):
        self.fold = -1
        self.seconds = defaultdict(lambda: defaultdict(float))
        self.first_call = {}  # step -> when it was first entered (perf_counter)
        self.originals = []

    def wrap(self, owner, name: str, step: str) -> None:
        original = getattr(owner, name)
        clock = self

        def timed(*args, **kwargs):
            start = time.perf_counter()
            clock.first_call.setdefault(step, start)
            try:
                return original(*args, **kwargs)
            finally:
                clock.seconds[clock.fold][step] += time.perf_counter() - start

        self.originals.append((owner, name, original))
        setattr(owner, name, timed)

    @contextmanager
    def installed(self):
        try:
            yield self
        finally:
            for owner, name, original in reversed(self.originals):
                setattr(owner, name, original)


def first_run(args, work: Path) -> dict:
    """The k-fold command in this process, with every step timed."""
    import train_kfold

    clock = StepClock()
    clock.wrap(sketch_dataset, "scan_images", "data check")
    clock.wrap(preresize, "preresized", "pre-resize cache")
    clock.wrap(feature_cache.FeatureStore, "_compute", "features: compute")
    clock.wrap(feature_cache.FeatureStore, "features_of", "features: total")
    clock.wrap(SketchTrainer, "train", "heads + validation")
    clock.wrap(run_classification, "tta_logits", "TTA prediction")
    clock.wrap(SketchTrainer, "predict", "all prediction")
    clock.wrap(train_kfold, "ensemble_folds", "ensemble")
    original_cli = run_classification.cli

    def counted_cli(*a, **k):
        clock.fold += 1
        start = time.perf_counter()
        try:
            return original_cli(*a, **k)
        finally:
            clock.seconds[clock.fold]["fold total"] = time.perf_counter() - start

    with clock.installed():
        run_classification.cli = counted_cli
        try:
            start = time.perf_counter()
            code = train_kfold.main(kfold_flags(args, work / "first" / "run", work / "cache"))
            total = time.perf_counter() - start
        finally:
            run_classification.cli = original_cli
    if code:
        sys.exit(f"error: the first run failed with exit code {code}")
    folds = []
    for fold in range(args.folds):
        steps = dict(clock.seconds[fold])
        # What each fold pays whatever it trains (CSVs, caches, model, Trainer): all but training and prediction, and
        # the first fold's one-off work: the first check of every image and the building of the caches
        one_off = ("data check", "pre-resize cache", "features: compute") if fold == 0 else ()
        steps["fixed cost"] = steps["fold total"] - sum(steps.get(step, 0) for step in (
            "heads + validation", "all prediction", *one_off))
        folds.append({step: round(value, 2) for step, value in steps.items()})
    heads = sum(clock.seconds[fold]["heads + validation"] + clock.seconds[fold]["all prediction"]
                for fold in range(args.folds)) + clock.seconds[args.folds - 1]["ensemble"]
    ensemble = json.loads((work / "first" / "run_ensemble" / "ensemble_results.json").read_text())
    return {"total_s": round(total, 1), "folds": folds, "heads_tta_ensemble_s": round(heads, 1),
            "ensemble_s": round(clock.seconds[args.folds - 1]["ensemble"], 2),
            "oof_accuracy": ensemble.get("oof_accuracy"), "test_accuracy": test_accuracy(args.data_dir, work)}


def test_accuracy(data_dir: str, work: Path) -> float | None:
    solution = Path(data_dir) / "solution.csv"
    if not solution.is_file():
        return None
    truth = pd.read_csv(solution).set_index("image_path")["target"]
    submission = pd.read_csv(work / "first" / "run_ensemble" / "submission.csv")
    return round(float((submission.set_index("image_path")["target"] == truth).mean()), 4)


def rerun(args, work: Path) -> dict:
    """The same command in a new process, every cache in place: seconds until the first head trains, and in all."""
    if args.quick:
        return rerun_here(args, work)
    command = [sys.executable, "scripts/train_kfold.py", *kfold_flags(args, work / "rerun" / "run", work / "cache")]
    start = time.perf_counter()
    first_head = None
    with subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"}) as process:
        for line in process.stdout:
            if first_head is None and "| world size" in line:  # logged just before Trainer.train
                first_head = time.perf_counter() - start
    if process.returncode or first_head is None:
        sys.exit(f"error: the rerun failed with exit code {process.returncode}, or logged no '| world size' line")
    return {"first_head_starts_s": round(first_head, 1), "total_s": round(time.perf_counter() - start, 1)}


def rerun_here(args, work: Path) -> dict:
    """--quick: the rerun in this process, without a new process's imports; its first head timed at Trainer.train."""
    import train_kfold

    clock = StepClock()
    clock.wrap(SketchTrainer, "train", "heads")
    with clock.installed():
        start = time.perf_counter()
        code = train_kfold.main(kfold_flags(args, work / "rerun" / "run", work / "cache"))
    if code:
        sys.exit(f"error: the rerun failed with exit code {code}")
    return {"first_head_starts_s": round(clock.first_call["heads"] - start, 1),
            "total_s": round(time.perf_counter() - start, 1)}


def full_finetune(args, cache: Path) -> dict:
    """Training images/s of the whole model and of its data loader alone, on the same images and cache."""
    batch = args.finetune_batch
    training_images = round(len(pd.read_csv(Path(args.data_dir) / "train.csv")) * 0.8)
    steps = min(args.finetune_steps, training_images // batch - 1)  # the loader is timed on one epoch's batches
    flags = ["--data_dir", args.data_dir, "--model_name_or_path", args.model_name_or_path,
             "--image_size", str(args.image_size), "--crop_pct", "1.0", "--do_train", "--max_steps", str(steps),
             "--per_device_train_batch_size", str(batch), "--validation_split", "0.2", "--eval_strategy", "no",
             "--save_strategy", "no", "--logging_strategy", "no", "--remove_unused_columns", "false",
             "--report_to", "none", "--disable_tqdm", "true", "--seed", "0", "--preresize_cache", str(cache)]
    window = max(1, steps // 8)
    rates = benchmarking.run_setup(benchmarking.trainer_run, in_this_process=args.quick, flags=flags, device="cpu",
                                   warmup=window, window=window, repeats=(steps - window) // window, batch=batch)
    train_rate, loader_rate = rates["images_per_s"], rates["loader"]["images_per_s"]
    return {"train_images_per_s": train_rate, "loader_images_per_s": loader_rate,
            "workers": rates["workers"], "epoch_s": round(training_images / train_rate, 1),
            "loader_share_of_epoch": round(train_rate / loader_rate, 3)}


def disk_use(folder: Path) -> dict[str, float]:
    """MiB on disk per kind of cache file."""
    kinds = {"pre-resized images (Arrow)": "preresized-*.arrow", "backbone features (.npy)": "features-*.npy"}
    return {kind: round(sum(file.stat().st_size for file in folder.glob(pattern)) / 2**20, 3)
            for kind, pattern in kinds.items()}


@contextmanager
def datasets_cache(work: Path) -> Iterator[Path]:
    """Yield `work`, with the datasets cache (where the data check keeps its record) in it, here and in the
    processes started meanwhile, so that the first run checks every image; then put the previous one back."""
    before = os.environ.get("HF_DATASETS_CACHE"), datasets.config.HF_DATASETS_CACHE
    os.environ["HF_DATASETS_CACHE"] = str(work / "datasets")
    datasets.config.HF_DATASETS_CACHE = work / "datasets"
    try:
        yield work
    finally:
        if before[0] is None:
            os.environ.pop("HF_DATASETS_CACHE")
        else:
            os.environ["HF_DATASETS_CACHE"] = before[0]
        datasets.config.HF_DATASETS_CACHE = before[1]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not (Path(args.data_dir) / "train.csv").is_file():
        print(f"error: {args.data_dir} has no train.csv; make one with `python scripts/make_synthetic_data.py "
              f"--output_dir {args.data_dir}`.", file=sys.stderr)
        return 2
    args.data_dir = str(Path(args.data_dir).resolve())  # the rerun runs from the repository
    sys.path.insert(0, str(REPO / "scripts"))  # train_kfold
    with tempfile.TemporaryDirectory() as temporary, datasets_cache(Path(args.work_dir or temporary)) as work:
        results = {"cpu": benchmarking.cpu_name(), "cores": len(os.sched_getaffinity(0)),
                   "data": args.data_dir, "model": args.model_name_or_path, "image_size": args.image_size}
        results["encoding"] = encoding_costs(Path(args.data_dir), args.model_name_or_path, args.image_size,
                                            args.encoding_sample)
        results["first_run"] = first_run(args, work)
        results["cache_MiB"] = disk_use(work / "cache")
        results["rerun"] = rerun(args, work)
        if args.finetune_steps:
            results["full_finetune"] = full_finetune(args, work / "cache")
    print(json.dumps(results, indent=2))
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
