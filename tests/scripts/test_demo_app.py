"""scripts/demo_app.py: the canvas conversion, and the running app driven by headless Chromium."""

import json
import os
import subprocess

import pytest
from conftest import CHROMIUM_ARGS, PYTHON, REPO, chromium_path, free_port, wait_until_serving
from PIL import Image, ImageDraw

from scripts.demo_app import main, predict

ARTIFACTS = REPO / "test-artifacts"
SKETCH = "beach/4549384723234816.JPEG"  # a real quickdraw-mini training sketch
TIMEOUT_MS = 90_000  # the app classifies on 2 busy CPU cores in CI


class RecordingClassifier:
    """Stands in for pipeline(): keeps the image it was given and answers two fixed labels."""

    def __call__(self, image: Image.Image, top_k: int) -> list[dict]:
        self.image = image
        return [{"label": "beach", "score": 0.75}, {"label": "belt", "score": 0.25}][:top_k]


def test_predict_turns_a_transparent_canvas_into_black_strokes_on_white():
    canvas = Image.new("RGBA", (64, 64), (0, 0, 0, 0))  # the sketch pad: strokes over a transparent layer
    ImageDraw.Draw(canvas).line([(10, 32), (54, 32)], fill=(0, 0, 0, 255), width=4)
    classifier = RecordingClassifier()

    assert predict(classifier, {"background": None, "layers": [canvas], "composite": canvas}) == {
        "beach": 0.75, "belt": 0.25}
    assert classifier.image.mode == "RGB"
    assert classifier.image.getpixel((5, 5)) == (255, 255, 255)
    assert classifier.image.getpixel((32, 32)) == (0, 0, 0)


def test_predict_shows_nothing_for_an_empty_canvas():
    empty = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    assert predict(RecordingClassifier(), {"composite": empty}) == {}
    assert predict(RecordingClassifier(), None) == {}


def test_unknown_model_is_one_clear_error_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["--model", str(tmp_path / "no-run")]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"error: cannot load model '{tmp_path / 'no-run'}' (no such folder")
    assert error.count("\n") == 1


@pytest.fixture(scope="module")
def app_url(tiny_run, tmp_path_factory):
    """The demo app on the tiny run, started as a user would, on a free local port."""
    chromium_path()
    port, log = free_port(), tmp_path_factory.mktemp("demo_app") / "app.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    with open(log, "w") as output:
        process = subprocess.Popen([PYTHON, "scripts/demo_app.py", "--model", str(tiny_run), "--port", str(port)],
                                   cwd=REPO, env=env, stdout=output, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_until_serving(url, process, log)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture
def page(app_url):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(app_url)
        page.wait_for_selector("#sketchpad canvas")
        yield page
        browser.close()


def top_labels(page, output: str) -> tuple[str, list[str]]:
    """The headline (top-1) label and the listed labels of a gr.Label, once it shows a prediction."""
    headline = page.locator(f"#{output} [data-testid=label-output-value]")
    headline.wait_for()
    listed = page.locator(f"#{output} [data-testid$=-confidence-set] dt").all_inner_texts()
    return headline.inner_text(), listed


def test_uploaded_sketch_shows_the_pipelines_top_label(page, tiny_run, quickdraw_mini):
    from transformers import pipeline

    sketch = quickdraw_mini / "train" / SKETCH
    expected = pipeline("image-classification", model=str(tiny_run))(str(sketch), top_k=1)

    page.locator("#upload input[type=file]").set_input_files(str(sketch))
    top1, listed = top_labels(page, "upload-label")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "demo_app_upload.png")
    assert top1 == expected[0]["label"]
    assert len(listed) == 5 and listed[0] == top1


def test_strokes_drawn_with_the_mouse_get_predictions(page, tiny_run):
    page.get_by_role("button", name="Brush").click()
    box = page.locator("#sketchpad canvas").first.bounding_box()
    # The drawing area is the square centred in the canvas element; stay well inside it.
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    r = min(box["width"], box["height"]) * 0.35
    for (x0, y0), (x1, y1) in [((-1, -0.6), (1, -0.6)), ((0, -1), (0, 1)), ((-1, 1), (1, 0.2))]:
        page.mouse.move(cx + x0 * r, cy + y0 * r)
        page.mouse.down()
        page.mouse.move(cx + x1 * r, cy + y1 * r, steps=5)  # each step repaints (~0.5 s in software rendering)
        page.mouse.up()

    top1, listed = top_labels(page, "drawing-label")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "demo_app_drawing.png")
    names = set(json.loads((tiny_run / "config.json").read_text())["label_names"])
    assert len(listed) == 5 and set(listed) <= names
    assert top1 == listed[0]
