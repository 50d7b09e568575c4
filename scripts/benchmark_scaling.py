#!/usr/bin/env python
"""Training images/s of run_classification.py with 1 and 2 data-parallel processes on this machine's CPU.

    python scripts/benchmark_scaling.py --data_dir ../shared/data/quickdraw100 --output runs/benchmark_scaling.json

Each process count trains twice, for `warmup` and for `warmup + steps` optimizer steps; the difference of
the two train_runtime values is the time of `steps` steady steps, without start-up, first-batch and
warm-up costs. Every process has the same per-device batch (weak scaling, as on GPUs), so perfect
scaling doubles images/s. The 2-process runs use training_args/accelerate/cpu_2proc.yaml.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CPU_CONFIG = REPO / "training_args" / "accelerate" / "cpu_2proc.yaml"


def command(processes: int) -> list[str]:
    if processes == 1:
        return [sys.executable, "run_classification.py"]
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(CPU_CONFIG),
            "--num_processes", str(processes), "run_classification.py"]


def train_runtime(args, processes: int, max_steps: int, output_dir: Path) -> tuple[float, str]:
    """Seconds Trainer reports for `max_steps` steps, and the run's setup line (device, world size, precision)."""
    flags = [
        "--data_dir", args.data_dir, "--output_dir", str(output_dir), "--model_name_or_path", args.model,
        "--image_size", str(args.image_size), "--do_train", "--max_steps", str(max_steps),
        "--per_device_train_batch_size", str(args.batch), "--dataloader_num_workers", str(args.workers),
        "--validation_split", "0", "--eval_strategy", "no", "--save_strategy", "no", "--logging_strategy", "no",
        "--remove_unused_columns", "false", "--report_to", "none", "--disable_tqdm", "true", "--seed", "0",
    ]
    result = subprocess.run(command(processes) + flags, cwd=REPO, capture_output=True, text=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if result.returncode != 0:
        sys.exit(f"error: the {processes}-process run failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    setup = re.search(r"Device .*? world size \d+ .*?= \d+", result.stdout)
    runtime = json.loads((output_dir / "train_results.json").read_text())["train_runtime"]
    return runtime, setup.group(0) if setup else "?"


def measure(args, processes: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        short, _ = train_runtime(args, processes, args.warmup, Path(tmp) / "short")
        long, setup = train_runtime(args, processes, args.warmup + args.steps, Path(tmp) / "long")
    images = args.steps * args.batch * processes
    return {"processes": processes, "setup": setup, "steady_seconds": round(long - short, 3),
            "images": images, "images_per_second": round(images / (long - short), 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", default=str(REPO.parent / "shared" / "data" / "quickdraw100"))
    parser.add_argument("--model", default="convnext_atto")
    parser.add_argument("--image_size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32, help="per process")
    parser.add_argument("--workers", type=int, default=0, help="data-loading workers per process")
    parser.add_argument("--warmup", type=int, default=5, help="steps excluded from the measurement")
    parser.add_argument("--steps", type=int, default=20, help="steps measured")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--output", default="runs/benchmark_scaling.json")
    args = parser.parse_args()

    load_before = os.getloadavg()
    rows = []
    for processes in args.processes:
        print(f"measuring {processes} process(es)...", flush=True)
        rows.append(measure(args, processes))
    report = {"settings": vars(args), "cpu_count": os.cpu_count(), "load_average_before": load_before,
              "load_average_after": os.getloadavg(), "results": rows}
    base = rows[0]["images_per_second"] / rows[0]["processes"]
    print(f"\n{'processes':>9} {'images/s':>9} {'speed-up':>9} {'efficiency':>10}  setup")
    for row in rows:
        speedup = row["images_per_second"] / rows[0]["images_per_second"]
        row["efficiency"] = round(row["images_per_second"] / (base * row["processes"]), 3)
        print(f"{row['processes']:>9} {row['images_per_second']:>9.1f} {speedup:>9.2f} {row['efficiency']:>10.2f}  {row['setup']}")
    print(f"load average before {load_before[0]:.2f}, after {report['load_average_after'][0]:.2f} "
          f"({report['cpu_count']} CPUs)")
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
