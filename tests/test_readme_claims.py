"""Issue 14: no README sentence about the study can contradict its verdict table: the README's claims block is the
committed figures/study/claims.md (notebook 50_claims), and that table is what ot_robust.reports.claims computes from
the committed results (results/study-*/eval/*)."""
import importlib.util
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def _sync():
    spec = importlib.util.spec_from_file_location("sync", ROOT / "scripts" / "sync_readme_claims.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_readme_claims_block_equals_the_committed_verdict_table():  # less its not-run rows, named below it
    s = _sync()
    text = (ROOT / "README.md").read_text()
    inner = text[text.index(s.BEGIN) + len(s.BEGIN):text.index(s.END)].strip()
    assert inner == s.block()


def test_readme_block_keeps_the_rows_with_a_result_and_names_the_others():
    s = _sync()
    table = pd.read_csv(ROOT / "figures" / "study" / "claims.csv")
    block = s.block()
    rows = [line for line in block.splitlines() if line.startswith("| ") and not line.startswith("| paper")]
    assert len(rows) == int((table["verdict"] != s.NOT_RUN).sum())
    assert all(s._cells(r)[-1] != s.NOT_RUN for r in rows)
    header = next(s._cells(line) for line in block.splitlines() if line.startswith("| paper"))
    assert not set(s.DROPPED) & set(header) and {"claim", "ours (95% CI)", "n", "epochs", "verdict"} <= set(header)
    assert all(len(s._cells(r)) == len(header) for r in rows)
    shown = [s._cells(r)[header.index("epochs")] for r in rows]  # the budget column as epochs, from the whole table
    assert shown == [s.epochs(b if isinstance(b, str) else "") for b in table["budget"][table["verdict"] != s.NOT_RUN]]
    assert all(e == "" or e.isdigit() or e.startswith("A ") for e in shown)
    waiting = table[table["verdict"] == s.NOT_RUN]
    if len(waiting):
        assert f"({len(waiting)} rows," in block
        cifar = waiting["claim"].str.endswith(s.CIFAR)
        assert all(f"{p}: {c}" in block for p, c in zip(waiting["paper"][~cifar], waiting["claim"][~cifar]))
        if cifar.any():
            assert f"the CIFAR-10 block's {int(cifar.sum())} rows" in block


def test_readme_epochs_name_both_sides_only_when_they_differ():
    s = _sync()
    assert s.epochs("A: 6 ep, adv 1x0.1@0.1; B: 6 ep, adv 5x0.025@0.1") == "6"
    assert s.epochs("A: 6 ep, adv 1x0.1@0.1; B: 4 ep, no adversary") == "A 6 / B 4"
    assert s.epochs("5 ep, adv 5x0.1@0.3") == "5" and s.epochs("") == ""
    from ot_robust.reports.claims import budget_text  # the format it reads is the one claims.md is written in

    assert s.epochs(budget_text({"epochs": 12, "method_params": {"eps": 0.1, "steps": 5, "step_size": 0.025}})) == "12"


def test_committed_verdict_table_matches_the_committed_results():
    from ot_robust.reports.claims import claims_table

    committed = pd.read_csv(ROOT / "figures" / "study" / "claims.csv")
    now = claims_table(ROOT / "results")
    assert list(committed["id"]) == list(now["id"])
    assert list(committed["verdict"]) == list(now["verdict"])
    assert (committed["n"].tolist(), committed["seeds"].tolist()) == (now["n"].tolist(), now["seeds"].tolist())


def test_main_figure_draws_every_run_claim_with_its_interval(tmp_path):
    import pandas as pd

    from ot_robust.reports.claims import plot_claims

    df = pd.DataFrame([
        dict(paper="FS", claim="a beats b", column="pgd20", paper_effect=10.0, ours=-5.0, ci_low=-7.0, ci_high=-3.0,
             seeds=1, verdict="contradicted"),
        dict(paper="GOT", claim="c beats d", column="pgd40", paper_effect=1.0, ours=float("nan"),
             ci_low=float("nan"), ci_high=float("nan"), seeds=0, verdict="not run yet")])
    fig, paths = plot_claims(df, tmp_path)
    ax = fig.axes[0]
    assert [p.name for p in paths] == ["claims.png", "claims.pdf"] and all(p.stat().st_size > 0 for p in paths)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["FS: a beats b (pgd20, 1 seed)"]  # the run claim only
    assert "1 of 2 run" in ax.get_title()
    assert list(ax.lines[0].get_xdata()) == [-5.0]  # our point (its interval: the error bar)


def test_the_main_figure_gives_the_plateau_drops_their_own_panel_and_scale(tmp_path):
    import pandas as pd

    from ot_robust.reports.claims import plot_claims

    row = dict(paper="GOT", ci_low=0.0, ci_high=2.0, seeds=1, verdict="reproduced")
    df = pd.DataFrame([{**row, "claim": "a beats b", "column": "pgd40", "paper_effect": 1.0, "ours": 1.0},
                       {**row, "claim": "a keeps its accuracy", "column": "sweep:paper:0.3-0.7",
                        "paper_effect": 8.0, "ours": 80.0, "ci_low": 78.0, "ci_high": 82.0}])
    fig, _ = plot_claims(df)
    top, bottom = fig.axes[:2]
    assert [t.get_text() for t in top.get_yticklabels()] == ["GOT: a beats b (pgd40, 1 seed)"]
    assert [t.get_text() for t in bottom.get_yticklabels()] == [
        "GOT: a keeps its accuracy (sweep:paper:0.3-0.7, 1 seed)"]
    assert top.get_xlim()[1] < 10 < 80 < bottom.get_xlim()[1]  # each panel on its own scale
