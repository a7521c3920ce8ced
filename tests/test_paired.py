"""Two evaluated runs paired on the same images (ot_robust.reports.paired, `python -m ot_robust compare`)."""
import json

import numpy as np
import pytest

from ot_robust.__main__ import main
from ot_robust.evaluation.results import save_masks
from ot_robust.reports.paired import differences, paired_table


def _run(root, exp, masks, params, idx=None):
    ev = root / "study-fashion" / "eval" / exp
    ev.mkdir(parents=True)
    (ev / "eval.json").write_text(json.dumps({"n_examples": len(masks["clean"])}))
    save_masks(ev / "masks.npz", masks, np.arange(len(masks["clean"])) if idx is None else idx)
    tr = root / "study-fashion" / "train" / exp
    tr.mkdir(parents=True)
    cfg = {"method": "feature_scattering", "method_params": {"eps": 0.1, "steps": 1, **params},
           "dataset": "fashion-mnist", "model": "small_cnn", "epochs": 6}
    (tr / "config.json").write_text(json.dumps({"config": cfg}))


def test_paired_difference_counts_only_clean_correct_images_and_names_the_differing_keys(tmp_path, capsys):
    clean_a = np.array([1, 1, 1, 1, 0, 1, 1, 1], bool)
    pgd_a = np.array([1, 1, 1, 0, 1, 0, 0, 0], bool)        # image 4: "robust" but wrong clean -> not counted
    clean_b = np.ones(8, bool)
    pgd_b = np.array([1, 0, 0, 0, 0, 0, 0, 1], bool)
    _run(tmp_path, "fs_official_start", {"clean": clean_a, "pgd20": pgd_a}, {"clip_start": False})
    _run(tmp_path, "feature_scattering", {"clean": clean_b, "pgd20": pgd_b}, {"clip_start": True})
    t = paired_table(tmp_path, "study-fashion", "fs_official_start", "feature_scattering")
    assert list(t.index) == ["clean", "pgd20"]
    row = t.loc["pgd20"]
    assert (row.acc_a, row.acc_b, row.a_only, row.b_only, row.n) == (37.5, 25.0, 2, 1, 8)
    assert row["diff"] == pytest.approx(12.5) and row.ci_low < row["diff"] < row.ci_high
    assert differences(tmp_path, "study-fashion", "fs_official_start", "feature_scattering") == [
        "clip_start: False vs True"]
    assert main(["compare", "--profile", "study-fashion", "--results-dir", str(tmp_path), "fs_official_start",
                 "feature_scattering", "--columns", "pgd20"]) == 0
    out = capsys.readouterr().out
    assert "differ in: clip_start: False vs True" in out and "| pgd20 | 37.5 | 25.0 | 12.5 |" in out


def test_bad_columns_other_images_and_missing_runs_are_one_line_errors(tmp_path, capsys):
    m = {"clean": np.ones(4, bool), "pgd20": np.zeros(4, bool)}
    _run(tmp_path, "a", m, {})
    _run(tmp_path, "b", m, {}, idx=np.array([3, 2, 1, 0]))
    with pytest.raises(ValueError, match="evaluated on different images"):
        paired_table(tmp_path, "study-fashion", "a", "b")
    with pytest.raises(ValueError, match=r"columns \['cw20'\] are not in both evaluations"):
        paired_table(tmp_path, "study-fashion", "a", "b", ["cw20"])
    assert main(["compare", "--profile", "study-fashion", "--results-dir", str(tmp_path), "a", "nope"]) == 2
    assert capsys.readouterr().err.startswith("error: 'nope' of profile 'study-fashion' has no evaluation")
