"""Find the checkpoint to resume from, never one that was cut off while it was being written.

Trainer (transformers 5.23, `Trainer._save_checkpoint`) writes checkpoint-N in place, not under a temporary
name: model, optimizer, scheduler, RNG state, and trainer_state.json last. A run killed or out of disk
space mid-save leaves checkpoint-N without a readable trainer_state.json for step N; a power cut can leave
every file present but some cut short (the page cache had not reached the disk). `get_last_checkpoint` would
pick either (it only looks at folder names) and fail in `load_file` or `torch.load`, every rerun.

So a checkpoint counts only if every file Trainer reads on resume loads: the safetensors headers parse and
cover their files, the optimizer/scheduler/RNG states load with `torch.load(weights_only=True)`, the JSON
files parse, and trainer_state.json is for the step in the folder name.

A checkpoint that fails is moved aside to `broken-checkpoint-N` rather than deleted: it may be the only copy
of some state (e.g. weights intact, state cut), and deleting is the user's call. The new name matters: Trainer's
rotation (`save_total_limit`) and `get_last_checkpoint` match `checkpoint-<digits>` only, so it neither counts
towards the limit nor is offered on the next resume, and the resumed run can write a fresh checkpoint-N.
"""

import json
import logging
import re
import zipfile
from pathlib import Path

import torch
from safetensors import safe_open
from transformers.trainer_pt_utils import safe_globals
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

logger = logging.getLogger(__name__)

CHECKPOINT_NAME = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-(\d+)$")
WEIGHTS_FILES = ("model.safetensors", "model.safetensors.index.json")
BROKEN_PREFIX = "broken-"


def last_complete_checkpoint(output_dir: str | Path) -> str | None:
    """Return the newest checkpoint-N in `output_dir` that loads, or None (a fresh start).

    Newer ones that do not load are moved aside (module doc), each with one warning line saying why.
    """
    folder = Path(output_dir)
    if not folder.is_dir():
        return None
    found = [(int(m.group(1)), path) for path in folder.iterdir()
             if (m := CHECKPOINT_NAME.match(path.name)) and path.is_dir()]
    for step, checkpoint in sorted(found, reverse=True):
        problem = incomplete_because(checkpoint, step)
        if problem is None:
            return str(checkpoint)
        aside = set_aside(checkpoint)
        logger.warning("Skipping %s: %s, so it was cut off while being written (killed, power cut or out of disk "
                       "space); moved it to %s (delete it when you no longer need it) and resuming from an earlier "
                       "checkpoint instead.", checkpoint, problem, aside.name)
    if found:
        logger.warning("No complete checkpoint left in %s: training starts from scratch.", folder)
    return None


def set_aside(checkpoint: Path) -> Path:
    """Rename checkpoint-N to broken-checkpoint-N (or broken-checkpoint-N.2, ...), a name Trainer never matches."""
    target = checkpoint.with_name(BROKEN_PREFIX + checkpoint.name)
    number = 1
    while target.exists():
        number += 1
        target = checkpoint.with_name(f"{BROKEN_PREFIX}{checkpoint.name}.{number}")
    checkpoint.rename(target)
    return target


def incomplete_because(checkpoint: Path, step: int) -> str | None:
    """Why `checkpoint` (for `step`) cannot be resumed from, or None if every file it needs loads."""
    state_file = checkpoint / "trainer_state.json"
    if not state_file.is_file():
        return "it has no trainer_state.json"
    try:
        saved_step = json.loads(state_file.read_text())["global_step"]
    except (ValueError, KeyError, TypeError):
        return "its trainer_state.json is cut off"
    if saved_step != step:
        return f"its trainer_state.json is for step {saved_step}"
    if not any((checkpoint / name).is_file() for name in WEIGHTS_FILES):
        return "it has no model weights"
    for file in sorted(checkpoint.iterdir()):
        problem = _unreadable_because(file)
        if problem:
            return f"{file.name} {problem}"
    return None


def _unreadable_because(file: Path) -> str | None:
    """Why `file` would fail to load on resume, or None; files Trainer does not read are not checked."""
    if file.suffix not in (".safetensors", ".json", ".pt", ".pth", ".bin"):
        return None
    try:
        if file.stat().st_size == 0:
            return "is empty (0 bytes)"
        if file.suffix == ".safetensors":
            with safe_open(file, framework="pt"):  # parses the header and checks it covers the whole file
                pass
        elif file.suffix == ".json":
            index = json.loads(file.read_text())
            if file.name.endswith(".index.json"):  # sharded weights: every shard must be there and load
                for shard in sorted(set(index["weight_map"].values())):
                    problem = _unreadable_because(file.parent / shard)
                    if problem:
                        return f"lists {shard}, which {problem}"
        elif file.name == "training_args.bin":  # a pickled TrainingArguments, which weights_only refuses
            with zipfile.ZipFile(file) as archive:  # what torch.save writes; testzip checks every CRC
                if archive.testzip() is not None:
                    return "is corrupt"
        else:
            with safe_globals():  # Trainer's own allow-list for the numpy RNG state
                torch.load(file, map_location="cpu", weights_only=True, mmap=True)
    except FileNotFoundError:
        return "is missing"
    except Exception as error:  # safetensors, zipfile, torch and json each raise their own types for a cut file
        first_sentence = str(error).split(". ")[0].strip()[:160]
        return f"does not load ({type(error).__name__}: {first_sentence})"
    return None
