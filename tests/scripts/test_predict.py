"""scripts/predict.py: a folder, files or globs in, exactly one CSV row per image out, as --do_predict scores them."""

import shutil

import numpy as np
import pandas as pd
import pytest
from conftest import run_script, script_module
from scipy.special import softmax


def predict_args(model, *inputs: str, output=None, extra: tuple[str, ...] = ()) -> list[str]:
    return ["--model", str(model), *inputs, *(["--output", str(output)] if output else []), *extra]


def predict(tiny_run, *inputs: str, output, extra: tuple[str, ...] = ()):
    return run_script("scripts/predict.py", *predict_args(tiny_run, *inputs, output=output, extra=extra))


def test_a_folder_gets_the_scores_do_predict_gave_in_the_same_precision(tiny_run, quickdraw_mini, tmp_path):
    """Default precision and layout on both sides (bf16 autocast where the CPU has AMX), so the same logits."""
    result = predict(tiny_run, str(quickdraw_mini / "test"), output=tmp_path / "p.csv", extra=("--top_k", "3"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Wrote" in result.stdout and "(20 images, top 3)" in result.stdout
    frame = pd.read_csv(tmp_path / "p.csv")
    names = [f"{i}.JPEG" for i in range(20)]
    assert sorted(frame["image_path"]) == sorted(names)
    assert list(frame.columns) == ["image_path", "target", "label_1", "score_1", "label_2", "score_2", "label_3",
                                   "score_3"]
    submission = pd.read_csv(tiny_run / "submission.csv").set_index("image_path")
    probabilities = softmax(np.load(tiny_run / "test_logits.npy").astype(np.float64), axis=1)
    labels = pd.read_json(tiny_run / "config.json", typ="series")["label_names"]
    for row in frame.itertuples():
        expected = probabilities[submission.index.get_loc(row.image_path)]
        assert row.target == submission.target[row.image_path] == expected.argmax()
        assert [row.label_1, row.label_2, row.label_3] == [labels[i] for i in np.argsort(-expected)[:3]]
        assert row.score_1 >= row.score_2 >= row.score_3
        assert row.score_1 == pytest.approx(expected.max(), abs=1e-5)


def test_globs_and_files_and_a_bad_image_that_stops_or_is_skipped(tiny_run, quickdraw_mini, tmp_path, capsys):
    folder = tmp_path / "images"
    folder.mkdir()
    for name in ("0.JPEG", "1.JPEG", "2.JPEG"):
        shutil.copy(quickdraw_mini / "test" / name, folder / name)
    (folder / "2.JPEG").write_bytes((folder / "2.JPEG").read_bytes()[:200])  # cut off, as a failed copy leaves it

    main = script_module("predict").main  # in this process; the tests above and below run the script itself
    stopped = main(predict_args(tiny_run, str(folder / "*.JPEG"), output=tmp_path / "stopped.csv"))
    assert stopped == 2
    stderr = capsys.readouterr().err
    assert stderr.strip().splitlines()[-1].startswith(f"error: 1 unreadable image(s): {folder / '2.JPEG'}: ")
    assert "--bad_images skip" in stderr and not (tmp_path / "stopped.csv").exists()

    skipped = main(predict_args(tiny_run, str(folder / "*.JPEG"), output=tmp_path / "skipped.csv",
                                extra=("--bad_images", "skip")))
    assert skipped == 0
    assert "skipped 1 unreadable image(s)" in capsys.readouterr().out
    assert list(pd.read_csv(tmp_path / "skipped.csv")["image_path"]) == [str(folder / "0.JPEG"), str(folder / "1.JPEG")]

    one = predict_args(tiny_run, str(folder / "1.JPEG"), output=tmp_path / "one.csv", extra=("--tta", "hflip"))
    assert main(one) == 0
    assert len(pd.read_csv(tmp_path / "one.csv")) == 1


def test_inputs_without_images_are_one_clear_error_line(tiny_run, tmp_path):
    result = predict(tiny_run, str(tmp_path / "nowhere"), output=tmp_path / "p.csv")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith(
        f"error: {tmp_path}/nowhere: no such file or folder, and no file matches it as a glob pattern.")


def test_a_folder_without_images_and_an_unknown_model_are_one_clear_error_line(tiny_run, quickdraw_mini, tmp_path,
                                                                             capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not an image")
    main = script_module("predict").main
    assert main(predict_args(tiny_run, str(tmp_path / "empty"), output=tmp_path / "p.csv")) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith(f"error: no image files in {tmp_path}/empty")
    assert main(predict_args(tmp_path / "no-run", str(quickdraw_mini / "test"))) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith(f"error: could not load '{tmp_path / 'no-run'}'")
