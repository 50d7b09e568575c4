"""Generated CSVs and images (scripts/fuzz_inputs.py) each end in a loaded data set or the one-line SketchDataError,
never a traceback or a hang; every failing case the fuzzer ever saved is replayed."""

import logging
import time

import pytest

from scripts.fuzz_inputs import REGRESSIONS, FuzzCase, check_case, load_regression, run

CI_EXAMPLES = 300


def test_generated_inputs_never_end_in_a_traceback(quickdraw_mini, caplog):
    caplog.set_level(logging.ERROR, logger="sketch_data")
    start = time.monotonic()
    outcomes, case, error = run(CI_EXAMPLES, quickdraw_mini)  # derandomized: the same cases every run
    assert case is None, f"{error}\n{case}"
    assert sum(outcomes.values()) >= CI_EXAMPLES and time.monotonic() - start < 60
    # the generator reaches every kind of ending, not only the first check
    assert outcomes["error"] and outcomes["loaded"] and any(o.endswith("skipped") for o in outcomes)


@pytest.mark.parametrize("folder", sorted(REGRESSIONS.glob("case_*")), ids=lambda folder: folder.name)
def test_saved_fuzz_regression(folder, quickdraw_mini):
    """Each case once ended in a traceback; the fix makes it a loaded data set or a SketchDataError."""
    outcome = check_case(load_regression(folder), quickdraw_mini)
    assert outcome in ("error", "loaded") or outcome.endswith("skipped")


def test_the_checker_catches_a_traceback(monkeypatch):
    """The fuzz test can fail: an exception other than SketchDataError is reported, not swallowed."""
    def broken(*args, **kwargs):
        raise KeyError("image_path")

    monkeypatch.setattr("scripts.fuzz_inputs.load_sketch_dataset", broken)
    with pytest.raises(AssertionError, match="traceback: KeyError"):
        check_case(FuzzCase({"train.csv": b"class_name,image_path,target\n"}, {}), REGRESSIONS)
