"""One answer per image, whatever the path in: every image mode that training accepts gets the same top-1 and the
same probabilities (within 1e-5) from the training-time loader, --do_predict, scripts/predict.py, the Gradio demo
and pipeline() with the project's pipeline class. All in fp32, so that the paths can be compared exactly.
"""

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import logged, run_in_this_process
from gradio.data_classes import ImageData
from PIL import Image
from scipy.special import softmax
from transformers import pipeline

from scripts.demo_app import build_app, load_classifier
from scripts.demo_app import predict as demo_predict
from scripts.predict import main as predict_folder
from sketch_data import load_sketch_dataset
from sketch_data.transforms import BatchTransform, eval_transform
from sketch_train.arguments import ModelArguments
from sketch_train.model import build_model, saved_label_names
from sketch_train.pipeline import (
    SketchImageClassificationPipeline,
    register_sketch_pipeline,
)

TOLERANCE = 1e-5
TOP_K = 5
SOURCES = ["0.JPEG", "7.JPEG"]  # real quickdraw-mini test sketches


def _strokes_alpha(gray: Image.Image) -> Image.Image:
    """Opacity that is high on dark strokes and 0 on the white paper, as a canvas export has."""
    return gray.point(lambda v: 255 - v)


def _transparent(gray: Image.Image, background: tuple) -> Image.Image:
    """Black strokes on fully transparent pixels of the given colour: (0, 0, 0, 0) is what HTML canvases export."""
    image = Image.new("RGBA", gray.size, background)
    image.paste((0, 0, 0, 255), mask=_strokes_alpha(gray))
    return image


def _palette_with_transparency(gray: Image.Image) -> Image.Image:
    """P mode whose transparent index has a black palette entry, so dropping transparency gives black."""
    image = gray.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    background = image.getpixel((0, 0))
    palette = image.getpalette()
    palette[3 * background:3 * background + 3] = [0, 0, 0]
    image.putpalette(palette)
    image.info["transparency"] = background
    return image


def _exif_rotated(gray: Image.Image) -> tuple[Image.Image, dict]:
    """Stored turned by 90 degrees, with EXIF orientation 8 saying how to turn it upright again."""
    exif = Image.Exif()
    exif[0x0112] = 8
    return gray.convert("RGB").transpose(Image.Transpose.ROTATE_270), {"exif": exif.tobytes()}


MODES = {  # name -> (file suffix, image maker returning (image, save options))
    "rgb": (".JPEG", lambda g: (g.convert("RGB"), {})),
    "rgba_transparent_black": (".png", lambda g: (_transparent(g, (0, 0, 0, 0)), {})),
    "rgba_transparent_red": (".png", lambda g: (_transparent(g, (255, 0, 0, 0)), {})),
    "la_transparent": (".png", lambda g: (Image.merge("LA", [Image.new("L", g.size, 0), _strokes_alpha(g)]), {})),
    "p_transparency": (".png", lambda g: (_palette_with_transparency(g), {})),
    "cmyk": (".JPEG", lambda g: (g.convert("CMYK"), {})),
    "i16": (".png", lambda g: (Image.fromarray(np.asarray(g, dtype=np.uint16) * 257), {})),
    "exif_rotated": (".JPEG", _exif_rotated),
    "oversized": (".png", lambda g: (g.resize((5000, 5000), Image.Resampling.NEAREST), {})),
}


@pytest.fixture(scope="module")
def images(tmp_path_factory, quickdraw_mini) -> dict:
    """A folder in the competition's test layout with every mode of every source sketch, and its test.csv."""
    folder = tmp_path_factory.mktemp("modes")
    names = []
    for source in SOURCES:
        gray = Image.open(quickdraw_mini / "test" / source).convert("L")
        for mode, (suffix, make) in MODES.items():
            image, options = make(gray)
            name = f"{mode}_{source.split('.')[0]}{suffix}"
            image.save(folder / name, **options)
            names.append(name)
    (folder / "test.csv").write_text("image_path\n" + "\n".join(names) + "\n")
    return {"folder": folder, "names": names}


@pytest.fixture(scope="module")
def expected(tiny_run, images) -> dict[str, np.ndarray]:
    """Probabilities from the training-time loader: load_sketch_dataset, the eval transform, the model in fp32."""
    model, processor = build_model(ModelArguments(model_name_or_path=str(tiny_run)), saved_label_names(str(tiny_run)))
    test = load_sketch_dataset(test_dir=images["folder"], test_csv=images["folder"] / "test.csv").splits["test"]
    test.set_transform(BatchTransform(eval_transform(processor)))
    pixel_values = torch.stack([test[i]["pixel_values"] for i in range(len(test))])
    with torch.inference_mode():
        logits = model.eval()(pixel_values=pixel_values).logits.numpy()
    return dict(zip(images["names"], softmax(logits.astype(np.float64), axis=1)))


def _label_ids(run) -> dict[str, int]:
    return {name: i for i, name in enumerate(saved_label_names(str(run)))}


@pytest.fixture(scope="module")
def do_predict(tiny_run, images, tmp_path_factory) -> dict[str, np.ndarray]:
    """`run_classification.py --do_predict` on the run folder (pre-resize cache on, as by default), through its cli()
    in this process: the same code path as the command's."""
    out = tmp_path_factory.mktemp("do_predict")
    code, log = run_in_this_process([
        "--model_name_or_path", str(tiny_run), "--do_predict", "--test_dir", str(images["folder"]),
        "--test_csv", str(images["folder"] / "test.csv"), "--output_dir", str(out), "--precision", "fp32",
        "--per_device_eval_batch_size", "4"])
    assert code == 0, log[-3000:]
    submission = pd.read_csv(out / "submission.csv")
    assert list(submission["image_path"]) == images["names"]
    logits = np.load(out / "test_logits.npy").astype(np.float64)
    return dict(zip(images["names"], softmax(logits, axis=1)))


@pytest.fixture(scope="module")
def folder_predictor(tiny_run, images, tmp_path_factory) -> dict[str, dict[str, float]]:
    """scripts/predict.py on the folder: the top-k labels and scores it writes, per image."""
    csv = tmp_path_factory.mktemp("predict") / "predictions.csv"
    with logged() as messages:  # in this process: scripts/test_predict.py runs it as a process
        code = predict_folder(["--model", str(tiny_run), str(images["folder"]), "--output", str(csv),
                               "--precision", "fp32", "--top_k", str(TOP_K), "--batch_size", "4"])
    assert code == 0, messages[-20:]
    assert any("Ignoring 1 file(s) that are not images" in line for line in messages)  # test.csv sits there too
    frame = pd.read_csv(csv)
    assert sorted(frame["image_path"]) == sorted(images["names"])
    return {row["image_path"]: {row[f"label_{k}"]: row[f"score_{k}"] for k in range(1, TOP_K + 1)}
            for _, row in frame.iterrows()}


@pytest.fixture(scope="module")
def demo(tiny_run, images) -> dict[str, dict[str, float]]:
    """The Gradio demo: its own upload component's preprocessing, then its predict function."""
    classifier = load_classifier(str(tiny_run))
    app = build_app(classifier, "test")
    upload = next(block for block in app.blocks.values() if getattr(block, "elem_id", None) == "upload")
    return {name: demo_predict(classifier, upload.preprocess(ImageData(path=str(images["folder"] / name),
                                                                      orig_name=name)))
            for name in images["names"]}


@pytest.fixture(scope="module")
def sketch_pipeline(tiny_run):
    return pipeline("image-classification", model=str(tiny_run), pipeline_class=SketchImageClassificationPipeline)


def _as_scores(results: list[dict]) -> dict[str, float]:
    return {r["label"]: r["score"] for r in results}


def _assert_same_top_k(scores: dict[str, float], probabilities: np.ndarray, labels: dict[str, int]) -> None:
    best = max(scores, key=scores.get)
    assert labels[best] == int(probabilities.argmax())
    for label, score in scores.items():
        assert score == pytest.approx(probabilities[labels[label]], abs=TOLERANCE), label


NAMES = [f"{mode}_{source.split('.')[0]}" for source in SOURCES for mode in MODES]


def _file(images, stem: str) -> str:
    return next(n for n in images["names"] if n.rsplit(".", 1)[0] == stem)


@pytest.mark.parametrize("stem", NAMES)
def test_do_predict_matches_the_training_loader(stem, images, expected, do_predict):
    name = _file(images, stem)
    np.testing.assert_allclose(do_predict[name], expected[name], atol=TOLERANCE)
    assert do_predict[name].argmax() == expected[name].argmax()


@pytest.mark.parametrize("stem", NAMES)
def test_folder_predictor_matches_the_training_loader(stem, images, expected, folder_predictor, tiny_run):
    name = _file(images, stem)
    _assert_same_top_k(folder_predictor[name], expected[name], _label_ids(tiny_run))


@pytest.mark.parametrize("stem", NAMES)
def test_gradio_demo_matches_the_training_loader(stem, images, expected, demo, tiny_run):
    name = _file(images, stem)
    _assert_same_top_k(demo[name], expected[name], _label_ids(tiny_run))


@pytest.mark.parametrize("stem", NAMES)
def test_sketch_pipeline_matches_the_training_loader_for_paths_and_pil_images(
        stem, images, expected, sketch_pipeline, tiny_run):
    name, labels = _file(images, stem), _label_ids(tiny_run)
    path = str(images["folder"] / name)
    _assert_same_top_k(_as_scores(sketch_pipeline(path, top_k=TOP_K)), expected[name], labels)
    _assert_same_top_k(_as_scores(sketch_pipeline(Image.open(path), top_k=TOP_K)), expected[name], labels)


def test_plain_pipeline_sees_transparent_black_pixels_as_black(images, expected, tiny_run):
    """Why the pipeline class exists: transformers' load_image drops alpha, so the paper turns black."""
    classifier = pipeline("image-classification", model=str(tiny_run))
    name = _file(images, "rgba_transparent_black_0")
    scores = _as_scores(classifier(str(images["folder"] / name), top_k=TOP_K))
    labels = _label_ids(tiny_run)
    assert any(abs(score - expected[name][labels[label]]) > 1e-3 for label, score in scores.items())


def test_registering_makes_the_plain_pipeline_call_use_the_sketch_class(images, expected, tiny_run):
    from transformers.pipelines import PIPELINE_REGISTRY
    saved = dict(PIPELINE_REGISTRY.supported_tasks["image-classification"])
    try:
        register_sketch_pipeline()
        classifier = pipeline("image-classification", model=str(tiny_run))
        assert isinstance(classifier, SketchImageClassificationPipeline)
        name = _file(images, "rgba_transparent_black_0")
        _assert_same_top_k(_as_scores(classifier(str(images["folder"] / name), top_k=TOP_K)), expected[name],
                           _label_ids(tiny_run))
    finally:
        PIPELINE_REGISTRY.supported_tasks["image-classification"] = saved


def test_base64_and_data_uri_inputs_are_converted_like_files(images, expected, sketch_pipeline, tiny_run):
    import base64
    name = _file(images, "rgba_transparent_black_7")
    encoded = base64.b64encode((images["folder"] / name).read_bytes()).decode()
    for source in (encoded, f"data:image/png;base64,{encoded}"):
        _assert_same_top_k(_as_scores(sketch_pipeline(source, top_k=TOP_K)), expected[name], _label_ids(tiny_run))
