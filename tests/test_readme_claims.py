"""Issue 14: no README sentence about the study can contradict its verdict table: the README's claims block is the
committed figures/study/claims.md (notebook 50_claims), and that table is what ot_robust.claims computes from the
committed results (results/study-*/eval/*)."""
import importlib.util
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def _sync():
    spec = importlib.util.spec_from_file_location("sync", ROOT / "scripts" / "sync_readme_claims.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_readme_claims_block_equals_the_committed_verdict_table():
    s = _sync()
    text = (ROOT / "README.md").read_text()
    inner = text[text.index(s.BEGIN) + len(s.BEGIN):text.index(s.END)].strip()
    assert inner == s.block()


def test_committed_verdict_table_matches_the_committed_results():
    from ot_robust.claims import claims_table

    committed = pd.read_csv(ROOT / "figures" / "study" / "claims.csv")
    now = claims_table(ROOT / "results")
    assert list(committed["id"]) == list(now["id"])
    assert list(committed["verdict"]) == list(now["verdict"])
    assert (committed["n"].tolist(), committed["seeds"].tolist()) == (now["n"].tolist(), now["seeds"].tolist())
