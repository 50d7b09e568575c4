"""sketch_data/doctor_report.py: the data doctor's HTML page over real quickdraw-mini sketches, read as text and in
headless Chromium."""

import base64
import io
import re
from pathlib import Path

import pandas as pd
import pytest
from conftest import CHROMIUM_ARGS, chromium_path
from PIL import Image

from sketch_data.doctor_report import write_doctor_report

NAN = float("nan")
MISSING = "train/camel/missing.JPEG"


def train_paths(data_dir: Path) -> tuple[list[str], dict[str, str]]:
    """The prefixed train image paths and their classes, as the doctor names them."""
    train = pd.read_csv(data_dir / "train.csv")
    paths = ["train/" + p for p in train["image_path"]]
    return paths, dict(zip(paths, train["class_name"]))


def hand_made_issues(paths: list[str]) -> pd.DataFrame:
    """One or more rows of each kind, in no particular order; near_duplicate has 5 rows to test the cap."""
    rows = [
        (paths[4], "label", 0.40, NAN, "belt"),
        (MISSING, "outlier", 0.05, NAN, NAN),
        (paths[5], "blurry", 0.30, NAN, NAN),
        (paths[0], "train_test_duplicate", 1.0, "test/0.JPEG", NAN),
        (paths[1], "cross_class_duplicate", 0.97, paths[3], NAN),
        (paths[6], "label", 0.12, NAN, "a<b"),
        *[(paths[10 + i], "near_duplicate", score, paths[20 + i], NAN)
          for i, score in enumerate([0.92, 0.95, 0.91, 0.94, 0.93])],
    ]
    return pd.DataFrame(rows, columns=["image_path", "issue", "score", "related_image_path", "suggested_label"])


@pytest.fixture
def written(quickdraw_mini, tmp_path) -> tuple[Path, pd.DataFrame, dict[str, str]]:
    paths, labels = train_paths(quickdraw_mini)
    labels[paths[6]] = "<script>alert(1)</script>"  # a hostile class name must show as text
    issues = hand_made_issues(paths)
    page = write_doctor_report(issues, {"train": quickdraw_mini / "train", "test": quickdraw_mini / "test"}, labels,
                               tmp_path / "report.html", per_issue=3,
                               summary={"images examined": "100", "time: duplicates": "0.4 s"})
    return page, issues, labels


def sections(page: str) -> dict[str, str]:
    return dict(re.findall(r"<section id='issue-([^']+)'>(.*?)</section>", page, re.S))


def test_sections_come_in_fixed_order_with_counts_entries_and_labels(written):
    path, issues, labels = written
    page = path.read_text()
    found = sections(page)
    assert list(found) == ["train_test_duplicate", "cross_class_duplicate", "near_duplicate", "label", "outlier",
                           "blurry"]
    counts = issues["issue"].value_counts()
    for issue, text in found.items():
        assert f"<h2>{issue} ({counts[issue]})</h2>" in text
        assert text.count("class='pair'") == min(counts[issue], 3)
    assert "<th>images examined</th><td>100</td>" in page

    pair = found["cross_class_duplicate"]
    first, related = issues.loc[issues["issue"] == "cross_class_duplicate", ["image_path", "related_image_path"]].iloc[0]
    assert f"label: <b>{labels[first]}</b>" in pair and f"label: <b>{labels[related]}</b>" in pair
    assert pair.count("<img ") == 2 and "score 0.9700" in pair
    assert "test/0.JPEG<br>label: <b>test</b>" in found["train_test_duplicate"]
    assert found["blurry"].count("<figure>") == 1  # no related image


def test_worst_first_capped_with_a_link_to_the_rest(written):
    path, issues, _ = written
    found = sections(path.read_text())
    near = issues[issues["issue"] == "near_duplicate"].sort_values("score", ascending=False)
    shown = [m for m in re.findall(r"alt='([^']+)'", found["near_duplicate"]) if m in set(near["image_path"])]
    assert shown == list(near["image_path"][:3])  # most similar first
    assert "and 2 more in <a href='issues.csv'>issues.csv</a>" in found["near_duplicate"]
    assert "more in" not in found["label"]
    labels = found["label"]
    assert labels.index("score 0.1200") < labels.index("score 0.4000")  # lowest label quality first
    assert "suggested label: <b>belt</b>" in labels


def test_thumbnails_are_small_embedded_images_and_unreadable_ones_a_placeholder(written):
    path, _, _ = written
    page = path.read_text()
    assert f"unreadable: {MISSING}" in page and f"alt='{MISSING}'" not in page
    uris = re.findall(r"src='data:image/jpeg;base64,([^']+)'", page)
    assert len(uris) == 2 + 2 + 3 * 2 + 2 + 1  # duplicates in pairs; label, blurry alone; the outlier unreadable
    with Image.open(io.BytesIO(base64.b64decode(uris[0]))) as image:
        assert max(image.size) == 96
    assert "src='/" not in page and "file:" not in page  # nothing outside the page


def test_paths_and_labels_are_escaped(written):
    page = written[0].read_text()
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "a&lt;b" in page


def test_no_issues_is_a_page_saying_so(tmp_path):
    empty = pd.DataFrame(columns=["image_path", "issue", "score", "related_image_path", "suggested_label"])
    page = write_doctor_report(empty, {}, {}, tmp_path / "report.html").read_text()
    assert "No issues found." in page and "<section" not in page


def test_page_renders_in_chromium_with_every_thumbnail_decoded(written):
    from playwright.sync_api import sync_playwright

    path, _, _ = written
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        page = browser.new_page()
        errors = []
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(path.as_uri(), wait_until="load")
        widths = page.eval_on_selector_all("img", "images => images.map(i => i.complete ? i.naturalWidth : 0)")
        headings = page.locator("h2")
        visible = [headings.nth(i).is_visible() for i in range(headings.count())]
        browser.close()
    assert len(widths) == 13 and min(widths) > 0
    assert len(visible) == 6 and all(visible)
    assert errors == []
