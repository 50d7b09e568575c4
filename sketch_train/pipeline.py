"""`pipeline("image-classification")` that sees every image exactly as training did.

transformers' `load_image` converts to RGB before any processor code runs, so the transparent pixels of an RGBA/LA
sketch (an HTML canvas exports them as (0, 0, 0, 0)) reach the model as black, 16-bit images are clipped, and huge
images skip the size cap. This subclass opens the image itself and converts it with `to_rgb`, the function the
training loader uses, then hands the RGB image to the unchanged pipeline:

    from transformers import pipeline
    from sketch_train.pipeline import SketchImageClassificationPipeline
    classifier = pipeline("image-classification", model="runs/demo", pipeline_class=SketchImageClassificationPipeline)

A Hub model cannot choose this class for a plain `pipeline()` call without `trust_remote_code` (transformers runs
custom pipeline code from a repository only then); in one's own process, `register_sketch_pipeline()` makes every
plain `pipeline("image-classification", ...)` use it.
"""

import base64
import os
from io import BytesIO

import httpx
import numpy as np
import torch
from PIL import Image
from transformers import ImageClassificationPipeline
from transformers.pipelines import PIPELINE_REGISTRY

from sketch_data.images import to_rgb

TASK = "image-classification"


def open_image(source: str | Image.Image, timeout: float | None = None) -> Image.Image:
    """A PIL image from a path, an http(s) URL, a base64 string or a PIL image, in its own mode (alpha kept)."""
    if isinstance(source, Image.Image):
        return source
    if not isinstance(source, str):
        raise TypeError(f"expected a path, URL, base64 string or PIL image, got {type(source).__name__}")
    if source.startswith(("http://", "https://")):
        return Image.open(BytesIO(httpx.get(source, timeout=timeout, follow_redirects=True).content))
    if os.path.isfile(source):
        return Image.open(source)
    encoded = source.split(",", 1)[1] if source.startswith("data:image/") else source
    try:
        return Image.open(BytesIO(base64.b64decode(encoded, validate=True)))
    except Exception as error:
        raise ValueError(f"{source[:80]!r} is not an image file, an http(s) URL or base64 image data") from error


class SketchImageClassificationPipeline(ImageClassificationPipeline):
    """ImageClassificationPipeline whose images go through training's `to_rgb` (transparency onto white)."""

    def preprocess(self, image, timeout: float | None = None):
        if not isinstance(image, (np.ndarray, torch.Tensor)):
            image = to_rgb(open_image(image, timeout))
        return super().preprocess(image, timeout=timeout)


def register_sketch_pipeline() -> None:
    """Make plain `pipeline("image-classification", ...)` calls in this process use the sketch pipeline."""
    builtin = PIPELINE_REGISTRY.supported_tasks[TASK]
    PIPELINE_REGISTRY.register_pipeline(TASK, pipeline_class=SketchImageClassificationPipeline, pt_model=builtin["pt"],
                                        default=builtin.get("default"), type=builtin.get("type"))
