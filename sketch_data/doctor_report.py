"""The data doctor's findings (OUT/issues.csv of scripts/doctor.py) as one HTML page to look through.

issues.csv can list thousands of paths and scores, but whether a flagged image really is a duplicate, a wrong label
or an outlier takes looking at it. The page shows each issue type in turn, worst first, as thumbnails beside the
related image, with labels, score and suggested label. Thumbnails are embedded as base64 data URIs, so the page is
one file that can be moved or mailed; an image that cannot be read shows a placeholder instead of breaking the page.
"""

import base64
import html
import io
from pathlib import Path

import pandas as pd
from PIL import Image

from .atomic import atomic_write_text
from .images import to_rgb
from .issues_file import DUPLICATE_ISSUES, TEST, issue_order

THUMBNAIL_SIDE = 96
HINTS = {
    "train_test_duplicate": "test images that also appear in train; score: similarity, 1 = identical.",
    "cross_class_duplicate": "the same picture filed under two classes; score: similarity, 1 = identical.",
    "duplicate": "the same drawing twice in a class, flipped, rotated or re-encoded; score: similarity, 1 = identical.",
    "near_duplicate": "the same drawing twice in a class, also rescaled; score: similarity, 1 = identical.",
    "label": "images whose given label looks wrong; score: label quality, low = worse.",
    "outlier": "images unlike the rest of the data; score: low = more unusual.",
}
STYLE = ("body{font-family:sans-serif;max-width:1200px;margin:auto;padding:1em}"
         ".table{border-collapse:collapse}.table td,.table th{padding:2px 10px;text-align:left;"
         "border-bottom:1px solid #ddd}.pair{display:flex;gap:1.5em;align-items:center;padding:6px 0;"
         "border-bottom:1px solid #eee}img{border:1px solid #ccc}figure{margin:0;width:260px}"
         "figcaption{font-size:12px;word-break:break-all}"
         ".unreadable{display:flex;align-items:center;width:96px;height:96px;background:#fee;font-size:11px;"
         "word-break:break-all}.score{font-size:14px}")


def thumbnail(image_path: str, folders: dict[str, Path]) -> str:
    """An <img> with the image as a data URI, or a placeholder naming the path when it cannot be read."""
    prefix, _, name = image_path.partition("/")
    try:
        if prefix not in folders or not name:
            raise FileNotFoundError(image_path)
        with Image.open(Path(folders[prefix]) / name) as image:
            image.draft(None, (2 * THUMBNAIL_SIDE, 2 * THUMBNAIL_SIDE))  # JPEGs decode at a fraction of their size
            small = to_rgb(image)
            small.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
        buffer = io.BytesIO()
        small.save(buffer, "JPEG", quality=85)
    except (OSError, ValueError, Image.DecompressionBombError):
        return f"<span class='unreadable'>unreadable: {html.escape(image_path)}</span>"
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f"<img src='data:image/jpeg;base64,{data}' alt='{html.escape(image_path)}'>"


def figure(image_path: str, folders: dict[str, Path], labels: dict[str, str], thumbnails: dict[str, str]) -> str:
    """One image: thumbnail, path and its class (test images have none: "test" is shown)."""
    if image_path not in thumbnails:
        thumbnails[image_path] = thumbnail(image_path, folders)
    label = labels.get(image_path) or ("test" if image_path.startswith(TEST) else "unknown")
    return (f"<figure>{thumbnails[image_path]}<figcaption>{html.escape(image_path)}<br>"
            f"label: <b>{html.escape(str(label))}</b></figcaption></figure>")


def entry(row: pd.Series, folders: dict[str, Path], labels: dict[str, str], thumbnails: dict[str, str]) -> str:
    """One gallery row: the image, the related image if any, the score and the suggested label if any."""
    parts = [figure(str(row["image_path"]), folders, labels, thumbnails)]
    if pd.notna(row.get("related_image_path")) and str(row["related_image_path"]):
        parts.append(figure(str(row["related_image_path"]), folders, labels, thumbnails))
    score = f"score {row['score']:.4f}" if pd.notna(row.get("score")) else "no score"
    if pd.notna(row.get("suggested_label")) and str(row["suggested_label"]):
        score += f"<br>suggested label: <b>{html.escape(str(row['suggested_label']))}</b>"
    return f"<div class='pair'>{''.join(parts)}<p class='score'>{score}</p></div>"


def section(issue: str, rows: pd.DataFrame, folders: dict[str, Path], labels: dict[str, str],
            per_issue: int, thumbnails: dict[str, str]) -> str:
    """The rows of one issue type, worst first: most similar duplicates, lowest-quality others, at most per_issue."""
    worst = rows.sort_values("score", ascending=issue not in DUPLICATE_ISSUES, na_position="last", kind="stable")
    entries = "".join(entry(row, folders, labels, thumbnails) for _, row in worst.head(per_issue).iterrows())
    more = (f"<p class='more'>and {len(rows) - per_issue} more in <a href='issues.csv'>issues.csv</a></p>"
            if len(rows) > per_issue else "")
    hint = f"<p>{html.escape(HINTS[issue])}</p>" if issue in HINTS else ""
    name = html.escape(issue)
    return f"<section id='issue-{name}'><h2>{name} ({len(rows)})</h2>{hint}{entries}{more}</section>"


def write_doctor_report(issues: pd.DataFrame, folders: dict[str, Path], labels: dict[str, str], output: Path,
                        per_issue: int = 60, summary: dict[str, str] | None = None) -> Path:
    """Write the page of `issues` (issues.csv's rows) to `output`; image paths are `train/...` or `test/...`, found
    under folders["train"] and folders["test"]; `labels` gives the class of each train image path."""
    rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                   for k, v in (summary or {}).items())
    order = issue_order(issues["issue"].dropna())
    contents = "".join(f"<li><a href='#issue-{html.escape(i)}'>{html.escape(i)}</a> "
                       f"({int((issues['issue'] == i).sum())})</li>" for i in order)
    thumbnails: dict[str, str] = {}  # an image flagged twice is decoded once
    sections = "".join(section(i, issues[issues["issue"] == i], folders, labels, per_issue, thumbnails)
                       for i in order)
    body = ("<h1>Data doctor report</h1>" + (f"<table class='table'>{rows}</table>" if rows else "")
            + (f"<ul>{contents}</ul>{sections}" if order else "<p>No issues found.</p>"))
    return atomic_write_text(Path(output), "<!doctype html><html><head><meta charset='utf-8'>"
                             f"<title>Data doctor report</title><style>{STYLE}</style></head>"
                             f"<body>{body}</body></html>")
