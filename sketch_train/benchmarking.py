"""The measurements behind scripts/benchmark.py and scripts/finetune_benchmark.py. Each public function runs in a fresh process of its own, so
that its warm-up, thread pools and peak memory belong to that one setup.

Throughput is timed in windows of consecutive steps after warm-up steps; a result is the median over windows.
"""

import multiprocessing
import platform
import resource
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch
from transformers import TrainerCallback

from sketch_data.cache import preresize_folder
from sketch_train.machine import keep_freed_memory

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def run_setup(function, in_this_process: bool, **kwargs) -> dict:
    """function(**kwargs) in a new process, so that its warm-up and peak memory are its own; a smoke test
    (`--quick`) runs it in this one."""
    if in_this_process:
        return function(**kwargs)
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(function, **kwargs).result()


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def window_rates(marks: list[float], warmup: int, window: int, repeats: int, images_per_step: int) -> list[float]:
    """Images/s of `repeats` windows of `window` steps each, from the times at which steps ended.

    Windows shrink when a run has fewer steps (e.g. a short test set); none fit -> [].
    """
    steady = marks[warmup:]
    window = min(window, (len(steady) - 1) // repeats) or (1 if len(steady) > 1 else 0)
    windows = [steady[i:i + window + 1] for i in range(0, len(steady) - window, window)][:repeats] if window else []
    return [window * images_per_step / (w[-1] - w[0]) for w in windows]


def summary(rates: list[float]) -> dict:
    return {"images_per_s": round(statistics.median(rates), 2) if rates else None,
            "windows": [round(r, 2) for r in rates]}


def peak_memory(device: str) -> dict:
    """Peak RSS of this process and of its largest child (a data-loading worker), and CUDA's max allocated."""
    mb = 1024  # ru_maxrss is in KiB on Linux
    memory = {"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / mb),
              "peak_worker_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / mb)}
    if device == "cuda":
        memory["cuda_max_allocated_mb"] = round(torch.cuda.max_memory_allocated() / 2**20)
    return memory


def matmul_peak(device: str, precisions: list[str], size: int, repeats: int = 5) -> dict:
    """GFLOP/s of a size x size matmul per precision: the hardware's practical peak, for MFU."""
    peaks = {}
    per_timing = 1 if device == "cpu" else 50  # a GPU matmul is too short to time alone
    for precision in precisions:
        a, b = (torch.randn(size, size, device=device, dtype=DTYPES[precision]) for _ in range(2))
        times = []
        for i in range(repeats + 2):  # the first two warm up
            synchronize(device)
            start = time.perf_counter()
            for _ in range(per_timing):
                a @ b
            synchronize(device)
            times.append((time.perf_counter() - start) / per_timing)
        peaks[precision] = round(2 * size**3 / statistics.median(times[2:]) / 1e9, 1)
    return peaks


def model_forward_flops(architecture: str, image_size: int, num_classes: int) -> float:
    """FLOPs of one image's forward pass, counted by FlopCounterMode.

    Only the forward count is used: FlopCounterMode counts ConvNeXt's depthwise-convolution backward about 3x
    too high, so model FLOPs per training image are taken as 3 x forward.
    """
    import timm
    from torch.utils.flop_counter import FlopCounterMode

    model = timm.create_model(architecture, num_classes=num_classes)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(torch.randn(1, 3, image_size, image_size))
    return counter.get_total_flops()


def compute_loop(architecture: str, image_size: int, batch: int, num_classes: int, precision: str,
                 channels_last: bool, keep_freed: bool, device: str, warmup: int, window: int, repeats: int) -> dict:
    """The bare training step on pre-made tensors: timm model, cross-entropy, fused AdamW; no data, no Trainer.

    `keep_freed`: the allocator setting run_classification.py makes on a CPU, so that the ratio to it measures
    the pipeline's cost, not the allocator's gain.
    """
    import timm

    if keep_freed:
        keep_freed_memory()

    layout = torch.channels_last if channels_last else torch.contiguous_format
    model = timm.create_model(architecture, num_classes=num_classes).to(device, memory_format=layout).train()
    images = torch.randn(batch, 3, image_size, image_size, device=device).contiguous(memory_format=layout)
    labels = torch.randint(num_classes, (batch,), device=device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    scaler = torch.amp.GradScaler(device) if precision == "fp16" else None

    marks = []
    for _ in range(warmup + window * repeats + 1):
        with torch.autocast(device, dtype=DTYPES[precision], enabled=precision != "fp32"):
            loss = torch.nn.functional.cross_entropy(model(images), labels)
        if scaler:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        synchronize(device)
        marks.append(time.perf_counter())
    result = summary(window_rates(marks, warmup, window, repeats, batch))
    return {**result, "precision": precision, "channels_last": channels_last, "workers": None,
            "optimizer": optimizer_name(optimizer), "preresized": None, "keep_freed_memory": keep_freed,
            **peak_memory(device)}


class StepTimer(TrainerCallback):
    """Records when each training and prediction step ends; before training, times the train loader alone."""

    def __init__(self, device: str, warmup: int, window: int, repeats: int, time_loader: bool = True):
        self.device, self.warmup, self.window, self.repeats = device, warmup, window, repeats
        self.time_loader = time_loader
        self.train_marks, self.predict_marks, self.loader, self.optimizer = [], [], {}, "?"
        self.processor = None

    def on_train_begin(self, args, state, control, train_dataloader=None, optimizer=None, processing_class=None,
                       **kwargs):
        self.optimizer, self.processor = optimizer_name(optimizer), processing_class
        if self.time_loader:
            self.loader = self.loader_rates(getattr(train_dataloader, "base_dataloader", train_dataloader),
                                            args.per_device_train_batch_size)
        synchronize(self.device)
        self.train_marks.append(time.perf_counter())

    def on_step_end(self, args, state, control, **kwargs):
        synchronize(self.device)
        self.train_marks.append(time.perf_counter())

    def on_prediction_step(self, args, state, control, **kwargs):
        synchronize(self.device)
        self.predict_marks.append(time.perf_counter())

    def loader_rates(self, loader, batch: int) -> dict:
        """Images/s of the DataLoader alone (its workers, as configured) and of one worker's work, decode+augment."""
        marks, batches = [], iter(loader)
        for _ in range(self.warmup + self.window * self.repeats + 1):
            next(batches)
            marks.append(time.perf_counter())
        del batches
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # as in a worker process
        worker_marks, indices = [time.perf_counter()], list(range(len(loader.dataset)))
        for step in range(self.window * self.repeats):
            loader.collate_fn(loader.dataset.__getitems__(indices[step * batch % len(indices):][:batch]))
            worker_marks.append(time.perf_counter())
        torch.set_num_threads(threads)
        return {"loader": summary(window_rates(marks, self.warmup, self.window, self.repeats, batch)),
                "decode_augment_per_worker": summary(window_rates(worker_marks, 0, self.window, self.repeats, batch))}


def optimizer_name(optimizer) -> str:
    optimizer = getattr(optimizer, "optimizer", optimizer)  # accelerate wraps it
    group = optimizer.param_groups[0] if optimizer is not None else {}
    mode = "fused" if group.get("fused") else "foreach" if group.get("foreach") else "for-loop"
    return f"{type(optimizer).__name__}({mode})"


def trainer_run(flags: list[str], device: str, warmup: int, window: int, repeats: int, batch: int,
                pipeline_images: int = 0, time_loader: bool = True) -> dict:
    """Train (and predict, when flags say so) with the real run_classification.main; then time pipeline()."""
    import run_classification

    if "fork" in multiprocessing.get_all_start_methods():
        # This process was spawned and inherited "spawn"; data workers start as in a plain `python` run here.
        multiprocessing.set_start_method("fork", force=True)
    timer = StepTimer(device, warmup, window, repeats, time_loader)
    with tempfile.TemporaryDirectory() as output_dir:
        model_args, data_args, training_args = run_classification.parse(flags + ["--output_dir", output_dir])
        run_classification.main(model_args, data_args, training_args, extra_callbacks=[timer])
        cache = preresize_folder(data_args.preresize_cache, data_args.augment, timer.processor)
        result = {
            **summary(window_rates(timer.train_marks, warmup, window, repeats, batch)),
            "precision": training_args.precision_name,
            "channels_last": training_args.channels_last, "workers": training_args.dataloader_num_workers,
            "optimizer": timer.optimizer, "preresized": cache is not None,
            "keep_freed_memory": training_args.keep_freed_memory and training_args.use_cpu,
            **timer.loader, **peak_memory(device),
        }
        if timer.predict_marks:
            full_batches = timer.predict_marks[:-1]  # the last batch of the test set may be partial
            result["predict"] = summary(window_rates(full_batches, 1, window, repeats, batch))
        if pipeline_images:
            test_images = sorted(str(p) for p in Path(data_args.test_dir).iterdir())
            result.update(pipeline_rates(output_dir, test_images, batch, pipeline_images, result["precision"],
                                         device, repeats))
            result["predict_script"] = predict_script_rates(output_dir, data_args.test_dir, training_args, device,
                                                            window, repeats, batch)
    return result


def predict_script_rates(model_dir: str, test_dir: str, run_args, device: str, window: int, repeats: int,
                         batch: int) -> dict:
    """Images/s of scripts/predict.py's prediction (sketch_train.inference.predict_files) on the test folder, timed
    per batch like --do_predict, under the run's own arguments; and its end-to-end time with loading and checks."""
    from sketch_train.inference import predict_files

    timer = StepTimer(device, 0, window, repeats, time_loader=False)
    start = time.perf_counter()
    found = predict_files(model_dir, [test_dir], run_args, callbacks=[timer])
    elapsed = time.perf_counter() - start
    return {**summary(window_rates(timer.predict_marks[:-1], 1, window, repeats, batch)),
            "end_to_end_images_per_s": round(len(found.image_paths) / elapsed, 2)}


def pipeline_rates(model_dir: str, images: list[str], batch: int, count: int, precision: str, device: str,
                   repeats: int) -> dict:
    """Images/s of pipeline() as loaded, and with the run's layout and autocast precision under inference_mode."""
    from transformers import pipeline

    classifier = pipeline("image-classification", model=model_dir, batch_size=batch, device=device)
    rates = {}
    for name in ("pipeline", "pipeline_fast"):
        if name == "pipeline_fast":
            classifier.model.to(memory_format=torch.channels_last)
        fast = name == "pipeline_fast" and precision != "fp32"
        timings = []
        with torch.inference_mode(), torch.autocast(device, dtype=DTYPES[precision], enabled=fast):
            for i in range(repeats + 1):  # the first call warms up
                chunk = [images[(i * count + j) % len(images)] for j in range(count)]
                start = time.perf_counter()
                classifier(chunk)
                timings.append(count / (time.perf_counter() - start))
        rates[name] = summary(timings[1:])
    return rates


def cpu_name() -> str:
    """The CPU model, as `lscpu` names it, for every figure a benchmark reports."""
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").is_file() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()
