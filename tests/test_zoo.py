"""The model zoo (ot_robust.zoo): every committed model is listed by a stable name, loads as the model its
evaluation measured, stale evaluations never show numbers, and the leaderboard's files and CLI."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from ot_robust import zoo
from ot_robust.core.stats import wilson_interval
from ot_robust.core.utils import REPO_ROOT

SMALL = "fashion-mnist/pgd_at"  # small_cnn, 250 kB


@pytest.fixture(scope="module")
def models() -> pd.DataFrame:
    return zoo.list_models()


def _committed_runs() -> set[tuple[str, str]]:
    """(profile, experiment) of every run git tracks under results/ (the folders, when there is no git)."""
    out = subprocess.run(["git", "-C", str(REPO_ROOT), "ls-files", "results/*/train/*/config.json",
                          "results/*/train/*/model.pt"], capture_output=True, text=True)
    paths = out.stdout.split() if out.returncode == 0 else [
        str(p.relative_to(REPO_ROOT)) for p in REPO_ROOT.glob("results/*/train/*/config.json")]
    return {(Path(p).parts[1], Path(p).parts[3]) for p in paths}


def test_every_committed_model_is_listed(models):
    runs = _committed_runs()
    assert len(runs) >= 50
    assert set(zip(models["profile"], models["experiment"])) >= runs
    assert models["name"].is_unique and list(models.columns) == zoo.COLUMNS
    assert set(models["name"]) == set(zoo.model_names())
    row = models.set_index("name").loc[SMALL]
    assert (row["dataset"], row["method"], row["seed"], row["architecture"], row["profile"]) == (
        "fashion-mnist", "PGD-AT", 0, "small_cnn", "study-fashion")  # the figures' names, not FS's "Madry"
    assert not set(models["method"]) & {"Madry", "Proposed"} and "FS" in set(models["method"])
    assert models.set_index("name").loc["mnist/got_pgd_lm_s2", "seed"] == 2


def test_numbers_come_from_a_current_evaluation_only(models):
    """An ``ok`` row carries its eval.json's numbers; any other status (stale, not evaluated) carries none."""
    from ot_robust.evaluation.results import has_eval, read_eval
    from ot_robust.profiles import load_profile
    from ot_robust.reports.claims import stale_reason

    num = [f"{m}{s}" for m in ("clean", "pgd20", "autoattack") for s in ("", "_lo", "_hi", "_n")]
    profiles = {}
    for _, r in models.iterrows():
        prof = profiles.setdefault(r["profile"], load_profile(r["profile"]))
        stale = stale_reason(zoo.RESULTS_DIR, prof, r["experiment"])
        evaluated = has_eval(zoo.RESULTS_DIR / r["profile"] / "eval" / r["experiment"])
        assert (r["status"] == zoo.STATUS_OK) == (evaluated and stale is None), r["name"]
        assert evaluated or r["status"] == "not evaluated" or r["status"].startswith(zoo.IN_TRAINING), r["name"]
        if r["status"] != zoo.STATUS_OK:
            assert r[num].isna().all() and r["sanity"] == "", r["name"]
            continue
        ev = read_eval(zoo.RESULTS_DIR / r["profile"] / "eval" / r["experiment"])
        assert r["clean"] == ev["accuracy"]["clean"] and r["clean_n"] == ev["n"]["clean"]
        assert r["pgd20"] == ev["accuracy"]["pgd20"] and r["pgd20_lo"] <= r["pgd20"] <= r["pgd20_hi"]
        assert r["autoattack"] == ev.get("autoattack") or (pd.isna(r["autoattack"]) and ev.get("autoattack") is None)
        assert r["weights"], r["name"]


def _copy_run(tmp_path: Path, exp: str = "pgd_at", profile: str = "study-fashion") -> Path:
    src, dst = zoo.RESULTS_DIR / profile, tmp_path / "results" / profile
    for kind, files in (("train", ("config.json", "model.pt", "model.pt.sha256", ".done.json")),
                        ("eval", ("eval.json", ".done.json"))):
        (dst / kind / exp).mkdir(parents=True)
        for f in files:
            shutil.copy(src / kind / exp / f, dst / kind / exp / f)
    return tmp_path / "results"


def test_a_stale_or_missing_evaluation_shows_no_numbers(tmp_path):
    results = _copy_run(tmp_path)
    row = zoo.list_models(results).iloc[0]
    assert (row["name"], row["status"], row["clean"]) == (SMALL, "ok", 77.42)
    done = results / "study-fashion" / "train" / "pgd_at" / ".done.json"
    rec = json.loads(done.read_text())
    done.write_text(json.dumps({**rec, "finished": "2099-01-01T00:00:00+0000"}))  # retrained after its evaluation
    row = zoo.list_models(results).iloc[0]
    assert row["status"].startswith("stale: evaluated before its last training")
    assert pd.isna(row["clean"]) and pd.isna(row["autoattack"]) and pd.isna(row["clean_n"])
    done.write_text(json.dumps(rec))
    (results / "study-fashion" / "eval" / "pgd_at" / "eval.json").unlink()
    row = zoo.list_models(results).iloc[0]
    assert row["status"] == "not evaluated" and pd.isna(row["clean"])
    assert "not evaluated" in zoo.write_leaderboard(tmp_path / "out", zoo.leaderboard(results), "cmd")[0].read_text()
    # stopped between epochs: a checkpoint and two epochs of metrics, no final model.pt yet
    run = results / "study-fashion" / "train" / "pgd_at"
    (run / "model.pt").unlink()
    shutil.copy(zoo.RESULTS_DIR / "study-fashion" / "train" / "pgd_at" / "checkpoint.pt", run / "checkpoint.pt")
    (run / "metrics.jsonl").write_text("".join(json.dumps({"epoch": e, "train_loss": 1.0}) + "\n" for e in (1, 2)))
    row = zoo.list_models(results).iloc[0]
    assert row["status"] == "in training (epoch 2 of 6)" and not row["weights"] and pd.isna(row["clean"])
    md = zoo.write_leaderboard(tmp_path / "out", zoo.leaderboard(results), "cmd")[0].read_text()
    assert "| in training (epoch 2 of 6) |" in md and "weights not in this checkout" not in md


def test_load_agrees_with_the_evaluation(data_root):
    """Clean accuracy of the loaded model on the first 200 test images: inside binomial noise of eval.json's
    10,000-image accuracy, and the same per-image outcome as the evaluation's masks."""
    from ot_robust.core.data import as_tensors, get_dataset
    from ot_robust.evaluation.results import read_eval, read_masks

    model = zoo.load(SMALL, device="cpu")
    assert isinstance(model, torch.nn.Module) and not model.training
    x, y = as_tensors(get_dataset("fashion-mnist", "test", root=data_root), indices=range(200))
    with torch.no_grad():
        correct = (model(x).argmax(1) == y).numpy()
    eval_dir = zoo.RESULTS_DIR / "study-fashion" / "eval" / "pgd_at"
    lo, hi = wilson_interval(int(correct.sum()), 200, confidence=0.999)
    assert lo <= read_eval(eval_dir)["accuracy"]["clean"] <= hi
    masks, indices = read_masks(eval_dir)
    pos = {int(i): k for k, i in enumerate(indices)}
    recorded = np.array([masks["clean"][pos[i]] for i in range(200)])
    assert (recorded == correct).sum() >= 199


def test_unknown_names_and_missing_weights(tmp_path):
    for bad, close in (("fashion/pgd_at", "fashion-mnist/pgd_at"), ("mnist/got_pgd_ls_s2", "mnist/got_pgd_lm_s2"),
                       ("pgd_at_s7", "fashion-mnist/pgd_at_s1")):
        with pytest.raises(ValueError) as e:
            zoo.load(bad)
        msg = str(e.value)
        assert "\n" not in msg and msg.startswith(f"unknown zoo model {bad!r}") and close in msg, msg
    with pytest.raises(ValueError, match=r"^unknown zoo model 'xyz'; no close match"):
        zoo.load("xyz")
    results = _copy_run(tmp_path)
    (results / "study-fashion" / "train" / "pgd_at" / "model.pt").unlink()
    with pytest.raises(FileNotFoundError, match="has no weights here: .*model.pt is not in this checkout"):
        zoo.load(SMALL, results_dir=results)
    assert not zoo.list_models(results).iloc[0]["weights"]


def test_an_installed_package_finds_the_clones_results(tmp_path, monkeypatch):
    """Issue 36: after a plain (non-editable) ``pip install .`` the package has no results/ beside it; the zoo then
    reads $OT_ROBUST_RESULTS, else ./results of the clone it is used from, and says where it looked when empty."""
    from ot_robust.zoo import catalog

    monkeypatch.setattr(catalog, "RESULTS_DIR", tmp_path / "site-packages" / "results")  # as installed: absent
    monkeypatch.delenv(catalog.RESULTS_ENV, raising=False)
    monkeypatch.chdir(REPO_ROOT)
    assert catalog.results_root() == REPO_ROOT / "results"
    assert SMALL in zoo.model_names()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=rf"no trained run under {re.escape(str(tmp_path / 'results'))} .*"
                                         "OT_ROBUST_RESULTS"):
        zoo.load(SMALL)
    monkeypatch.setenv(catalog.RESULTS_ENV, str(_copy_run(tmp_path)))
    assert zoo.model_names() == [SMALL]


def test_the_html_page_sorts_and_holds_every_row(tmp_path, models):
    board = zoo.leaderboard()
    paths = zoo.write_leaderboard(tmp_path, board, "python -m ot_robust zoo --write X")
    assert [p.name for p in paths] == ["leaderboard.md", "leaderboard.csv", "leaderboard.html"]
    page = (tmp_path / "leaderboard.html").read_text()
    assert "<script>" in page and 'addEventListener("click"' in page and "rows.sort(" in page
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", page) and "http" not in page  # nothing fetched
    body = page.split("<tbody>")[1].split("</tbody>")[0]
    assert body.count("<tr>") == len(models)
    assert all(f"<td>{n}</td>" in body for n in models["name"])
    assert page.count('data-type="number"') >= 8 and 'data-sort="77.42"' in page
    csv = pd.read_csv(tmp_path / "leaderboard.csv")
    assert len(csv) == len(models) and list(csv.columns) == ["rank"] + zoo.COLUMNS
    md = (tmp_path / "leaderboard.md").read_text()
    assert "Produced by `python -m ot_robust zoo --write X` at git commit" in md
    assert sum(line.startswith("| ") for line in md.splitlines()) == len(models) + 1


def test_the_committed_leaderboard_lists_every_model(models):
    page = (REPO_ROOT / "figures" / "zoo" / "leaderboard.html").read_text()
    assert "Produced by <code>python -m ot_robust zoo --write figures/zoo</code> at git commit" in page
    assert all(f"<td>{n}</td>" in page
               for n in models["name"]), "regenerate: python -m ot_robust zoo --write figures/zoo"


def test_leaderboard_order_and_sort():
    board = zoo.leaderboard(dataset="mnist")
    assert set(board["dataset"]) == {"mnist"}
    ranked = board[board["rank"].notna()]
    assert list(ranked["rank"]) == list(range(1, len(ranked) + 1))
    assert ranked["autoattack"].is_monotonic_decreasing
    assert board["status"].iloc[-1] != zoo.STATUS_OK or board["status"].eq(zoo.STATUS_OK).all()
    by_clean = zoo.leaderboard(dataset="mnist", sort="Clean")["clean"].dropna()
    assert by_clean.is_monotonic_decreasing
    assert zoo.leaderboard(dataset="mnist", sort="name")["name"].is_monotonic_increasing


def test_cli_exit_codes(tmp_path, capsys):
    from ot_robust.__main__ import main

    assert main(["zoo", "--dataset", "mnist", "--sort", "aa"]) == 0
    out = capsys.readouterr().out
    assert "| 1 | mnist/" in out and "fashion-mnist/" not in out
    board = zoo.leaderboard(dataset="mnist")  # every model's line says why it has no numbers when it has none
    assert all(f"| {n} |" in out for n in board["name"])
    assert all(re.search(rf"\| {re.escape(n)} \|.*\| {re.escape(s)} \|$", out, re.M)
               for n, s in zip(board["name"], board["status"]))
    for argv, msg in ((["zoo", "--sort", "nope"], "unknown sort column 'nope'; allowed: rank, name"),
                      (["zoo", "--dataset", "cifar10"], "no zoo model for dataset 'cifar10'; allowed: fashion-mnist")):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and msg in err[0], err
    with pytest.raises(SystemExit) as e:
        main(["zoo", "--bogus"])
    assert e.value.code == 2
    assert main(["zoo", "--write", str(tmp_path / "z")]) == 0
    assert sorted(p.name for p in (tmp_path / "z").iterdir()) == ["leaderboard.csv", "leaderboard.html",
                                                                   "leaderboard.md"]


@pytest.mark.slow
def test_the_readme_quickstart_runs_verbatim(data_root, capsys):
    """The README's first example (after ``<!-- quickstart -->``) runs as written from the checkout: a zoo model,
    PGD-20 and CW-20 on 200 images, accuracies with intervals, no masking flag."""
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = text.split("<!-- quickstart -->", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(compile(block, "README quickstart", "exec"), namespace)
    report = namespace["report"]
    acc = dict(zip(report.table["attack"], report.table["accuracy"]))
    assert set(report.table["n"]) == {200} and 60 < acc["clean"] <= 100 and acc["pgd-linf"] < acc["clean"]
    assert report.flags == []
    assert "ci_low" in capsys.readouterr().out
