#!/usr/bin/env python
"""Fine-tuning speed of the shared pretrained checkpoint: full, frozen backbone, and frozen with the feature cache.

    python scripts/finetune_benchmark.py --out runs/finetune_benchmark.json   # --image_size 160 (default)
    python scripts/finetune_benchmark.py --quick    # smoke test: quickdraw-mini at 32 px, one window, one process

Each setup runs run_classification.main in a fresh process (sketch_train/benchmarking.trainer_run: Trainer, data
loading and augmentation included; training images/s = median over windows of steps after warm-up):
  full      every parameter trains
  frozen    --freeze_backbone true --feature_cache off: the frozen backbone runs over every image every epoch
  cached    --freeze_backbone true: the head trains on the cached pooled features; the cache is built first, into a
            fresh folder, and its build time (backbone over every image once) is reported as well
  cached_head_batch  the same with --head_batch (256) images per step, as a linear probe is usually trained: the
            head's step is so short that Trainer's fixed cost per step (optimizer, clipping, callbacks) dominates
The per-epoch speed-up of the cache is cached images/s / frozen images/s, at the same batch and at --head_batch.
"""

import argparse
import functools
import json
import sys
import tempfile
import time
from pathlib import Path

from sketch_train import benchmarking as measure
from sketch_train.benchmarking import cpu_name

REPO = Path(__file__).resolve().parent.parent

CHECKPOINT = REPO.parent / "shared" / "models" / "tf_efficientnet_lite0.in1k"
FROZEN = ["--freeze_backbone", "true"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model_name_or_path", default=str(CHECKPOINT))
    parser.add_argument("--data_dir", help="default ../shared/data/quickdraw100 (quickdraw-mini with --quick)")
    parser.add_argument("--image_size", type=int, default=160)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--head_batch", type=int, default=256, help="batch of the cached_head_batch setup")
    parser.add_argument("--precision", default="fp32", help="fp32: the preset's (bf16 autocast was slower here)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--window", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--quick", action="store_true", help="tiny settings, all in this process, for a smoke test; "
                                                               "its numbers mean nothing")
    args = parser.parse_args(argv)
    if args.quick:
        args.image_size, args.window, args.repeats = 32, 1, 1
    data = "quickdraw-mini" if args.quick else "quickdraw100"
    args.data_dir = args.data_dir or str(REPO.parent / "shared" / "data" / data)
    return args


def timed_cached_run(flags: list[str], **kwargs) -> dict:
    """trainer_run, also timing the feature cache's build (in this process: FeatureStore._compute is looked up
    through its class when the run starts)."""
    from sketch_train.features import FeatureStore

    build, seconds = FeatureStore._compute, []

    def timed(*args, **kw):
        start = time.perf_counter()
        arrays = build(*args, **kw)
        seconds.append(time.perf_counter() - start)
        return arrays

    FeatureStore._compute = timed
    try:
        result = measure.trainer_run(flags, **kwargs)
    finally:
        FeatureStore._compute = build  # --quick runs the next setups in this process
    return {**result, "cache_build_s": round(sum(seconds), 1) if seconds else None}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as cache:
        common = ["--data_dir", args.data_dir, "--model_name_or_path", args.model_name_or_path,
                  "--image_size", str(args.image_size), "--crop_pct", "1.0", "--do_train", "--validation_split", "0",
                  "--per_device_train_batch_size", str(args.batch), "--save_strategy", "no",
                  "--logging_strategy", "no", "--report_to", "none", "--disable_tqdm", "true",
                  "--log_level", "error", "--seed", "0", "--preresize_cache", cache, "--precision", args.precision]
        run = functools.partial(measure.run_setup, in_this_process=args.quick)
        steps = ["--max_steps", str(args.warmup + args.window * args.repeats)]
        timing = {"device": "cpu", "warmup": args.warmup, "window": args.window, "repeats": args.repeats,
                  "batch": args.batch, "time_loader": False}
        results = {
            "full": run(measure.trainer_run, flags=common + steps, **timing),
            "frozen": run(measure.trainer_run, flags=common + steps + FROZEN + ["--feature_cache", "off"], **timing),
            # whole epochs (63 steps each on quickdraw100): the head's steps are too short to time a few of
            "cached": run(timed_cached_run, flags=common + FROZEN + ["--num_train_epochs", "3"],
                          **{**timing, "window": 20}),
        }
        # 8 steps per epoch at 256: whole epochs again, and the windows span epochs
        head_batch = common + FROZEN + ["--num_train_epochs", "12", "--per_device_train_batch_size", str(args.head_batch)]
        results["cached_head_batch"] = run(measure.trainer_run, flags=head_batch,
                                           **{**timing, "window": 20, "batch": args.head_batch})
    rates = {name: result["images_per_s"] for name, result in results.items()}
    report = {"cpu": cpu_name(), "image_size": args.image_size, "images_per_s": rates,
              "cache_build_s": results["cached"]["cache_build_s"],
              "cache_speedup_per_epoch": round(rates["cached"] / rates["frozen"], 1),
              "cache_speedup_per_epoch_head_batch": round(rates["cached_head_batch"] / rates["frozen"], 1),
              "precision": results["full"]["precision"], "details": results}
    print(json.dumps({k: v for k, v in report.items() if k != "details"}, indent=1))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
