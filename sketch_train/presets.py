"""Parse a preset file (JSON or YAML) plus command-line flags, flags winning, into the argument dataclasses."""

import json
import sys
from pathlib import Path

import yaml
from transformers import HfArgumentParser

DEFAULT_PRESET = Path(__file__).resolve().parent.parent / "training_args" / "demo.yaml"
DATA_FLAGS = ("--data_dir", "--train_dir", "--train_csv", "--test_dir", "--test_csv")


def parse_arguments(dataclass_types: tuple, argv: list[str] | None = None) -> tuple:
    """`run_classification.py [preset.json|preset.yaml] [--flag value ...]`.

    Without a preset and without data flags the demo preset is the base, so `run_classification.py
    --num_train_epochs 2` is the demo, shorter.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    preset = argv.pop(0) if argv and argv[0].endswith((".json", ".yaml", ".yml")) else None
    if preset is None and not any(arg.split("=")[0] in DATA_FLAGS for arg in argv):
        preset = str(DEFAULT_PRESET)
    flags = preset_flags(preset) if preset else []
    return HfArgumentParser(dataclass_types).parse_args_into_dataclasses(args=flags + argv)


def preset_flags(path: str) -> list[str]:
    """Turn a preset file into `--key value` flags, so that later flags on the command line override them."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"preset {path} not found; presets live in training_args/.")
    text = file.read_text()
    values = json.loads(text) if file.suffix == ".json" else yaml.safe_load(text)
    flags = []
    for key, value in (values or {}).items():
        items = value if isinstance(value, list) else [value]
        if isinstance(value, list) and not value:
            continue
        flags += [f"--{key}", *(json.dumps(v) if isinstance(v, dict) else str(v) for v in items)]
    return flags
