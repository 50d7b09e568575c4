"""Find the checkpoint to resume from, never one that was cut off while it was being written.

Trainer (transformers 5.23, `Trainer._save_checkpoint`) writes checkpoint-N in place, not under a temporary
name: model, optimizer, scheduler, RNG state, and trainer_state.json last. A run killed or out of disk
space mid-save leaves checkpoint-N without a readable trainer_state.json for step N, and
`get_last_checkpoint` would pick it (it only looks at folder names) and fail or resume from a broken state.
"""

import json
import logging
import re
import shutil
from pathlib import Path

from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

logger = logging.getLogger(__name__)

CHECKPOINT_NAME = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-(\d+)$")
WEIGHTS_FILES = ("model.safetensors", "model.safetensors.index.json")


def last_complete_checkpoint(output_dir: str | Path) -> str | None:
    """Return the newest checkpoint-N in `output_dir` that Trainer finished writing, or None.

    Newer, incomplete ones are deleted with a warning: they hold nothing to resume from, and left in
    place they would count towards `save_total_limit` and be offered again on the next resume.
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
        logger.warning("Ignoring and deleting %s: %s, so it was cut off while being written (killed or out of disk "
                       "space); resuming from an earlier checkpoint instead.", checkpoint, problem)
        shutil.rmtree(checkpoint)
    return None


def incomplete_because(checkpoint: Path, step: int) -> str | None:
    """Why `checkpoint` (for `step`) is not a finished Trainer checkpoint, or None if it is."""
    state_file = checkpoint / "trainer_state.json"
    if not state_file.is_file():
        return "it has no trainer_state.json"
    try:
        saved_step = json.loads(state_file.read_text())["global_step"]
    except (ValueError, KeyError):
        return "its trainer_state.json is cut off"
    if saved_step != step:
        return f"its trainer_state.json is for step {saved_step}"
    if not any((checkpoint / name).is_file() for name in WEIGHTS_FILES):
        return "it has no model weights"
    return None
