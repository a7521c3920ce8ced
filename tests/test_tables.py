"""Paper tables: the bundled copy of paper_tables.yaml, and the layout of our tables (paper beside ours)."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ot_robust.reports import tables
from ot_robust.profiles import load_profile


def _eval(acc, aa=None, sanity=("pass", "pass"), transfer=None):
    """An eval.json as notebooks/20_evaluate.ipynb writes it (the fields tables.py reads)."""
    return {"accuracy": acc, "autoattack": aa, "worst_case": min(v for v in acc.values() if v is not None),
            "sanity": [{"check": f"c{i}", "status": s} for i, s in enumerate(sanity)], "n_examples": 200,
            "transfer": transfer or {}}


@pytest.fixture(scope="module")
def smoke():
    return load_profile("smoke")


def test_bundled_paper_tables_match_their_recorded_source():
    src = json.loads((tables.PAPER_TABLES_PATH.parent / "paper_tables.source.json").read_text())
    assert hashlib.sha256(tables.PAPER_TABLES_PATH.read_bytes()).hexdigest() == src["sha256"]
    t1 = tables.paper_table("fs", "table1_cifar10_whitebox")
    assert t1["columns"] == ["clean", "fgsm", "pgd10", "pgd20", "pgd40", "pgd100", "cw10", "cw20", "cw40", "cw100"]
    assert t1["rows"]["Madry"][3] == 44.9 and t1["rows"]["Proposed"][3] == 70.5
    for spec in tables.TABLES.values():  # every registered table exists in the YAML
        assert tables.paper_table(spec.paper, spec.key)["rows"]


def test_table1_puts_ours_beside_the_paper_with_extra_columns(smoke):
    evals = {"standard": _eval({"clean": 98.0, "fgsm": 40.0, "pgd10": 3.0, "cw10": 2.5}),
             "pgd_at": _eval({"clean": 95.0, "fgsm": 80.0, "pgd10": 70.0, "cw10": 69.0}, aa=66.5,
                             sanity=("pass", "flag"))}
    res = tables.build_table("fs_table1", evals, smoke)
    df = res.frame
    assert (list(df.columns[:4]) == ["Clean", "FGSM", "PGD10", "PGD20"]
            and list(df.columns[-3:]) == ["AA", "worst", "sanity"])
    assert df.loc[("Madry", "paper"), "PGD20"] == 44.9
    ours = df.loc[("Madry", "ours (smoke)")]
    assert ours["PGD10"] == 70.0 and ours["AA"] == 66.5 and ours["sanity"] == "flag: c1"
    assert pd.isna(ours["PGD100"])  # not measured in this profile: blank, never invented
    assert df.loc[("Standard", "ours (smoke)"), "sanity"] == "pass"
    rows = list(df.index)
    assert rows.index(("Madry", "paper")) + 1 == rows.index(("Madry", "ours (smoke)"))
    assert ("Proposed", "ours (smoke)") not in rows  # no eval.json for it: no row
    assert "`smoke`" in res.caption and "CIFAR-10" in res.caption
    md, csv, tex = res.render("md"), res.render("csv"), res.render("tex")
    assert "| Madry | ours (smoke) | 95.0 | 80.0 | 70.0 |" in md
    assert "Madry,paper,85.70,54.90,45.10,44.90" in csv
    assert r"\begin{tabular}" in tex and r"\caption{FS Table 1" in tex
    with pytest.raises(ValueError, match="unknown table format"):
        res.render("html")


def test_blocks_sweep_and_transfer_tables(smoke):
    fs = _eval({"clean": 97.0, "pgd20": 60.0, "pgd40": 55.0}, transfer={"Undefended": {"pgd20": 90.0},
                                                                        "Siamese": {"pgd20": 80.0}})
    prof = load_profile("smoke")
    prof.methods["feature_scattering"].tables.update(
        fs_rebuttal_batch_size={"row": "Proposed", "column": "bs60"}, fs_blackbox="Proposed")
    t4 = tables.build_table("fs_table4", {"feature_scattering": fs}, prof).frame
    assert t4.loc[("IPOT", "paper (svhn)"), "Clean"] == 96.0
    assert t4.loc[("Sinkhorn", "ours (smoke, mnist-sample)"), "PGD20"] == 60.0
    sw = tables.build_table("fs_rebuttal_batch_size", {"feature_scattering": fs}, prof)
    # issue 14: a PGD-100 column never holds PGD-40 numbers; without PGD-100 the cell stays empty and says why
    assert np.isnan(sw.frame.loc[("Proposed", "ours (smoke)"), "bs60"])
    assert "did not run PGD100" in sw.caption
    fs100 = _eval({"clean": 97.0, "pgd40": 55.0, "pgd100": 52.0})
    sw = tables.build_table("fs_rebuttal_batch_size", {"feature_scattering": fs100}, prof)
    assert sw.frame.loc[("Proposed", "ours (smoke)"), "bs60"] == 52.0
    bb = tables.build_table("fs_blackbox", {"feature_scattering": fs}, prof).frame
    assert bb.loc[("Undefended", "paper"), "PGD20"] == 89.0 and bb.loc[("Siamese", "ours (smoke)"), "PGD20"] == 80.0


def test_build_tables_reads_eval_json_and_writes_three_formats(tmp_path, smoke):
    d = tmp_path / "runs" / "eval" / "pgd_at"
    d.mkdir(parents=True)
    (d / "eval.json").write_text(json.dumps(_eval({"clean": 91.0, "pgd10": 61.0})))
    out = tables.build_tables(smoke, tmp_path / "runs", tmp_path / "tables", ["fs_table1"])
    assert sorted(p.suffix for p in out["fs_table1"]) == [".csv", ".md", ".tex"]
    assert "61.0" in (tmp_path / "tables" / "fs_table1.md").read_text()


def test_unknown_names_raise():
    with pytest.raises(ValueError, match="unknown table 'fs_table9'"):
        tables.build_table("fs_table9", {})
    with pytest.raises(ValueError, match="unknown table 'nope' of paper 'fs'"):
        tables.paper_table("fs", "nope")
    with pytest.raises(ValueError, match="already registered"):
        tables.register_table(tables.TABLES["fs_table1"])


def test_got_table2_aliases_and_awp_columns():
    """GOT Table 2 names our columns differently (nat = clean, pgd = PGD-20, aa = AutoAttack) and is filled per
    dataset by its profile; OTJR Table 3's awp_* columns read the AWP-trained model's own clean / AutoAttack."""
    prof = load_profile("study-cifar10")
    evals = {"got_trades_lm": _eval({"clean": 50.0, "pgd20": 30.0, "fgsm": 35.0}, aa=25.0)}
    df = tables.build_table("got_table2", evals, prof).frame
    ours = df.loc[("GOT-TRADES-LM", "ours (study-cifar10, cifar10-jpeg)")]
    assert list(df.columns) == ["nat", "pgd", "AA", "worst", "sanity"]
    assert (ours["nat"], ours["pgd"], ours["AA"], ours["worst"]) == (50.0, 30.0, 25.0, 30.0)
    assert df.loc[("GOT-TRADES-LM", "paper (svhn)")].notna().any()
    assert ("PGD-AT", "ours (study-cifar10, cifar10-jpeg)") not in list(df.index)  # not evaluated: no row
    from ot_robust.reports import otjr as otjr_tables  # its tables are registered with the others

    abl = load_profile("ablations")
    t3 = tables.build_table("otjr_table3", {"awp_otjr": _eval({"clean": 80.0, "pgd20": 40.0}, aa=33.0)}, abl).frame
    row = t3.loc[("OTJR", "ours (ablations)")]
    assert row.iloc[0] == 80.0 and row.iloc[1] == 33.0 and pd.isna(row.iloc[2])  # awp_clean, awp_aa; no LBGAT run
    assert otjr_tables is not None


def test_got_mnist_tables_use_the_one_renderer_and_only_mnist_profiles_get_them(tmp_path):
    """GOT Tables 1/4/5 (issue 14: JPEG-CIFAR numbers once sat under MNIST captions; issue 18: their own renderer)."""
    from ot_robust.reports import got

    quick = load_profile("quick")
    evals = {"pgd_at": _eval({"clean": 98.0, "pgd20": 90.0, "pgd40": 88.5}, aa=85.25),
             "got_trades_lm": _eval({"clean": 97.0, "pgd40": 89.0}, aa=86.0, sanity=("pass", "flag"))}
    t1 = got.build_mnist_table("got_table1", evals, quick)
    assert list(t1.frame.columns) == ["Nat", "PGD", "AA", "attack", "sanity"]
    ours = t1.frame.loc[("PGD-AT", "ours (quick: pgd_at)")]
    assert (ours["Nat"], ours["PGD"], ours["AA"], ours["attack"]) == (98.0, 88.5, 85.25, "pgd40")  # strongest PGD
    assert t1.frame.loc[("GOT-TRADES-LM", "ours (quick: got_trades_lm)")]["sanity"] == "flag: c1"
    assert t1.frame.loc[("MART", "ours (quick)")]["sanity"] == got.NOT_RUN
    md, tex = t1.render("md"), t1.render("tex")
    assert md.startswith("**GOT Table 1: MNIST") and "profile `quick` (mnist-sample" in md and "| 85.2 |" in md
    assert r"\label{tab:got_table1}" in tex
    cifar = load_profile("study-cifar10")
    assert got.build_mnist_table("got_table1", evals, cifar) is None
    (tmp_path / "eval/pgd_at").mkdir(parents=True)
    (tmp_path / "eval/pgd_at/eval.json").write_text(json.dumps(evals["pgd_at"]))
    written = got.write_tables(cifar, tmp_path, tmp_path / "tables")
    assert "MNIST table" in written["got_table1"] and "MNIST finding" in written["got_eps_plateau_check"]
    assert [p.name for p in written["got_table2"]] == ["got_table2.md", "got_table2.csv", "got_table2.tex"]
    written = got.write_tables(quick, tmp_path, tmp_path / "q", ["got_table1", "got_eps_plateau_check"])
    assert (tmp_path / "q/got_table1.tex").is_file() and "GOT models evaluated" in (
        tmp_path / "q/got_eps_plateau_check.md").read_text()
    with pytest.raises(ValueError, match="unknown GOT MNIST table"):
        got.build_mnist_table("got_table9", evals, quick)


def test_a_model_trained_with_several_seeds_shows_its_mean_and_t_interval():
    """Issue 14: 'several seeds give mean +- t-interval': a table row of a model with evaluated seed siblings (the
    profile's experiments that differ only in their seed) is their mean with its 95% Student-t half-width, and the
    sanity cell names the flagged checks with their seeds; a model evaluated with one seed keeps its one row."""
    from scipy import stats

    prof = load_profile("study-fashion")
    assert prof.seeds_of("pgd_at") == [(0, "pgd_at"), (1, "pgd_at_s1"), (2, "pgd_at_s2")]
    assert prof.seeds_of("pgd_at_s1") == prof.seeds_of("pgd_at")
    assert prof.seeds_of("fs_ipot") == [(0, "fs_ipot")]  # another setting of FS is not a seed of FS
    pgd20 = [65.5, 64.1, 68.7]
    evals = {e: _eval({"clean": 80.0 + i, "pgd20": v}, aa=v - 1, sanity=("pass", "flag" if i == 2 else "pass"))
             for i, (e, v) in enumerate(zip(("pgd_at", "pgd_at_s1", "pgd_at_s2"), pgd20))}
    evals["trades"] = _eval({"clean": 79.0, "pgd20": 65.0}, aa=64.0)
    df = tables.build_table("fs_table1", evals, prof).frame
    mean = df.loc[("Madry", "ours (study-fashion, mean of 3 seeds)")]
    half = df.loc[("Madry", "+- 95% t half-width (3 seeds)")]
    assert mean["PGD20"] == pytest.approx(np.mean(pgd20)) and mean["Clean"] == pytest.approx(81.0)
    assert half["PGD20"] == pytest.approx(stats.t.ppf(0.975, 2) * np.std(pgd20, ddof=1) / np.sqrt(3))
    assert mean["sanity"] == "flag: c1 (seed 2)" and pd.isna(half["PGD100"])  # not measured: blank
    assert df.loc[("Madry", "ours (study-fashion, seed 0)"), "PGD20"] == 65.5  # the ablations' reference model
    assert ("Madry", "ours (study-fashion)") not in df.index and len(df.loc["Madry"]) == 4  # paper + 3 of ours
    assert df.loc[("TRADES", "ours (study-fashion)"), "PGD20"] == 65.0  # one seed evaluated: its own row
    with pytest.raises(ValueError, match="at least two seeds"):
        tables.pool_seeds([{"pgd20": 1.0}], [0])


def test_sanity_cell_reads_back_the_checks_it_names():
    checks = [{"check": "c1", "status": "flag"}, {"check": "c2", "status": "pass"}, {"check": "c3", "status": "flag"}]
    for ev, flags in (({"sanity": checks}, ["c1", "c3"]), ({"sanity": checks[1:2]}, []), ({}, [])):
        assert tables.sanity_flags(tables.sanity_text(ev)) == flags


def test_got_table1_lists_each_seed_and_their_mean():
    from ot_robust.reports.got import build_mnist_table

    prof = load_profile("study-mnist")
    evals = {e: _eval({"clean": 99.0, "pgd40": v}, aa=v - 4) for e, v in (("pgd_at", 94.8), ("pgd_at_s1", 95.1))}
    df = build_mnist_table("got_table1", evals, prof).frame
    assert df.loc[("PGD-AT", "ours (study-mnist: pgd_at_s1)"), "PGD"] == 95.1
    mean = df.loc[("PGD-AT", "ours (study-mnist: pgd_at, mean of 2 seeds)")]
    assert mean["PGD"] == pytest.approx(94.95) and mean["attack"] == "pgd40"
    assert df.loc[("PGD-AT", "+- 95% t half-width (2 seeds)"), "AA"] == pytest.approx(12.706 * 0.3 / 2, rel=1e-3)


def test_got_fig2_names_models_as_got_table1_does(tmp_path, monkeypatch):
    """GOT Fig. 2 calls the Madry model PGD-AT, the name of its GOT Table 1 row (it once said Madry beside a table
    that says PGD-AT); methods outside the GOT paper (none here) are left out."""
    from ot_robust.reports import got

    prof = load_profile("study-mnist")
    c = {"vs_epsilon": {"x": [0, 0.3], "accuracy": [99, 90], "steps": 20},
         "vs_steps": {"x": [1, 40], "accuracy": [95, 90], "eps": 0.3}, "n_examples": 1000}
    for e in ("pgd_at", "got_pgd_lm"):
        (tmp_path / "eval" / e).mkdir(parents=True)
        (tmp_path / "eval" / e / "curves.json").write_text(json.dumps(c))
    seen = {}
    monkeypatch.setattr(got, "plot_accuracy_curves", lambda curves, suffix, sweeps: seen.update(curves) or object())
    monkeypatch.setattr(got, "save_figure", lambda fig, name, d: [name])
    assert got.fig_got_fig2(prof, tmp_path, tmp_path / "fig") == ["got_fig2_accuracy_vs_eps_steps"]
    assert list(seen) == ["PGD-AT", "GOT-PGD-LM"]


def test_got_fig2_from_the_committed_study_shows_the_papers_protocol(tmp_path, monkeypatch):
    """Issue 33: the committed study-mnist runs give GOT Fig. 2 its third panel, the paper's protocol, for the six
    models of the plateau audit, with and without the random start."""
    from ot_robust.reports import got

    seen = {}
    monkeypatch.setattr(got, "save_figure", lambda fig, name, d: seen.update(fig=fig) or [name])
    got.fig_got_fig2(load_profile("study-mnist"), Path(__file__).resolve().parents[1] / "results" / "study-mnist",
                     tmp_path)
    fig = seen["fig"]
    assert len(fig.axes) == 3
    styles = [ln.get_linestyle() for ln in fig.axes[2].lines]
    assert len(styles) == 12 and styles.count("--") == 6
    import matplotlib.pyplot as plt

    plt.close(fig)


FIGURES = Path(__file__).resolve().parents[1] / "figures"


def _profiles_with_committed_tables():
    from ot_robust.profiles import list_profiles, load_meta_profile

    for name in list_profiles():
        if load_meta_profile(name) is None and (FIGURES / name / "tables").is_dir():
            yield name, load_profile(name)


def _committed_tables():
    for name, _ in _profiles_with_committed_tables():
        yield from ((name, f) for f in sorted((FIGURES / name / "tables").glob("*.csv")))


def test_every_committed_table_prints_only_rows_its_profile_trains_for_them():
    checked, wrong = 0, []
    profiles = {}
    for name, path in _committed_tables():
        prof = profiles.setdefault(name, load_profile(name))
        allowed = tables.expected_rows(path.stem, prof)
        if allowed is None:
            continue
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
        ours = set(df.loc[df["source"].str.startswith("ours"), "row"])
        checked += 1
        if ours - allowed:
            wrong.append(f"figures/{name}/tables/{path.name}: rows {sorted(ours - allowed)}, profile trains "
                         f"{sorted(allowed)}")
    assert checked >= 20 and not wrong, wrong


def test_every_committed_table_file_is_one_its_profile_writes():
    """No orphans: a table a profile no longer builds (or an old format of one) is removed, not left to look
    current. The OTJR writer's own file names (Table 10's halves, the paper-flags summary) come from it."""
    from ot_robust.reports import otjr

    orphans = []
    for name, prof in _profiles_with_committed_tables():
        names = set(prof.tables) | otjr.output_names(list(prof.tables))
        orphans += [f"figures/{name}/tables/{f.name}" for f in sorted((FIGURES / name / "tables").iterdir())
                    if f.stem not in names or f.suffix not in (".md", ".csv", ".tex")]
    assert not orphans, orphans


def test_every_committed_table_with_committed_runs_matches_their_settings():
    """Issue 32: the table-settings check over every table of the profiles whose runs are committed (the study):
    each attack column holds the attack its name says, each sweep column a run trained with its setting."""
    from ot_robust.reports.table_settings import table_setting_mismatches

    checked, bad = 0, []
    for name in ("study-fashion", "study-mnist"):
        prof, runs = load_profile(name), FIGURES.parent / "results" / name
        evals = tables.read_evals(runs)
        for t in prof.tables:
            bad += table_setting_mismatches(t, evals, prof, runs)
            checked += 1
    assert checked >= 15 and not bad, bad


def test_the_table_settings_check_catches_a_mislabelled_column(tmp_path):
    """PGD-40 printed under PGD100 (the quick label-smoothing table once did) and a run trained with label
    smoothing 0.3 under ls0.5 are refused, naming the experiment and what it holds."""
    from ot_robust.reports.table_settings import attack_mismatches, sweep_mismatch, table_setting_mismatches

    assert attack_mismatches({"attacks": {"pgd20": "pgd-linf eps=0.1 steps=20", "fgsm": "fgsm eps=0.1"},
                              "strong_attacks": {"pgd100": "pgd-linf eps=0.1 steps=100"}}) == []
    bad = attack_mismatches({"strong_attacks": {"pgd100": "pgd-linf eps=0.1 steps=40 step=0.01"},
                             "audit_attacks": {"cw500": "pgd-linf eps=0.1 steps=500"}})
    assert len(bad) == 2 and "'pgd100' holds 'pgd-linf eps=0.1 steps=40" in bad[0] and "cw500" in bad[1]
    assert sweep_mismatch("ls0.5", {"method_params": {"label_smoothing": 0.5}}) is None
    assert "label_smoothing=0.3" in sweep_mismatch("ls0.5", {"method_params": {"label_smoothing": 0.3}})
    assert "batch_size=128" in sweep_mismatch("bs60", {"batch_size": 128})
    prof = load_profile("study-fashion")
    evals = {"pgd_at": {"accuracy": {"pgd100": 50.0}, "strong_attacks": {"pgd100": "pgd-linf eps=0.1 steps=40"}}}
    with pytest.raises(ValueError, match=r"fs_table1 would mislabel its columns: fs_table1: pgd_at: column 'pgd100'"):
        tables.build_table("fs_table1", evals, prof)
    run = tmp_path / "train" / "feature_scattering"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"config": {"method_params": {"label_smoothing": 0.3}}}))
    out = table_setting_mismatches("fs_rebuttal_label_smoothing", {"feature_scattering": {}}, prof, tmp_path)
    assert out == ["fs_rebuttal_label_smoothing: feature_scattering: column 'ls0.5' holds a run trained with "
                   "label_smoothing=0.3"]


def test_the_committed_table_check_catches_a_mislabelled_row():
    prof = load_profile("quick")
    allowed = tables.expected_rows("fs_table3a", prof)
    assert "FeaScatter" in allowed and "Supervised" not in allowed  # quick trains no supervised-perturbation FS
    assert tables.expected_rows("got_table1", prof) is None  # rows from the method, not from the profile's tables
    assert set(tables.expected_rows("fs_blackbox", prof)) == set(
        row for m in prof.methods.values() if "fs_blackbox" in m.tables for row in m.transfer_from)
