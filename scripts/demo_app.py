#!/usr/bin/env python
"""Draw a sketch or upload one and watch the model's top-5 guesses: `python scripts/demo_app.py --model runs/demo`.

The app serves on http://127.0.0.1:7860 only (no share link) and never calls home.
"""

import argparse
import os
import sys
from pathlib import Path

# Gradio reads these when imported: no usage analytics, no version check, nothing leaves the machine.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("GRADIO_SHARE", "False")

import gradio as gr
from PIL import Image
from transformers import pipeline

from sketch_data.images import to_rgb
from sketch_train.pipeline import SketchImageClassificationPipeline

TOP_K = 5
# Quickdraw strokes are ~4.5 px wide on 256 px images. Brush size 5 draws ~9 px on this 512 px canvas
# (Gradio's size is about half the stroke width), the same proportion.
CANVAS = (512, 512)
BRUSH_SIZE = 5


def canvas_image(value: dict | Image.Image | None) -> Image.Image | None:
    """The sketch pad's composite or the upload, converted exactly as training images are; None if blank."""
    if isinstance(value, dict):
        value = value.get("composite")
    if value is None:
        return None
    # to_rgb composites transparent pixels onto white, as training does (the pipeline class does it again: a no-op).
    image = to_rgb(value)
    if all(low == high for low, high in image.getextrema()):  # one flat colour: nothing drawn yet
        return None
    return image


def predict(classifier, value: dict | Image.Image | None, top_k: int = TOP_K) -> dict[str, float]:
    """Top-k labels with confidences, as gr.Label shows them; empty for a blank canvas."""
    image = canvas_image(value)
    if image is None:
        return {}
    return {r["label"]: r["score"] for r in classifier(image, top_k=top_k)}


def build_app(classifier, title: str) -> gr.Blocks:
    """Sketch pad and upload box side by side, each with its own live top-5."""
    classify = lambda value: predict(classifier, value)  # noqa: E731
    with gr.Blocks(title="Sketch classifier") as app:
        gr.Markdown(f"## Draw and classify\nModel: `{title}`. Pick the brush on the pad's left toolbar and draw, "
                    "or upload a sketch.")
        with gr.Row():
            with gr.Column():
                pad = gr.Sketchpad(
                    label="Sketch pad", type="pil", image_mode="RGBA", canvas_size=CANVAS, height=600, layers=False,
                    brush=gr.Brush(default_size=BRUSH_SIZE, colors=["#000000"], color_mode="fixed"),
                    elem_id="sketchpad",
                )
                drawn = gr.Label(num_top_classes=TOP_K, label="Top-5 for the drawing", elem_id="drawing-label")
            with gr.Column():
                upload = gr.Image(label="Upload a sketch", type="pil", image_mode=None, sources=["upload"],
                                  elem_id="upload")
                uploaded = gr.Label(num_top_classes=TOP_K, label="Top-5 for the upload", elem_id="upload-label")
        # always_last: while strokes keep coming, only the latest canvas is classified.
        pad.change(classify, pad, drawn, trigger_mode="always_last", show_progress="hidden")
        upload.change(classify, upload, uploaded, show_progress="hidden")
    return app


def load_classifier(model: str):
    """pipeline("image-classification") with training's image conversion (transparency onto white)."""
    return pipeline("image-classification", model=model, pipeline_class=SketchImageClassificationPipeline)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="runs/demo", help="A run's output_dir or a Hub model id.")
    parser.add_argument("--port", type=int, default=7860)
    args = parser.parse_args(argv)
    try:
        classifier = load_classifier(args.model)
    except (OSError, ValueError) as error:
        reason = str(error).strip().splitlines()[0]
        where = "" if Path(args.model).is_dir() else "no such folder, and as a Hub id: "
        print(f"error: cannot load model {args.model!r} ({where}{reason}); pass a run's output_dir or a Hub model id.",
              file=sys.stderr)
        return 2
    build_app(classifier, args.model).launch(server_name="127.0.0.1", server_port=args.port, share=False,
                                            ssr_mode=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
