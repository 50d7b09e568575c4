"""Load the ImageNet-Sketch competition's CSV layout as a Hugging Face `DatasetDict`."""

from .dataset import SketchData, load_sketch_dataset
from .errors import SketchDataError
from .images import to_rgb

__all__ = ["SketchData", "SketchDataError", "load_sketch_dataset", "to_rgb"]
