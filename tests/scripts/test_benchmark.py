"""scripts/benchmark.py: the --quick smoke run measures every setup and writes them all (no timing is asserted)."""

import json
import os

import pytest
from conftest import run_script

from sketch_train.benchmarking import run_setup, window_rates
from sketch_train.machine import auto_num_workers

SETUPS = ["default", "uncached", "naive", "compute"]


@pytest.fixture(scope="module")
def quick_report(quickdraw_mini, tmp_path_factory) -> tuple[dict, str]:
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    result = run_script("scripts/benchmark.py", "--quick", "--rounds", "2", "--data_dir", str(quickdraw_mini),
                        "--out", str(out))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return json.loads(out.read_text()), result.stdout


def test_report_names_the_machine_and_its_matmul_peaks(quick_report):
    report, _ = quick_report
    assert report["device"] == "cpu" and report["cores"] >= 1
    assert set(report["matmul_peak_gflops"]) == {"fp32", report["default_precision"]}
    assert all(peak > 0 for peak in report["matmul_peak_gflops"].values())
    assert len(report["load_average_before"]) == len(report["load_average_after"]) == 3
    row, = report["models"]
    assert (row["model"], row["image_size"], row["batch"]) == ("test_convnext", 32, 4)
    assert row["forward_flops_per_image"] > 0


def test_every_setup_is_measured_with_its_own_settings(quick_report):
    report, _ = quick_report
    setups = report["models"][0]["setups"]
    assert list(setups) == SETUPS
    settings = {name: (s["precision"], s["channels_last"], s["workers"], s["optimizer"], s["preresized"],
                       s["keep_freed_memory"]) for name, s in setups.items()}
    fast, workers = report["default_precision"], auto_num_workers(uses_gpu=False)
    assert settings == {
        "default": (fast, True, workers, "AdamW(fused)", True, True),
        "uncached": (fast, True, workers, "AdamW(fused)", False, True),
        "naive": ("fp32", False, 0, "AdamW(for-loop)", False, False),
        "compute": (fast, True, None, "AdamW(fused)", None, True),
    }
    for s in setups.values():
        assert s["images_per_s"] > 0 and len(s["windows"]) == 3 and s["peak_rss_mb"] > 0
        assert len(s["rounds"]) == 2 and s["images_per_s"] == pytest.approx(sum(s["rounds"]) / 2, abs=0.01)
        assert s["mfu"] > 0
    assert setups["naive"]["vs_naive"] == 1.0 and setups["compute"]["vs_compute"] == 1.0


def test_data_and_inference_are_measured(quick_report):
    report, stdout = quick_report
    setups = report["models"][0]["setups"]
    for name in ("default", "uncached", "naive"):
        assert setups[name]["loader"]["images_per_s"] > 0
        assert setups[name]["decode_augment_per_worker"]["images_per_s"] > 0
        assert setups[name]["loader_vs_train"] > 0
    for measure in ("predict", "predict_script", "pipeline", "pipeline_fast"):
        assert setups["default"][measure]["images_per_s"] > 0
    assert setups["default"]["predict_script"]["end_to_end_images_per_s"] > 0
    assert "vs naive" in stdout and "decode+aug/worker" in stdout and "predict.py" in stdout
    assert sum(line.startswith("cpu     test_convnext") for line in stdout.splitlines()) == len(SETUPS)
    assert stdout.count("round 2 of 2") == len(SETUPS)


def test_window_rates_leave_out_warmup_and_shrink_to_short_runs():
    ends = [0.0, 5.0, 6.0, 7.0, 8.0, 10.0, 11.0, 12.0]  # step 1 is slow warm-up
    assert window_rates(ends, warmup=1, window=2, repeats=3, images_per_step=10) == [10.0, 20 / 3, 10.0]
    assert window_rates(ends[:4], warmup=1, window=8, repeats=3, images_per_step=10) == [10.0, 10.0]
    assert window_rates(ends[:2], warmup=1, window=8, repeats=3, images_per_step=10) == []


def test_a_setup_runs_in_a_process_of_its_own_unless_it_is_a_smoke_test():
    assert run_setup(os.getpid, in_this_process=True) == os.getpid()
    assert run_setup(os.getpid, in_this_process=False) != os.getpid()
