"""Trainer with crash-safe result files and data-loading workers that die with the run.

- `save_metrics` and `save_state` write *_results.json, all_results.json and trainer_state.json atomically
  (`sketch_data.atomic`): Trainer's own versions write them in place, so a kill mid-write left half a file.
- the final model (`save_model()` into output_dir) is written into a staging folder, then each file is fsynced and
  renamed into place: a kill leaves every file either the previous run's or the new one, never half of one.
  Checkpoints keep Trainer's in-place writes; `sketch_train.checkpoints` skips the ones that do not load.
- temporaries that a killed run left in output_dir (`.name.<pid>-<hex>.partial`, the staging folder) are removed
  when the next run starts.
- the FLOPs estimate counts the model's parameters once, not at every step (a walk over every module, which cost
  more than a linear head's whole step on cached features).
- callbacks that call back into the Trainer (the EMA evaluates itself) get it through their `bind(trainer)`.
- every DataLoader's `worker_init_fn` first makes the worker die with its parent (`sketch_data.processes`):
  PyTorch's workers notice a dead parent only when they next wait for work, and not at all while busy.
"""

import dataclasses
import json
import os
import shutil
from pathlib import Path

from transformers import Trainer

from sketch_data.atomic import atomic_write_text, fsync_folder, remove_stale_temporaries
from sketch_data.processes import DiesWithParent

STAGING = ".saving-model"  # inside output_dir, so that the renames stay on one file system


class SketchTrainer(Trainer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for callback in self.callback_handler.callbacks:
            if hasattr(callback, "bind"):
                callback.bind(self)
        if self.args.should_save and os.path.isdir(self.args.output_dir):
            remove_stale_temporaries(self.args.output_dir)
            shutil.rmtree(os.path.join(self.args.output_dir, STAGING), ignore_errors=True)

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        """Trainer's `_save` (weights, config, processor, training_args.bin); into output_dir itself via staging."""
        target = Path(output_dir or self.args.output_dir)
        if not self.args.should_save or target.resolve() != Path(self.args.output_dir).resolve():
            return super()._save(output_dir, state_dict)  # a checkpoint, or a rank that writes nothing
        staging = target / STAGING
        shutil.rmtree(staging, ignore_errors=True)
        super()._save(str(staging), state_dict)
        for file in sorted(staging.iterdir()):
            with open(file, "rb+") as handle:  # durable before it replaces the previous file
                os.fsync(handle.fileno())
            os.replace(file, target / file.name)
        staging.rmdir()
        fsync_folder(target)

    def save_metrics(self, split: str, metrics: dict, combined: bool = True) -> None:
        """As `Trainer.save_metrics` (same files, same JSON), each file replaced atomically."""
        if not self.is_world_process_zero():
            return
        output_dir = self.args.output_dir
        atomic_write_text(os.path.join(output_dir, f"{split}_results.json"), json.dumps(metrics, indent=4, sort_keys=True))
        if combined:
            path = os.path.join(output_dir, "all_results.json")
            everything = json.loads(open(path, encoding="utf-8").read()) if os.path.exists(path) else {}
            everything.update(metrics)
            atomic_write_text(path, json.dumps(everything, indent=4, sort_keys=True))

    def save_state(self) -> None:
        """As `Trainer.save_state` (`TrainerState.save_to_json`'s JSON), replaced atomically."""
        if not self.is_world_process_zero():
            return
        text = json.dumps(dataclasses.asdict(self.state), indent=2, sort_keys=True) + "\n"
        atomic_write_text(os.path.join(self.args.output_dir, "trainer_state.json"), text)

    def floating_point_ops(self, inputs: dict) -> int:
        """Trainer's estimate (6 x input size x parameters), with the parameter count cached."""
        main_input = getattr(self.model, "main_input_name", "input_ids")
        if main_input not in inputs or not hasattr(self.model, "num_parameters"):
            return 0
        if getattr(self, "_parameter_count", None) is None:
            self._parameter_count = self.model.num_parameters(exclude_embeddings=True)
        return 6 * inputs[main_input].numel() * self._parameter_count

    def _get_dataloader(self, *args, **kwargs):
        loader = super()._get_dataloader(*args, **kwargs)
        # accelerate's DataLoaderShard delegates to the DataLoader it wraps, whose iterator starts the workers
        inner = getattr(loader, "base_dataloader", loader)
        if inner.num_workers:  # set before any iterator exists: each reads it when starting its workers
            inner.worker_init_fn = DiesWithParent(inner.worker_init_fn)
        return loader
