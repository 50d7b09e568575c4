"""Load the ImageNet-Sketch competition's CSV layout as a Hugging Face `DatasetDict`."""

from .csv_files import SketchDataError
from .dataset import SketchData, load_sketch_dataset
from .images import to_rgb

__all__ = ["SketchData", "SketchDataError", "load_sketch_dataset", "to_rgb"]
