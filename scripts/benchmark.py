#!/usr/bin/env python
"""Training and inference speed of the pipeline on this machine, next to a naive baseline and the bare model step.

    python scripts/benchmark.py [--data_dir ../shared/data/quickdraw100] [--out bench.json]
    python scripts/benchmark.py --quick --out /tmp/bench.json    # smoke test: test_convnext at 32 px, a few steps

For each model, in the same run and each in a fresh process:
  default  run_classification.py with its default settings (precision auto, channels_last, data workers auto,
           fused AdamW, images pre-resized once, freed memory kept on a CPU) on the real JPEG sketches, with data
           loading and augmentation; then --do_predict, scripts/predict.py and pipeline() on the test images, and
           the DataLoader alone
  uncached the same with --preresize_cache off (every epoch decodes and resizes the JPEGs)
  naive    the same model in fp32, NCHW, JPEGs decoded in the training process (0 workers, no cache), for-loop
           AdamW, glibc's default allocator behaviour
  compute  a plain PyTorch loop on pre-made tensors: same model, resolution, precision, batch and allocator setting
           as default, no data, no Trainer
  compiled (only when asked for with --setups) the default setup with --torch_compile true
Training images/s are medians over windows of steps after warm-up steps; with --rounds N every setup runs N times,
in turn, and the median round counts (the machine's speed drifts over minutes). MFU = images/s x 3 x forward FLOPs
(FlopCounterMode) / the matmul peak of the same precision, measured in the same run.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

import pandas as pd
import torch

from sketch_train import benchmarking as measure
from sketch_train.benchmarking import cpu_name
from sketch_train.machine import auto_precision

REPO = Path(__file__).resolve().parent.parent

SETUPS = ("default", "uncached", "naive", "compute")
OPTIONAL_SETUPS = ("compiled",)  # measured on request: compiling takes 30-60 s per model on 2 cores
NAIVE_FLAGS = ["--precision", "fp32", "--channels_last", "false", "--dataloader_num_workers", "0",
               "--optim", "adamw_torch", "--preresize_cache", "off", "--keep_freed_memory", "false"]
DEFAULT_MODELS = {"cpu": ["convnext_atto@128", "convnext_tiny@224"], "cuda": ["convnext_base@448"]}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", help="competition layout; default ../shared/data/quickdraw100 "
                                           "(quickdraw-mini with --quick)")
    parser.add_argument("--out", default="bench.json", help="JSON report")
    parser.add_argument("--models", nargs="+", help="architecture@resolution; default: "
                                                    + "; ".join(f"{k}: {' '.join(v)}" for k, v in DEFAULT_MODELS.items()))
    parser.add_argument("--setups", nargs="+", choices=SETUPS + OPTIONAL_SETUPS, default=list(SETUPS))
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=4, help="steps left out before timing")
    parser.add_argument("--window", type=int, default=8, help="steps per timed window")
    parser.add_argument("--repeats", type=int, default=3, help="timed windows; the median is reported")
    parser.add_argument("--rounds", type=int, default=1, help="measure every setup this many times, in turn; "
                                                             "the median over rounds is reported")
    parser.add_argument("--pipeline_images", type=int, default=64, help="images per timed pipeline() call")
    parser.add_argument("--matmul_size", type=int, default=4096)
    parser.add_argument("--quick", action="store_true", help="tiny settings, all in this process, for a smoke test; "
                                                               "its numbers mean nothing")
    args = parser.parse_args(argv)
    if args.quick:
        args.models = args.models or ["test_convnext@32"]
        args.batch, args.warmup, args.window, args.pipeline_images, args.matmul_size = 4, 1, 1, 4, 256
    data = "quickdraw-mini" if args.quick else "quickdraw100"
    args.data_dir = args.data_dir or str(REPO.parent / "shared" / "data" / data)
    if not (Path(args.data_dir) / "train.csv").is_file():
        parser.error(f"{args.data_dir} has no train.csv; give --data_dir a folder in the competition layout.")
    return args


def run_flags(args, architecture: str, size: int, cache_dir: str) -> dict[str, list[str]]:
    """run_classification.py flags of each Trainer setup: only what a benchmark must fix, defaults otherwise."""
    steps = args.warmup + args.window * args.repeats
    common = [
        "--data_dir", args.data_dir, "--model_name_or_path", architecture, "--image_size", str(size),
        "--do_train", "--max_steps", str(steps), "--validation_split", "0",
        "--per_device_train_batch_size", str(args.batch), "--per_device_eval_batch_size", str(args.batch),
        "--save_strategy", "no", "--logging_strategy", "no", "--report_to", "none", "--disable_tqdm", "true",
        "--remove_unused_columns", "false", "--log_level", "error", "--seed", "0",
    ]
    cached = ["--preresize_cache", cache_dir]  # the default, auto, in a folder of the benchmark's own
    return {"default": common + cached + ["--do_predict"], "uncached": common + ["--preresize_cache", "off"],
            "naive": common + NAIVE_FLAGS, "compiled": common + cached + ["--torch_compile", "true"]}


def measure_model(args, spec: str, device: str, precision: str, num_classes: int, cache_dir: str) -> dict:
    """Every setup of one model, `--rounds` times in turn, so that a slow spell of the machine hits them all."""
    architecture, size = spec.split("@")
    timing = {"device": device, "warmup": args.warmup, "window": args.window, "repeats": args.repeats}
    flags = run_flags(args, architecture, int(size), cache_dir)
    rounds = {setup: [] for setup in args.setups}
    for round_number in range(1, args.rounds + 1):
        for setup in args.setups:
            print(f"[benchmark] {spec}: {setup}, round {round_number} of {args.rounds}", flush=True)
            if setup == "compute":
                result = measure.run_setup(
                    measure.compute_loop, args.quick, architecture=architecture, image_size=int(size), batch=args.batch,
                    num_classes=num_classes, precision=precision, channels_last=True, keep_freed=device == "cpu",
                    **timing)
            else:
                first = round_number == 1  # inference and the loader alone are timed once
                result = measure.run_setup(
                    measure.trainer_run, args.quick, flags=flags[setup] if first else _train_only(flags[setup]),
                    batch=args.batch, pipeline_images=args.pipeline_images if setup == "default" and first else 0,
                    time_loader=first, **timing)
            rounds[setup].append(result)
    flops = measure.model_forward_flops(architecture, int(size), num_classes)
    return {"model": architecture, "image_size": int(size), "batch": args.batch,
            "forward_flops_per_image": int(flops), "setups": {name: _median_round(r) for name, r in rounds.items()}}


def _train_only(flags: list[str]) -> list[str]:
    return [flag for flag in flags if flag != "--do_predict"]


def _median_round(results: list[dict]) -> dict:
    """The first round's measurements, with the median training speed over the rounds, and each round's."""
    speeds = [r["images_per_s"] for r in results]
    return {**results[0], "images_per_s": round(statistics.median(speeds), 2) if None not in speeds else None,
            "rounds": speeds}


def add_ratios(row: dict, peaks: dict) -> None:
    """Ratios to the naive and compute-only setups, MFU, and loader / training speed, in place."""
    setups, flops_per_image = row["setups"], row["forward_flops_per_image"]
    rate = {name: result.get("images_per_s") for name, result in setups.items()}
    for result in setups.values():
        speed = result.get("images_per_s")
        result["vs_naive"] = _ratio(speed, rate.get("naive"))
        result["vs_compute"] = _ratio(speed, rate.get("compute"))
        result["mfu"] = (round(speed * 3 * flops_per_image / (peaks[result["precision"]] * 1e9), 6)
                         if speed and flops_per_image and result["precision"] in peaks else None)
        loader = result.get("loader", {}).get("images_per_s")
        result["loader_vs_train"] = _ratio(loader, speed)


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


def print_tables(report: dict) -> None:
    training, inference = [], []
    for row in report["models"]:
        for name, s in row["setups"].items():
            training.append([report["device"], row["model"], row["image_size"], name, s["precision"],
                             "NHWC" if s["channels_last"] else "NCHW", _text(s["workers"]), s["optimizer"],
                             _yes(s["preresized"]), _yes(s["keep_freed_memory"]),
                             _text(s["images_per_s"]), _text(s["vs_naive"], "x"), _text(s["vs_compute"], "x"),
                             _text(s["mfu"] and round(100 * s["mfu"], 2), "%"), _text(s["peak_rss_mb"]),
                             _text(s.get("cuda_max_allocated_mb"))])
            if "loader" in s:
                inference.append([row["model"], row["image_size"], name, _text(s["workers"]),
                                  _text(s["loader"]["images_per_s"]), _text(s["loader_vs_train"], "x"),
                                  _text(s["decode_augment_per_worker"]["images_per_s"]),
                                  _text(s.get("predict", {}).get("images_per_s")),
                                  _text(s.get("predict_script", {}).get("images_per_s")),
                                  _text(s.get("pipeline", {}).get("images_per_s")),
                                  _text(s.get("pipeline_fast", {}).get("images_per_s"))])
    settings = report["settings"]
    print(f"\nTraining, images/s (median of {settings['repeats']} windows of {settings['window']} steps, then of "
          f"{settings['rounds']} round(s); matmul peak GFLOP/s "
          f"{report['matmul_peak_gflops']}; load average {report['load_average_before']} before, "
          f"{report['load_average_after']} after)")
    _table(["device", "model", "res", "setup", "precision", "layout", "workers", "optimizer", "cache", "keep freed",
            "img/s", "vs naive", "vs compute", "MFU", "peak RSS MB", "CUDA MB"], training)
    print("\nData and inference, images/s")
    _table(["model", "res", "setup", "workers", "loader", "loader/train", "decode+aug/worker", "--do_predict",
            "predict.py", "pipeline", "pipeline fast"], inference)


def _text(value, unit: str = "") -> str:
    return "-" if value is None else f"{value}{unit}"


def _yes(flag: bool | None) -> str:
    return "-" if flag is None else "yes" if flag else "no"


def _table(header: list[str], rows: list[list]) -> None:
    rows = [header] + [[str(v) for v in r] for r in rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for r in rows:
        print("  ".join(v.rjust(w) if i >= 2 else v.ljust(w) for i, (v, w) in enumerate(zip(r, widths))))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # bare architectures need no network; fail fast without it
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.quick:
        torch.set_num_threads(1)  # tiny ops on threads that other processes preempt can take 100x longer
    precision = auto_precision()
    models = args.models or DEFAULT_MODELS[device]
    num_classes = pd.read_csv(Path(args.data_dir) / "train.csv")["class_name"].nunique()
    load_before = [round(x, 2) for x in os.getloadavg()]
    print(f"[benchmark] matmul peak {args.matmul_size}^2", flush=True)
    peaks = measure.run_setup(measure.matmul_peak, args.quick, device=device, precisions=sorted({"fp32", precision}),
                              size=args.matmul_size)
    rows = []
    with tempfile.TemporaryDirectory() as cache_dir:
        for spec in models:
            rows.append(measure_model(args, spec, device, precision, num_classes, cache_dir))
            add_ratios(rows[-1], peaks)
    report = {
        "device": device, "device_name": torch.cuda.get_device_name() if device == "cuda" else cpu_name(),
        "cores": len(os.sched_getaffinity(0)), "torch": torch.__version__, "default_precision": precision,
        "load_average_before": load_before, "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "matmul_peak_gflops": peaks, "models": rows,
    }
    print_tables(report)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nWrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
