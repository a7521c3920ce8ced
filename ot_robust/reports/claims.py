"""The claims-verdict table: one row per headline claim of each paper, the paper's effect, ours with its
95% interval, and a verdict by the rule of :func:`ot_robust.core.stats.verdict` (README, "Claims and verdicts").

A claim compares model A with model B on one column (``pgd20``, ``autoattack``, ...) of the study's evaluations:

* with >= 2 seeds of both (experiments of the profile with the same label), ours = mean +- Student-t interval of
  the per-seed differences (seeds paired by seed number);
* with one seed, ours = the paired difference on the same images with its Wald interval, and the exact McNemar
  p-value (:func:`ot_robust.core.stats.mcnemar`, from the per-example masks in ``masks.npz``);
* a bounded claim (GOT's eps plateau) compares the accuracy drop from eps 0.3 to 0.7 with the paper's drop (Newcombe
  interval of a difference of two proportions on the same images: conservative for paired data).

A claim whose models are not evaluated yet reads "not run yet". Paper inconsistencies that a claim touches
(``paper_tables.yaml`` ``issues``) are quoted in its ``note``.

Like with like (:func:`comparability`): before any number, each seed pair's training ``config.json`` and evaluation
``eval.json`` are compared. Everything but the claim's factor must agree: data, model, epochs, batch size, optimiser
and schedule, every training parameter the two methods share (the adversary's eps, steps and step size included)
unless the claim names it in ``differs`` (with its reason in the note), and the evaluation's images and attack spec.
A pair that differs elsewhere makes the row "not comparable", with the differing keys in its note.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any


from ..core.stats import mcnemar, t_interval, verdict, wilson_interval
from ..evaluation.results import CURVES_FILE, has_eval
from ..profiles.paths import DONE_FILE, RunLayout
from .runs import SAME_TRAINING, config_differences, load_run, paired_robust, train_config


@dataclass(frozen=True)
class Claim:
    """``A`` beats ``B`` on ``column`` (experiments of ``profile``); the paper's effect comes from
    ``paper_tables.yaml`` ``paper.table`` rows ``rows[0] - rows[1]`` at ``paper_column``. ``margin`` set: a
    bounded claim (see :func:`ot_robust.core.stats.verdict`)."""

    id: str
    paper: str
    text: str
    profile: str
    a: str
    b: str
    column: str
    table: str
    rows: tuple[str, str]
    paper_column: str
    note: str = ""
    margin: float | None = None
    equal: bool = False  # a claim of no difference ("perform alike"): judged against an effect of 0
    differs: tuple[str, ...] = ()  # shared training parameters allowed to differ besides the method (the factor)


def _c(id, paper, text, profile, a, b, column, table, rows, paper_column, note="", margin=None, equal=False,
       differs=()):
    return Claim(id, paper, text, profile, a, b, column, table, tuple(rows), paper_column, note, margin, equal,
                 tuple(differs))


F, M = "study-fashion", "study-mnist"
#: the verdict of a claim whose models are not evaluated yet
NOT_RUN = "not run yet"
#: the end of a CIFAR-10 row's claim text (the study-cifar10 block)
CIFAR10_SUFFIX = " (CIFAR-10)"

_FS_ADV = "The training adversaries differ by design: FS one feature-scattering step of eps, Madry PGD (FS Sec. 4)."
_PLATEAU_BOUND = "Bounded claim: our drop is at most the paper's drop + 10 points."
#: GOT Table 6's plateau, per protocol: (id suffix, text after "from eps 0.3 to 0.7", column, note or per-model notes)
_PLATEAU_PROTOCOLS = (
    ("", "(Table 6 plateau)", "curve:0.3-0.7", {
        "got_pgd_s": "Paper: every GOT row is exactly constant from eps 0.4 to 0.7 while PGD-AT collapses: a "
                     "gradient-masking red flag. " + _PLATEAU_BOUND,
        "got_trades_s": "Paper prose: 'approximately 92.5%' plateau; the table plateaus at 84.61. " + _PLATEAU_BOUND}),
    ("-paper-protocol", "under the paper's protocol with a random start", "sweep:paper:0.3-0.7",
     "The paper's protocol (App. A.3: 40 steps of 0.01 on predicted labels; masking audit) from PGD's uniform random "
     "start in the eps ball. " + _PLATEAU_BOUND),
    ("-no-start", "under the paper's protocol without a random start", "sweep:paper_no_start:0.3-0.7",
     "Without a random start, 40 steps of 0.01 move a pixel by at most 0.4, so every eps >= 0.4 runs the same attack "
     "and the accuracy cannot change above it: a plateau here is the protocol's, not the model's (the paper's GOT rows "
     "are identical from eps 0.4 to 0.7). " + _PLATEAU_BOUND),
)


def _plateau_claims() -> list[Claim]:
    """GOT Table 6's plateau (the accuracy kept from eps 0.3 to 0.7) for GOT-PGD-S and GOT-TRADES-S, once per
    protocol of :data:`_PLATEAU_PROTOCOLS`: bounded claims (margin 10 points) on study-mnist."""
    out = []
    for suffix, how, column, note in _PLATEAU_PROTOCOLS:
        for exp, label in (("got_pgd_s", "GOT-PGD-S"), ("got_trades_s", "GOT-TRADES-S")):
            out.append(_c(f"got-plateau-{exp[4:].replace('_', '-')}{suffix}", "got",
                          f"{label} keeps its accuracy from eps 0.3 to 0.7 {how}", M, exp, exp, column,
                          "table6_mnist_eps_sweep", (label, label), "eps0.3-eps0.7",
                          note[exp] if isinstance(note, dict) else note, 10.0))
    return out


_LM_EXACT = ("GOT-PGD-LM: its three seeds retrained with the exact potential, as the S seeds were (issue 38: seed 0 so "
             "retrained lay above the Adam seeds' spread); the Adam runs stay in GOT Table 1 as their own rows.")
_LM_EXACT_TRADES = ("LM is seed 0 retrained with the exact potential, as the S seeds were (GOT-TRADES-LM's other rows "
                    "keep the earlier Adam update: its exact run lies inside their spread): one seed, paired with S "
                    "seed 0 on the same images.")
_GOT_BETA = "beta is W's weight in GOT (10) and the KL weight in TRADES (6; GOT's alpha): the same loss weights."
CLAIMS: list[Claim] = [
    _c("fs-madry-pgd20", "fs", "FS beats Madry under PGD-20", F, "feature_scattering", "pgd_at", "pgd20",
       "table1_cifar10_whitebox", ("Proposed", "Madry"), "pgd20", _FS_ADV, differs=("steps",)),
    _c("fs-madry-cw20", "fs", "FS beats Madry under CW-20", F, "feature_scattering", "pgd_at", "cw20",
       "table1_cifar10_whitebox", ("Proposed", "Madry"), "cw20", _FS_ADV, differs=("steps",)),
    _c("fs-madry-aa", "fs", "FS's ranking above Madry holds under AutoAttack", F, "feature_scattering", "pgd_at",
       "autoattack", "table1_cifar10_whitebox", ("Proposed", "Madry"), "pgd20",
       "The paper reports no AutoAttack; its PGD-20 effect stands for the claim. Independent evaluations of the "
       "public FS model report AutoAttack far below its PGD-20 (paper_tables.yaml, independent_evaluations). "
       + _FS_ADV, differs=("steps",)),
    _c("fs-madry-rays", "fs", "FS's ranking above Madry holds under the hard-label RayS", F, "feature_scattering",
       "pgd_at", "rays", "table1_cifar10_whitebox", ("Proposed", "Madry"), "pgd20",
       "The paper reports no RayS; its PGD-20 effect stands for the claim. RayS (masking audit, top-1 decisions only) "
       "brought the public FS CIFAR-10 model to 44.5 (uclaml/RayS; paper_tables.yaml, independent_evaluations). "
       + _FS_ADV, differs=("steps",)),
    _c("fs-madry-featureattack", "fs", "FS's ranking above Madry holds under FeatureAttack", F, "feature_scattering",
       "pgd_at", "feature_attack", "table1_cifar10_whitebox", ("Proposed", "Madry"), "pgd20",
       "The paper reports no FeatureAttack; its PGD-20 effect stands for the claim. FeatureAttack-100 brought the "
       "public FS CIFAR-10 model from 71.1 (PGD-20) to 36.94 and left Madry's at 46.37 (Line290/FeatureAttack; "
       "paper_tables.yaml, independent_evaluations). " + _FS_ADV, differs=("steps",)),
    _c("fs-vs-random", "fs", "feature-scattering perturbation beats random perturbation (Table 3a)", F,
       "feature_scattering", "fs_random", "pgd20", "table3a_perturbation_scheme", ("FeaScatter", "Random"), "pgd20",
       "Paper: Random's FGSM 75.7 is far above its PGD-20 29.9 (possibly a typo).", differs=("perturbation",)),
    _c("fs-vs-supervised", "fs", "feature-scattering perturbation beats supervised perturbation (Table 3a)", F,
       "feature_scattering", "fs_supervised", "pgd20", "table3a_perturbation_scheme", ("FeaScatter", "Supervised"),
       "pgd20", differs=("perturbation",)),
    _c("fs-vs-uniform", "fs", "OT matching beats uniform matching (Table 3b)", F, "feature_scattering",
       "fs_uniform", "pgd20", "table3b_matching_scheme", ("OT", "Uniform"), "pgd20", differs=("matching",)),
    _c("fs-vs-identity", "fs", "OT matching beats identity matching (Table 3b)", F, "feature_scattering",
       "fs_identity", "pgd20", "table3b_matching_scheme", ("OT", "Identity"), "pgd20", differs=("matching",)),
    _c("fs-sinkhorn-ipot", "fs", "Sinkhorn and IPOT solvers perform alike (Table 4)", F, "feature_scattering",
       "fs_ipot", "pgd20", "table4_ot_solvers", ("Sinkhorn", "IPOT"), "cifar10_pgd20",
       "A claim of no difference: reproduced if our interval lies within +-1 point.", equal=True, differs=("solver",)),
    _c("fs-label-smoothing", "fs", "label smoothing 0.5 beats none (rebuttal)", F, "feature_scattering", "fs_no_ls",
       "pgd100", "rebuttal_label_smoothing_pgd100", ("Proposed", "Proposed"), "ls0.5-ls0.0",
       "Paper: the smoothing sweep's 0.5 row (68.4) differs from the main paper's Proposed row (68.6): a separate run.",
       differs=("label_smoothing",)),
    _c("got-pgd-s", "got", "GOT-PGD-S beats PGD-AT under PGD-40", M, "got_pgd_s", "pgd_at", "pgd40", "table1_mnist",
       ("GOT-PGD-S", "PGD-AT"), "pgd"),
    _c("got-pgd-lm", "got", "GOT-PGD-LM beats PGD-AT under PGD-40", M, "got_pgd_lm_exact", "pgd_at", "pgd40",
       "table1_mnist", ("GOT-PGD-LM", "PGD-AT"), "pgd", _LM_EXACT),
    _c("got-trades-s", "got", "GOT-TRADES-S beats TRADES under PGD-40", M, "got_trades_s", "trades", "pgd40",
       "table1_mnist", ("GOT-TRADES-S", "TRADES"), "pgd", _GOT_BETA, differs=("beta",)),
    _c("got-trades-lm", "got", "GOT-TRADES-LM beats TRADES under PGD-40", M, "got_trades_lm", "trades", "pgd40",
       "table1_mnist", ("GOT-TRADES-LM", "TRADES"), "pgd",
       "Paper prose: +2.4 (PGD) and +3.1 (AA) over PGD-AT; the table gives +2.16 and +3.08. " + _GOT_BETA,
       differs=("beta",)),
    _c("got-pgd-lm-aa", "got", "GOT-PGD-LM beats PGD-AT under AutoAttack", M, "got_pgd_lm_exact", "pgd_at",
       "autoattack", "table1_mnist", ("GOT-PGD-LM", "PGD-AT"), "aa", _LM_EXACT),
    _c("got-trades-lm-aa", "got", "GOT-TRADES-LM beats TRADES under AutoAttack", M, "got_trades_lm", "trades",
       "autoattack", "table1_mnist", ("GOT-TRADES-LM", "TRADES"), "aa", _GOT_BETA, differs=("beta",)),
    _c("got-lm-s-pgd", "got", "label matching (LM) beats S for GOT-PGD", M, "got_pgd_lm_exact", "got_pgd_s",
       "pgd40", "table1_mnist", ("GOT-PGD-LM", "GOT-PGD-S"), "pgd",
       "Paper prose: LM gives '1% higher robust accuracy' than S; its own table gives +0.26 for GOT-PGD. " + _LM_EXACT),
    _c("got-lm-s-trades", "got", "label matching (LM) beats S for GOT-TRADES", M, "got_trades_lm_exact",
       "got_trades_s", "pgd40", "table1_mnist", ("GOT-TRADES-LM", "GOT-TRADES-S"), "pgd", _LM_EXACT_TRADES),
    *_plateau_claims(),
    _c("otjr-sw", "otjr", "OTJR beats SW (the Jacobian term helps) under AutoAttack", F, "otjr", "sw", "autoattack",
       "table2_wrn34_cifar10", ("OTJR", "SW"), "autoattack"),
    _c("otjr-sat", "otjr", "OTJR beats SAT under AutoAttack", F, "otjr", "sat", "autoattack",
       "table2_wrn34_cifar10", ("OTJR", "SAT"), "autoattack"),
    _c("otjr-trades", "otjr", "OTJR beats TRADES under AutoAttack", F, "otjr", "trades", "autoattack",
       "table2_wrn34_cifar10", ("OTJR", "TRADES"), "autoattack"),
    _c("otjr-pgd-at", "otjr", "OTJR beats PGD-AT under PGD-20", F, "otjr", "pgd_at", "pgd20",
       "table2_wrn34_cifar10", ("OTJR", "PGD-AT"), "pgd20"),
    _c("otjr-alp", "otjr", "OTJR beats ALP under AutoAttack", F, "otjr", "alp", "autoattack",
       "table2_wrn34_cifar10", ("OTJR", "ALP"), "autoattack"),
    _c("otjr-sat-jr", "otjr", "OTJR beats SAT + random JR under AutoAttack (Table 6)", F, "otjr", "sat_jr",
       "autoattack", "table6_sat_jr_vs_otjr_cifar10", ("OTJR", "SAT+JR"), "autoattack",
       "Paper: SAT+JR's SimBA (91.94) is above its own clean accuracy (84.43), probably a typo."),
    _c("otjr-awp-trades", "otjr", "inside AWP, the OTJR loss beats the TRADES loss under AutoAttack (Table 3)", F,
       "awp_otjr", "awp_trades", "autoattack", "table3_awp_lbgat_cifar100", ("OTJR", "TRADES"), "awp_autoattack",
       "Paper: CIFAR-100, WRN-34; ours Fashion-MNIST. AWP's weight perturbation (gamma) and the inner adversary are "
       "the same for both; the inner loss is the factor."),
    _c("otjr-optimal-random-jr", "otjr", "optimal JR beats random JR under PGD-20 (Table 7)", F, "optimal_jr",
       "random_jr", "pgd20", "table7_random_vs_optimal_jr_cifar10", ("Optimal JR", "Random JR"), "pgd20"),
]


#: study-cifar10 (the papers' own dataset and eps, at CPU scale): the claims that the papers make on CIFAR-10, again
#: on that block; the paper's effect is the same table's CIFAR-10 column (GOT Table 2 for GOT's rows).
C10 = "study-cifar10"
_C10_SAME = ("fs-madry-pgd20", "fs-madry-cw20", "fs-madry-aa", "fs-madry-rays", "fs-madry-featureattack", "otjr-sw",
             "otjr-sat", "otjr-trades", "otjr-pgd-at")
_C10_GOT = (("got-pgd-lm", "got_pgd_lm", "pgd_at", "pgd20", "GOT-PGD-LM", "PGD-AT", "cifar10_pgd", ()),
            ("got-pgd-lm-aa", "got_pgd_lm", "pgd_at", "autoattack", "GOT-PGD-LM", "PGD-AT", "cifar10_aa", ()),
            ("got-trades-lm", "got_trades_lm", "trades", "pgd20", "GOT-TRADES-LM", "TRADES", "cifar10_pgd",
             ("beta",)),
            ("got-trades-lm-aa", "got_trades_lm", "trades", "autoattack", "GOT-TRADES-LM", "TRADES", "cifar10_aa",
             ("beta",)))


def _cifar10_claims() -> list[Claim]:
    """The CIFAR-10 rows: ``<id>-c10`` for each claim of :data:`_C10_SAME` (same models and columns) and GOT Table 2's
    LM-versus-baseline rows (PGD-20 and AutoAttack)."""
    by_id = {c.id: c for c in CLAIMS}
    out = [replace(by_id[i], id=f"{i}-c10", text=by_id[i].text + CIFAR10_SUFFIX, profile=C10) for i in _C10_SAME]
    for cid, a, b, col, ra, rb, pcol, differs in _C10_GOT:
        text = f"{ra} beats {rb} under {'AutoAttack' if col == 'autoattack' else 'PGD-20'}{CIFAR10_SUFFIX}"
        out.append(_c(f"{cid}-c10", "got", text, C10, a, b, col, "table2_resnet18", (ra, rb), pcol,
                      _GOT_BETA if differs else "", differs=differs))
    return out


CLAIMS += _cifar10_claims()


def paper_effect(claim: Claim, paper_tables: dict[str, Any]) -> float:
    """The paper's A - B (points) for ``claim``. ``paper_column`` "x-y" means column x minus column y of row A."""
    t = paper_tables[claim.paper][claim.table]
    cols = t["columns"]
    if "-" in claim.paper_column and claim.paper_column not in cols:
        c1, c2 = claim.paper_column.split("-", 1)
        row = t["rows"][claim.rows[0]]
        return float(row[cols.index(c1)]) - float(row[cols.index(c2)])
    j = cols.index(claim.paper_column)
    return float(t["rows"][claim.rows[0]][j]) - float(t["rows"][claim.rows[1]][j])


def comparability(claim: Claim, cfg_a: dict | None, cfg_b: dict | None, ev_a: dict, ev_b: dict) -> list[str]:
    """The differences that make a pair of runs (A, B of one seed) unfit for ``claim``: ``["epochs: 4 vs 6", ...]``
    (empty: like with like). Compared: the :data:`SAME_TRAINING` fields, every method parameter both runs have
    (a key missing from an older config.json takes the value runs had before it existed,
    :attr:`ot_robust.defenses.base.Defense.recorded`) except those the claim names in
    ``differs``, the evaluation's image count and order and the attack spec of the claim's column."""
    if cfg_a is None or cfg_b is None:
        return [f"training config.json missing for {claim.a if cfg_a is None else claim.b}"]
    out = config_differences(cfg_a, cfg_b, fields=SAME_TRAINING, params="shared", ignore=claim.differs)
    for key in ("n_examples", "order", "dataset"):
        if ev_a.get(key) != ev_b.get(key):
            out.append(f"evaluation {key}: {ev_a.get(key)!r} vs {ev_b.get(key)!r}")
    spec = lambda ev: {**ev.get("attacks", {}), **ev.get("strong_attacks", {}),  # noqa: E731
                       **ev.get("audit_attacks", {})}.get(claim.column)
    if spec(ev_a) != spec(ev_b):
        out.append(f"attack {claim.column}: {spec(ev_a)!r} vs {spec(ev_b)!r}")
    return out


def seed_mismatches(claim: Claim, configs: dict[int, tuple[dict | None, dict | None]]) -> list[str]:
    """Differences between the seeds of one side (``{seed: (cfg_a, cfg_b)}``): every seed of A (and of B) must be
    the same run but for its seed (e.g. not two seeds trained with one potential update and one with another)."""
    out = []
    for side, name in ((0, claim.a), (1, claim.b)):
        cfgs = {s: c[side] for s, c in configs.items() if c[side] is not None}
        if len(cfgs) < 2:
            continue
        first = min(cfgs)
        out += [f"{name} seed {first} vs seed {s}: {d}" for s in sorted(cfgs)
                for d in config_differences(cfgs[first], cfgs[s])]
    return out


def budget_text(cfg: dict | None) -> str:
    """``"6 ep, adv 5x0.025@0.1"``: a run's epochs and training adversary (steps x step size @ eps) for the table."""
    if cfg is None:
        return ""
    mp = cfg.get("method_params", {})
    mp = mp.get("inner_params", mp) if "eps" not in mp else mp  # a wrapper (AWP): its inner method's adversary
    if "eps" not in mp:
        return f"{cfg['epochs']} ep, no adversary"
    steps, step = mp.get("steps", 1), mp.get("step_size", mp.get("eps"))
    return f"{cfg['epochs']} ep, adv {steps}x{step:g}@{mp['eps']:g}"


def budget_epochs(budget: str) -> str:
    """A row's budget cell (:func:`budget_text` of one side, or ``"A: ...; B: ..."``) as its epochs: ``"6"`` when both
    sides trained as long, ``"A 6 / B 4"`` when not, ``""`` for a row without a budget."""
    found = re.findall(r"(\d+) ep\b", budget)
    if len(set(found)) <= 1:
        return found[0] if found else ""
    return " / ".join(f"{side} {n}" for side, n in zip("AB", found))


def stale_reason(runs_dir: Path, prof: Any, exp: str) -> str | None:
    """Why the committed run ``exp`` of ``prof`` does not stand for the profile's method as it is written now, or
    None: its ``config.json`` must record the profile's method parameters (missing recorded keys read as their older
    values, :func:`ot_robust.defenses.base.resolve_recorded`), and its evaluation must be newer than its training
    (``.done.json`` times: a model retrained after its evaluation has none yet). A run that is not current is left
    out of every row (e.g. seeds still to be retrained after a fix: their rows say so instead of mixing)."""
    from ..defenses.base import resolve_recorded
    from ..core.utils import parse_number

    cfg = train_config(runs_dir, prof.name, exp)
    if cfg is None:
        return "no training config.json"
    norm = lambda p: {k: parse_number(v) if isinstance(v, str) and "/" in v else v for k, v in p.items()}  # noqa: E731
    want = resolve_recorded(cfg["method"], norm(prof.methods[exp].params))   # a new run's values
    have = resolve_recorded(cfg["method"], norm(cfg.get("method_params", {})), cfg.get("method_params", {}))
    diff = sorted(k for k in set(want) | set(have) if want.get(k) != have.get(k))
    if diff:
        return "trained with other parameters than the profile states (" + ", ".join(
            f"{k}: {have.get(k)!r}, profile {want.get(k)!r}" for k in diff) + ")"
    times = []
    layout = RunLayout(str(runs_dir), prof.name)
    for folder in (layout.train(exp), layout.eval(exp)):
        try:
            times.append(json.loads((Path(folder) / DONE_FILE).read_text())["finished"])
        except (OSError, ValueError, KeyError):
            times.append(None)
    if times[0] and times[1] and times[1] < times[0]:
        return "evaluated before its last training (not yet re-evaluated)"
    return None


def _curve_drop(ev: dict, runs_dir: Path, profile: str, exp: str, lo: float, hi: float, protocol: str = ""):
    """The accuracy drop from eps ``lo`` to ``hi`` with its Newcombe interval and n: of the evaluation's curve
    (``curves.json``), or with ``protocol`` of the audit's eps sweep under that protocol (None if not run)."""
    if protocol:
        sweep = next((s for s in ev.get("eps_sweep", {}).values() if protocol in s["protocols"]), None)
        if sweep is None or lo not in sweep["epsilons"] or hi not in sweep["epsilons"]:
            return None
        x, acc, n = sweep["epsilons"], sweep["protocols"][protocol]["accuracy"], int(sweep["n_examples"])
    else:
        c = json.loads((Path(RunLayout(str(runs_dir), profile).eval(exp)) / CURVES_FILE).read_text())
        x, acc, n = c["vs_epsilon"]["x"], c["vs_epsilon"]["accuracy"], int(c["n_examples"])
    p1, p2 = acc[x.index(lo)], acc[x.index(hi)]
    l1, u1 = wilson_interval(round(p1 * n / 100), n)
    l2, u2 = wilson_interval(round(p2 * n / 100), n)
    d = p1 - p2
    return d, d - math.hypot(p1 - l1, u2 - p2), d + math.hypot(u1 - p1, p2 - l2), n


def evaluate_claim(claim: Claim, runs_dir: str | Path, paper_tables: dict[str, Any]) -> dict[str, Any]:
    """One row of the verdict table for ``claim`` from the evaluations under ``runs_dir/<profile>/eval/``."""
    from ..profiles import load_profile

    runs_dir = Path(runs_dir)
    prof = load_profile(claim.profile, check_registries=False)
    row = {"paper": claim.paper.upper(), "claim": claim.text, "id": claim.id, "column": claim.column,
           "paper_effect": paper_effect(claim, paper_tables), "ours": math.nan, "ci_low": math.nan,
           "ci_high": math.nan, "n": 0, "seeds": 0, "test": "", "p_value": math.nan, "verdict": NOT_RUN,
           "budget": "", "note": claim.note}
    stale = {e: r for e in {e for x in (claim.a, claim.b) for _, e in prof.seeds_of(x)}
             if has_eval(RunLayout(str(runs_dir), claim.profile).eval(e))
             and (r := stale_reason(runs_dir, prof, e)) is not None}
    if stale:
        row["note"] = ("Left out until rerun: " + "; ".join(f"{e}: {r}" for e, r in sorted(stale.items())) + ". "
                       + claim.note).strip()
    if claim.column.startswith(("curve:", "sweep:")):  # curve:LO-HI (ours), sweep:PROTOCOL:LO-HI (the audit's)
        parts = claim.column.split(":")
        protocol = parts[1] if parts[0] == "sweep" else ""
        lo, hi = (float(v) for v in parts[-1].split("-"))
        loaded = None if claim.a in stale else load_run(runs_dir, claim.profile, claim.a)
        drop = None if loaded is None else _curve_drop(loaded[0], runs_dir, claim.profile, claim.a, lo, hi, protocol)
        if drop is None:
            return row
        d, cl, ch, n = drop
        row.update(ours=d, ci_low=cl, ci_high=ch, n=n, seeds=1, test="Newcombe (drop)",
                   verdict=verdict(row["paper_effect"], cl, ch, claim.margin))
        return row
    ga = [(s, e) for s, e in prof.seeds_of(claim.a) if e not in stale]
    gb = [(s, e) for s, e in prof.seeds_of(claim.b) if e not in stale]
    loaded_a = {s: load_run(runs_dir, claim.profile, e) for s, e in ga}
    loaded_b = {s: load_run(runs_dir, claim.profile, e) for s, e in gb}
    seeds = [s for s in loaded_a if loaded_a[s] and s in loaded_b and loaded_b[s]
             and claim.column in loaded_a[s][1]["masks"] and claim.column in loaded_b[s][1]["masks"]]
    if not seeds:
        return row
    configs = {s: (train_config(runs_dir, claim.profile, dict(ga)[s]), train_config(runs_dir, claim.profile,
                                                                                      dict(gb)[s])) for s in seeds}
    a_text, b_text = budget_text(configs[seeds[0]][0]), budget_text(configs[seeds[0]][1])
    row["budget"] = a_text if a_text == b_text else f"A: {a_text}; B: {b_text}"
    problems = {s: comparability(claim, *configs[s], loaded_a[s][0], loaded_b[s][0]) for s in seeds}
    bad = sorted({p for ps in problems.values() for p in ps} | set(seed_mismatches(claim, configs)))
    if bad:
        row.update(verdict="not comparable", seeds=len(seeds),
                   note=(f"Not like with like: {'; '.join(bad)}. " + claim.note).strip())
        return row
    pairs = [(s, *paired_robust(loaded_a[s], loaded_b[s], claim.column,
                                f"claim {claim.id}: {claim.a} and {claim.b} (seed {s})")) for s in seeds]
    if len(pairs) >= 2:
        diffs = [100.0 * (a.mean() - b.mean()) for _, a, b in pairs]
        t = t_interval(diffs)
        row.update(ours=t["mean"], ci_low=t["ci_low"], ci_high=t["ci_high"], n=len(pairs[0][1]), seeds=len(pairs),
                   test=f"t over {len(pairs)} seeds")
    else:
        _, a, b = pairs[0]
        mc = mcnemar(a, b)
        row.update(ours=mc["diff"], ci_low=mc["ci_low"], ci_high=mc["ci_high"], n=mc["n"], seeds=1,
                   test="McNemar (paired, 1 seed)", p_value=mc["p_value"])
    row["verdict"] = verdict(0.0 if claim.equal else row["paper_effect"], row["ci_low"], row["ci_high"], claim.margin)
    return row


def claims_table(runs_dir: str | Path = "results", claims: list[Claim] | None = None,
                 profiles: list[str] | None = None):
    """The verdict table (a DataFrame, one row per claim) from the evaluations under ``runs_dir``."""
    import pandas as pd

    from .tables import load_paper_tables

    pt = load_paper_tables()
    rows = [evaluate_claim(c, runs_dir, pt) for c in (claims or CLAIMS) if profiles is None or c.profile in profiles]
    return pd.DataFrame(rows)


CAPTION = ("One row per headline claim. Paper effect = A - B in points from the paper's own table; ours = the same "
           "difference at CPU scale (study profiles: Fashion-MNIST eps 0.1 / MNIST eps 0.3; the rows marked "
           "CIFAR-10: the lossy JPEG copy, eps 8/255, small_cnn; never the papers' CIFAR models) with its 95% interval "
           "over seeds (t) or on the same images (McNemar, one seed). Verdict rule: "
           "docs/study.md, 'Claims and verdicts'.")


def render_claims(df, out_dir: str | Path) -> list[Path]:
    """Write ``claims.md``, ``claims.csv`` and ``claims.tex`` to ``out_dir`` (the project's one table renderer,
    :func:`ot_robust.reports.tables.render_frame`); returns the paths."""
    from .tables import render_frame
    from ..core.utils import atomic_write_bytes

    out = Path(out_dir)

    def f(v, nd=1):
        return "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:+.{nd}f}"

    show = df.assign(paper_effect=df.paper_effect.map(f), ours=[
        "" if math.isnan(r.ours) else f"{r.ours:+.1f} [{r.ci_low:+.1f}, {r.ci_high:+.1f}]" for r in df.itertuples()],
        p_value=df.p_value.map(lambda v: "" if math.isnan(v) else f"{v:.2g}"))
    cols = ["paper", "claim", "column", "paper_effect", "ours", "n", "seeds", "budget", "test", "p_value", "verdict"]
    show = show[cols].rename(columns={"paper_effect": "paper effect", "ours": "ours (95% CI)", "p_value": "p"})
    show["n"] = show["n"].astype(str)
    show["seeds"] = show["seeds"].astype(str)
    paths = []
    for fmt in ("md", "csv", "tex"):
        p = out / f"claims.{fmt}"
        text = df.to_csv(index=False) if fmt == "csv" else render_frame(show, fmt, "Claims and verdicts", CAPTION,
                                                                        "claims", n_text=3)
        atomic_write_bytes(p, text.encode())
        paths.append(p)
    return paths


#: verdict -> colour of our interval in :func:`plot_claims`
VERDICT_COLORS = {"reproduced": "#029e73", "contradicted": "#d55e00", "inconclusive": "#949494",
                  "not comparable": "#000000"}


def plot_claims(df, out_dir: str | Path | None = None) -> tuple[Any, list[Path]]:
    """The study's main figure: for every claim that has run, our effect (A - B, points) with its 95% interval,
    coloured by verdict, beside the paper's effect (open diamond); bounded / no-difference claims are marked.
    Writes ``claims.png`` / ``claims.pdf`` to ``out_dir`` (if given); returns ``(fig, paths)``. A table with no
    claim run yet gives an empty panel saying so."""
    from ..core.style import figure, legend_outside, save_figure

    ran = df[df.ours.notna()].reset_index(drop=True)
    drop = ran.column.str.startswith(("curve:", "sweep:"))  # eps-plateau claims: accuracy drops of tens of points
    parts = [(p, t) for p, t in ((ran[~drop], "effect A - B (accuracy points)"),
                                 (ran[drop], "accuracy drop from eps 0.3 to 0.7 (points; bounded claims)"))
             if len(p)] or [(ran, "effect A - B (accuracy points)")]
    fig, axes = figure(nrows=len(parts), width=5.6, height=1.0,
                       gridspec_kw={"height_ratios": [max(1.2, 0.32 * len(p) + 0.6) for p, _ in parts]})
    fig.set_size_inches(5.6, max(1.6, sum(max(1.2, 0.32 * len(p) + 0.6) for p, _ in parts) + 0.5))
    for ax, (part, xlabel) in zip(axes[:, 0], parts):
        part = part.reset_index(drop=True)
        for i, r in part.iterrows():
            y = len(part) - 1 - i
            ax.errorbar(r.ours, y, xerr=[[r.ours - r.ci_low], [r.ci_high - r.ours]], fmt="o", ms=4, capsize=2,
                        color=VERDICT_COLORS.get(r.verdict, "#000000"), label=r.verdict)
            ax.plot(r.paper_effect, y, marker="D", mfc="none", mec="#000000", ms=5, ls="none", label="paper")
        ax.axvline(0.0, color="#000000", lw=0.6)
        ax.set_yticks(range(len(part)), [f"{r.paper}: {r.claim} ({r.column}, {r.seeds} seed"
                                         f"{'s' if r.seeds != 1 else ''})" for r in part.iloc[::-1].itertuples()],
                      fontsize=6)
        ax.set_xlabel(xlabel)
    ax = axes[0, 0]
    n_total = len(df)
    ax.set_title(f"Claims: ours (95% CI) vs the paper, {len(ran)} of {n_total} run (CPU scale)", fontsize=8)
    if len(ran):
        handles, labels = [], []
        for a in axes[:, 0]:
            h, lab = a.get_legend_handles_labels()
            handles, labels = handles + h, labels + lab
        uniq = dict(zip(labels, handles))
        legend_outside(ax, handles=list(uniq.values()), labels=list(uniq), fontsize=6)
    else:
        ax.text(0.5, 0.5, "no claim run yet", ha="center", va="center", transform=ax.transAxes)
    paths = save_figure(fig, "claims", out_dir, close=False) if out_dir is not None else []
    return fig, paths
