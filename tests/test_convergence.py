"""Issue 14: 'enough epochs that held-out robust accuracy has levelled off (committed curves show it)': the training
curves of a study are read from each run's metrics.jsonl, the last epoch is judged against binomial noise, and the
curves are drawn one panel per method, one line per seed."""
import json
import math

import pytest

from ot_robust.reports.convergence import (convergence_markdown, convergence_table, last_epoch_change,
                                   plot_training_curves, training_curves)


def test_last_epoch_change_against_binomial_noise():
    change, noise, verdict = last_epoch_change(90.0, 92.0, 500)
    assert change == pytest.approx(2.0)
    assert noise == pytest.approx(100 * 1.96 * math.sqrt((0.9 * 0.1 + 0.92 * 0.08) / 500))  # 3.55 points
    assert verdict == "flat within noise"
    assert last_epoch_change(89.6, 81.8, 500)[2] == "falling"  # GOT-TRADES-S seed 0's last epoch
    assert last_epoch_change(74.4, 87.4, 500)[2] == "rising"
    assert last_epoch_change(90.0, 92.0, 100_000)[2] == "rising"  # the same change on many images is real
    for bad in ((90.0, 92.0, 0), (-1.0, 50.0, 500), (50.0, 100.5, 500)):
        with pytest.raises(ValueError, match="n must be|must lie in"):
            last_epoch_change(*bad)


def _write_metrics(root, exp, pgd10, clean=95.0, planned=5):
    d = root / "study-mnist" / "train" / exp
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps({"config": {"epochs": planned}}))
    lines = [json.dumps({"epoch": e + 1, "train_loss": 1.0, "eval_clean_acc": clean, "eval_pgd10_acc": a,
                         "eval_n": 500, "eval_eps": 0.3}) for e, a in enumerate(pgd10)]
    (d / "metrics.jsonl").write_text("\n".join(lines) + "\n")


def test_training_curves_table_and_figure_from_metrics(tmp_path):
    _write_metrics(tmp_path, "pgd_at", [80.8, 85.4, 89.4, 92.8, 92.8])
    _write_metrics(tmp_path, "pgd_at_s1", [76.8, 85.0, 89.6, 93.0, 93.2])
    _write_metrics(tmp_path, "got_trades_s", [78.8, 83.6, 86.0, 89.6, 81.8])
    _write_metrics(tmp_path, "trades", [82.2, 88.6])  # stopped by a budget after 2 of its 5 epochs
    curves = training_curves("study-mnist", tmp_path)  # untrained experiments of the profile are left out
    assert sorted(curves.experiment.unique()) == ["got_trades_s", "pgd_at", "pgd_at_s1", "trades"]
    unfinished = convergence_table(curves).set_index("label").loc["TRADES"]
    assert unfinished["last epoch"] == "training (2 of 5)" and unfinished["epochs"] == "2 of 5"
    curves = curves[curves.experiment != "trades"]
    assert sorted(curves[curves.label == "Madry"].seed.unique()) == [0, 1]  # seeds from the profile
    assert len(curves) == 15 and set(curves.eps) == {0.3}
    table = convergence_table(curves)
    got = table[table.label == "GOT-TRADES-S"].iloc[0]
    assert got["last epoch"] == "falling" and got["best epoch"] == 4 and got["epochs"] == "5"
    assert got["pgd10 by epoch"] == "78.8 -> 83.6 -> 86.0 -> 89.6 -> 81.8"
    assert got["last change"].startswith("-7.8 (noise")
    madry = table[table.label == "Madry"]
    assert list(madry.seed) == [0, 1] and set(madry["last epoch"]) == {"flat within noise"}
    md = convergence_markdown(curves, "study-mnist")
    assert "n = 500, eps = 0.3" in md and md.count("| Madry |") == 2
    fig = plot_training_curves(curves, "study-mnist")
    panels = [ax for ax in fig.axes if ax.get_visible() and ax.get_title()]
    assert sorted(ax.get_title() for ax in panels) == ["GOT-TRADES-S", "Madry"]
    # one key for the whole figure: the marker of each seed (the same in every panel) and the two line styles
    legends = [leg for ax in fig.axes for leg in [ax.get_legend()] if leg] + list(fig.legends)
    assert len(legends) == 1
    assert [t.get_text() for t in legends[0].get_texts()] == ["seed 0", "seed 1", "held-out PGD-10",
                                                              "held-out clean", "epoch of the verdicts"]
    got_ax = next(ax for ax in panels if ax.get_title() == "GOT-TRADES-S")
    seed0 = {ax.get_title(): ax.lines[0].get_marker() for ax in panels}
    assert seed0["Madry"] == seed0["GOT-TRADES-S"] == "o" and got_ax.lines[0].get_marker() == "o"
    madry_ax = next(ax for ax in panels if ax.get_title() == "Madry")
    assert len(madry_ax.lines) == 5  # PGD-10 and clean, for each of the two seeds, and the verdicts' epoch
    assert list(madry_ax.lines[0].get_ydata()) == [80.8, 85.4, 89.4, 92.8, 92.8]
    assert list(madry_ax.lines[4].get_xdata()) == [5, 5] and madry_ax.lines[4].get_linestyle() == ":"


def test_no_trained_run_is_a_clear_error(tmp_path):
    curves = training_curves("study-mnist", tmp_path)
    assert curves.empty
    with pytest.raises(ValueError, match="at least one trained run"):
        plot_training_curves(curves)
