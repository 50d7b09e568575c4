"""Load the ImageNet-Sketch competition's CSV layout as a Hugging Face `DatasetDict`.

The names below load on first use (PEP 562), so that importing a light submodule (`sketch_data.atomic`,
`sketch_data.csv_files`) from a small script does not import torch, timm and datasets, which `dataset` needs.
"""

import importlib

_EXPORTS = {"SketchData": "dataset", "load_sketch_dataset": "dataset", "SketchDataError": "csv_files",
            "to_rgb": "images"}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
