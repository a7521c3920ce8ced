"""The pipeline's remaining-time estimate (ot_robust.study.eta): similar steps, not the average of all steps."""
import json
from types import SimpleNamespace

from ot_robust.study.eta import StepClock, format_minutes, step_kind


def _step(name, notebook, method=None, done_dir=None):
    return SimpleNamespace(name=name, notebook=f"notebooks/{notebook}.ipynb",
                           params={"method": method} if method else {},
                           done_dir=done_dir or f"d/{name}")


def test_estimate_uses_the_most_similar_steps():
    clock = StepClock(jobs=1)
    clock.record(_step("train/fs", "10_train", "feature_scattering"), 3000)
    clock.record(_step("train/std", "10_train", "standard"), 100)
    clock.record(_step("figures/toy", "45_toy"), 10)
    # same notebook and method: seed 1 of FS costs what seed 0 did, not the mean of all steps
    assert clock.estimate(_step("train/fs_s1", "10_train", "feature_scattering")) == 3000
    assert clock.estimate(_step("train/trades", "10_train", "trades")) == 1550  # same notebook: median 100, 3000
    assert clock.estimate(_step("evaluate/x", "20_evaluate")) == 100  # nothing similar: median of all
    assert step_kind(_step("a", "10_train", "sw")) == ("10_train", "sw")


def test_remaining_divides_by_jobs_and_is_unknown_without_history():
    assert StepClock().remaining([_step("a", "n")]) is None
    assert StepClock().remaining([]) == 0.0
    clock = StepClock(jobs=2)
    clock.record(_step("a", "n"), 60)
    assert clock.remaining([_step("b", "n"), _step("c", "n")]) == 60


def test_durations_come_from_done_files(tmp_path):
    s1, s2 = _step("train/a", "10_train", "sw"), _step("train/b", "10_train", "sw")
    (tmp_path / s1.done_dir).mkdir(parents=True)
    (tmp_path / s1.done_dir / ".done.json").write_text(json.dumps({"seconds": 1200.0}))
    clock = StepClock()
    clock.record_done_files([s1, s2], tmp_path)  # s2 has no record: skipped
    assert clock.estimate(s2) == 1200.0


def test_format():
    assert format_minutes(None) == "" and format_minutes(600) == "ETA 10 min"
    assert format_minutes(3 * 3600) == "ETA 3.0 h"
