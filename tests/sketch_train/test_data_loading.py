"""sketch_train/data_loading.py and the worker options of SketchTrainingArguments: the automatic worker count."""

import pytest

from sketch_train.arguments import SketchTrainingArguments
from sketch_train.data_loading import auto_num_workers


@pytest.mark.parametrize(("cores", "processes", "gpu", "workers"), [
    (16, None, True, 8),   # all cores but the one feeding the GPU, at most 8
    (16, "4", True, 3),    # 4 cores per process
    (16, None, False, 4),  # a CPU run keeps 3 of every 4 cores for the training step
    (4, None, False, 1),
    (2, None, False, 0),   # below 4 cores the training process loads: a worker would preempt the step's threads
    (2, "2", True, 1),
])
def test_auto_num_workers_shares_the_cores_of_the_node(monkeypatch, cores, processes, gpu, workers):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(cores)))
    if processes:
        monkeypatch.setenv("LOCAL_WORLD_SIZE", processes)
    else:
        monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert auto_num_workers(uses_gpu=gpu) == workers


def test_workers_default_to_auto_and_persist(tmp_path, monkeypatch):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(8)))
    args = SketchTrainingArguments(output_dir=str(tmp_path), report_to="none")
    assert args.dataloader_num_workers == auto_num_workers(uses_gpu=False) == 2
    assert args.dataloader_persistent_workers and not args.dataloader_pin_memory  # pinning only helps a GPU


def test_zero_workers_load_in_the_training_process_without_persistence(tmp_path):
    args = SketchTrainingArguments(output_dir=str(tmp_path), report_to="none", dataloader_num_workers=0)
    assert (args.dataloader_num_workers, args.dataloader_persistent_workers) == (0, False)


def test_a_negative_worker_count_other_than_auto_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"^dataloader_num_workers=-2: use -1 \(auto\), 0 or more\.$"):
        SketchTrainingArguments(output_dir=str(tmp_path), report_to="none", dataloader_num_workers=-2)
