"""The reproduction pipeline: a profile becomes a plan of papermill notebook executions, run in dependency order.

``python -m ot_robust reproduce --profile quick`` (what ``make reproduce`` runs) calls :func:`build_plan` and
:func:`run_plan`. Steps (``name``: notebook, outputs under ``<runs_dir>`` = ``runs/<profile>``):

* ``overview`` (00_overview), ``ot_solvers`` (01_ot_solvers): stand-alone notebooks listed in ``notebooks:``.
* ``train/<exp>`` (10_train): one model per profile method -> ``train/<exp>/model.pt`` (+ checkpoints, metrics).
* ``evaluate/<exp>`` (20_evaluate): attack suite, AutoAttack, sanity checks, curves -> ``eval/<exp>/eval.json``;
  depends on ``train/<exp>`` (and on the black-box source models it transfers from).
* ``audit/<group>/<exp>`` (21_audit, one per model of each group under ``audit:``): the masking audit (RayS,
  FeatureAttack, the authors' own checks, transfer attacks, GOT's eps-sweep protocol) ->
  ``audit/<group>/<exp>/eval.json``; depends on ``evaluate/<exp>`` (its sanity flag compares with that
  evaluation's white-box PGD on the same images).
* ``analysis/<name>`` (43-47, listed under ``analysis:``): analysis figures of trained models; depend on the
  ``train/<exp>`` steps of the models they draw.
* ``tables/<paper>`` (30_tables_<paper>), ``figures/<paper>`` (40_figures_<paper>): depend on every evaluation
  (not on the audits, which can take days: they show the audit results present when they run; rebuild them with
  ``--only 'tables/*,figures/*' --force`` after an audit chunk);
  tables go to ``<fig_dir>/tables/`` (Markdown, CSV, LaTeX), figures to ``<fig_dir>`` (PNG, PDF).

Each step's content hash covers the notebook's code (:func:`notebook_digest`: code cells with comments and blank
lines removed; Markdown, outputs and metadata are not part of it), its parameters, its upstream steps' hashes and the
package version; it is stored in ``.done.json`` beside the step's outputs when the step succeeds. A step whose
stored hash matches and whose outputs exist is skipped. Executed notebooks are kept under
``<runs_dir>/notebooks/``. Structured parameters (lists, mappings) are passed as JSON strings so that the
``--dry-run`` command lines (``papermill ... -p name value``) reproduce the run exactly.
"""

from __future__ import annotations

import concurrent.futures as cf
import fnmatch
import hashlib
import io
import json
import os
import shlex
import time
import tokenize
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .. import __version__
from ..core.run_files import CONFIG_FILE, DIVERGED_FILE, MODEL_FILE
from ..core.utils import REPO_ROOT, atomic_write_bytes, atomic_write_json, git_commit
from ..evaluation.results import CURVES_FILE, EVAL_FILE, LOSS_CURVES_FILE, MASKS_FILE
from ..profiles import FIGURE_NOTEBOOKS, TABLE_NOTEBOOKS, Profile, load_profile, metas_with_claims
from ..profiles.paths import DONE_FILE, RunLayout
from ..reports import check_names
from ..training.budget import BudgetReached  # noqa: F401 - public name
from .signals import DEADLINE_ENV, PROGRESS_ENV, deadline_passed  # noqa: F401 - public names
from .eta import StepClock, format_minutes

#: written beside a step's outputs by its task when the step stopped at the ``--budget`` (or a cluster's pre-emption)
#: and will continue on the next run; removed when the step starts again
STOPPED_FILE = ".stopped.json"
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"


class PipelineError(RuntimeError):
    """A step failed: ``step``, the executed ``notebook`` path, and (for a cell error) ``cell_index``,
    ``exec_count``, ``source``, ``ename``, ``evalue``."""

    def __init__(self, message: str, step: str = "", notebook: str = "", **cell: Any):
        super().__init__(message)
        self.step, self.notebook, self.cell = step, notebook, cell


@dataclass
class Step:
    """One papermill execution of ``notebook`` into ``output``; ``.done.json`` goes in ``done_dir``; ``outputs`` must
    exist after success; ``deps`` are names of steps that must run first.

    ``params`` are the step's resolved parameters (structured ones as compact JSON): what its hash covers and its
    ``.done.json`` records. ``inputs``, when set (train and evaluate steps), is all papermill passes: the profile
    file, its sha256, the step's name and the plan options; the notebook resolves the rest from the profile
    (:func:`ot_robust.study.tasks.resolve_step`) and receives ``values``, the same parameters as Python objects.
    Without ``inputs`` papermill passes ``params``."""

    name: str
    notebook: str
    output: str
    params: dict[str, Any]
    done_dir: str
    outputs: list[str] = field(default_factory=list)
    deps: list[str] = field(default_factory=list)
    hash: str = ""
    inputs: dict[str, Any] | None = None
    values: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def papermill_params(self) -> dict[str, Any]:
        """What papermill passes to the notebook: ``inputs`` if set, else ``params``."""
        return self.params if self.inputs is None else self.inputs


@dataclass
class Plan:
    """Steps in dependency order, for ``profile``, all paths relative to ``root`` (the project directory)."""

    profile: Profile
    steps: list[Step]
    root: Path
    runs_dir: str
    fig_dir: str

    def __getitem__(self, name: str) -> Step:
        for s in self.steps:
            if s.name == name:
                return s
        raise KeyError(f"no step {name!r}; steps: {[s.name for s in self.steps]}")


#: per notebook, the parameters whose values are structured (hashed and recorded as compact JSON)
_JSON_KEYS = {"10_train": ("method_params", "model_params", "train_params"),
              "20_evaluate": ("attacks", "autoattack", "curves", "loss_curves", "transfer_from", "strong"),
              "21_audit": ("attacks", "eps_sweep")}


def _js(obj: Any) -> str:
    """Compact, key-sorted JSON: the form structured parameters take (the notebooks ``json.loads`` them)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def normalise_code(source: str) -> str:
    """A code cell as the step hash sees it: comments, trailing spaces and blank lines removed (line breaks inside
    the code and indentation are kept). Text the tokenizer cannot read (a cell magic) is kept as written, less its
    trailing spaces and blank lines."""
    lines = source.splitlines()
    try:
        comments = [t.start for t in tokenize.generate_tokens(io.StringIO(source).readline)
                    if t.type == tokenize.COMMENT]
    except (tokenize.TokenError, SyntaxError):
        comments = []
    for row, col in reversed(comments):
        lines[row - 1] = lines[row - 1][:col]
    return "\n".join(line.rstrip() for line in lines if line.strip())


def notebook_digest(path: str | Path) -> str:
    """sha256 of what a notebook *does*: its code cells, in order, each through :func:`normalise_code`. Markdown,
    comments, outputs (``make notebook-outputs``) and metadata are left out, so that rewording a sentence never
    makes a finished step look out of date; changing a line of code does."""
    cells = json.loads(Path(path).read_bytes()).get("cells", [])
    code = [normalise_code("".join(c.get("source", ""))) for c in cells if c.get("cell_type") == "code"]
    return _sha256(json.dumps(code).encode())


def _nb(notebooks_dir: Path, stem: str, root: Path) -> str:
    p = notebooks_dir / f"{stem}.ipynb"
    try:
        return str(p.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(p.resolve())


def build_plan(profile: Profile | str | Path, runs_dir: str | Path | None = None, fig_dir: str | Path = "figures",
               root: str | Path | None = None, notebooks_dir: str | Path | None = None,
               max_batches: int | None = None) -> Plan:
    """The plan of ``profile``: steps in dependency order (overview, solvers, train, evaluate, tables, figures).

    Args:
        profile: a :class:`Profile` or a profile name/path (see :func:`ot_robust.profiles.load_profile`).
        runs_dir: parent of ``<profile>/`` run outputs (relative to ``root``); None: the profile's ``runs_dir``
            (``results`` for the committed study profiles), else ``runs``.
        fig_dir: parent of ``<profile>/`` figures and tables.
        root: the project directory the notebooks run in (default: the current directory).
        notebooks_dir: where the numbered notebooks live (default: this checkout's ``notebooks/``).
        max_batches: if set, every training step stops after this many batches (the one-batch check of the
            GPU profiles); it is a parameter, so it changes the steps' hashes.
    Raises:
        ValueError: a table or figure of the profile has no notebook, or ``max_batches`` < 1.
    """
    prof = check_names(profile if isinstance(profile, Profile) else load_profile(profile))
    root = Path(root or Path.cwd())
    nbdir = Path(notebooks_dir) if notebooks_dir else NOTEBOOKS_DIR
    if max_batches is not None and max_batches < 1:
        raise ValueError(f"max_batches must be >= 1 or None, got {max_batches}")
    lay = RunLayout(str(runs_dir or prof.runs_dir or "runs"), prof.name, str(fig_dir))
    rd, fd = lay.root, lay.figures
    prof_file = str(prof.path or "")
    prof_sha = _sha256(Path(prof_file).read_bytes()) if prof_file and Path(prof_file).is_file() else ""
    if prof_file and (found := Path(prof_file).resolve()).is_relative_to(root.resolve()):  # a profile of this checkout:
        prof_file = found.relative_to(root.resolve()).as_posix()  # relative, so a clone elsewhere has the same hash
    common = {"profile": prof.name}
    steps: list[Step] = []
    plan_options = {"profile_file": prof_file, "profile_sha256": prof_sha,
                    "runs_dir": None if runs_dir is None else str(runs_dir), "fig_dir": str(fig_dir),
                    "max_batches": max_batches}

    def add(name: str, stem: str, params: dict, done_dir: str, outputs=(), deps=(), resolved: bool = False):
        suffix = name.split("/", 1)[1].replace("/", ".") if "/" in name else ""  # audit/<group>/<exp>: one file
        out = f"{lay.notebooks}/{stem}" + (f".{suffix}" if suffix else "") + ".ipynb"
        js = {k: _js(v) if k in _JSON_KEYS.get(stem, ()) else v for k, v in params.items()}
        step = Step(name, _nb(nbdir, stem, root), out, {**common, **js}, done_dir, list(outputs), list(deps))
        if resolved:  # a train/evaluate step: the notebook resolves it from the profile (tasks.resolve_step)
            step.values = {**common, **params}
            step.inputs = {**plan_options, "step": name}
        steps.append(step)

    for stem in prof.notebooks:
        short = stem.split("_", 1)[1]
        add(short, stem, {"fig_dir": fd, **({"runs_dir": rd} if stem == "00_overview" else {})}, lay.step(short))
    for exp, m in prof.methods.items():
        run_dir = lay.train(exp)
        train = {**prof.defaults, **m.train}
        add(f"train/{exp}", "10_train", {
            "experiment": exp, "method": m.method, "method_params": m.params,
            "dataset": prof.dataset, "data_root": prof.data_root, "model": prof.model,
            "model_params": prof.model_params, "train_params": train, "seed": prof.seed_of(exp),
            "max_batches": max_batches, "run_dir": run_dir}, run_dir, [f"{run_dir}/{MODEL_FILE}"], resolved=True)
    ev = prof.eval
    eval_steps = []
    for exp, m in prof.methods.items():
        out_dir = lay.eval(exp)
        lc = ev.get("loss_curves") if (ev.get("loss_curves") or {}).get("experiment") == exp else None
        sources = m.transfer_from
        outputs = [f"{out_dir}/{EVAL_FILE}"] + ([f"{out_dir}/{CURVES_FILE}"] if m.curves and ev.get("curves")
                                              else []) + ([f"{out_dir}/{LOSS_CURVES_FILE}"] if lc else [])
        add(f"evaluate/{exp}", "20_evaluate", {
            "experiment": exp, "label": prof.label(exp), "method": m.method, "run_dir": lay.train(exp),
            "out_dir": out_dir, "dataset": prof.dataset, "data_root": prof.data_root,
            "attacks": ev["attacks"], "n_examples": ev["n_examples"], "batch_size": ev.get("batch_size", 250),
            "sanity": ev.get("sanity", True), "autoattack": ev.get("autoattack") if m.autoattack else None,
            "curves": ev.get("curves") if m.curves else None, "loss_curves": lc,
            "transfer_from": {row: lay.train(src) for row, src in sources.items()},
            "seed": prof.seed, **({"strong": ev["strong"]} if ev.get("strong") else {})}, out_dir,
            outputs + [f"{out_dir}/{MASKS_FILE}"], [f"train/{exp}"] + [f"train/{s}" for s in sources.values()],
            resolved=True)
        eval_steps.append(f"evaluate/{exp}")
    _add_audits(prof, lay, add)  # tables read the audits found (results.read_evals) but never wait for them
    for kind, names, notebooks, folder in [("tables", prof.tables, TABLE_NOTEBOOKS, lay.tables),
                                           ("figures", prof.figures, FIGURE_NOTEBOOKS, fd)]:
        by_paper: dict[str, list[str]] = {}
        for n in names:
            by_paper.setdefault(n.split("_", 1)[0], []).append(n)
        for paper, items in by_paper.items():
            stem = notebooks.get(paper)
            if stem is None or not (nbdir / f"{stem}.ipynb").is_file():
                raise ValueError(f"profile {prof.name!r} asks for {kind} {items} but notebook "
                                 f"{(nbdir / f'{stem or paper}.ipynb')} does not exist")
            add(f"{kind}/{paper}", stem, {"profile_file": prof_file, "profile_sha256": prof_sha, "runs_dir": rd,
                                          "fig_dir": fd, kind: _js(items)},
                lay.step(kind, paper), [], eval_steps)
    for stem, params in prof.analysis.items():
        short = stem.split("_", 1)[1]
        models = params.get("models", [])
        add(f"analysis/{short}", stem, {"runs_dir": rd, "fig_dir": fd,
                                        **{k: _js(v) if isinstance(v, (list, dict)) else v for k, v in params.items()}},
            lay.step("analysis", short), [], [f"train/{m}" for m in models])
    plan = Plan(prof, _interleave(steps), root, rd, fd)
    compute_hashes(plan)
    return plan


def _add_audits(prof: Profile, lay: RunLayout, add: Callable[..., None]) -> list[str]:
    """Add one ``audit/<group>/<exp>`` step per group of the profile's ``audit`` and model it lists (groups in
    profile order, models in the order of ``methods``); returns their names. A transfer column's source experiment
    becomes its training run folder (and a dependency)."""
    from ..profiles.audit_schema import groups_of

    names = []
    for group in prof.audit:
        for exp, m in prof.methods.items():
            g = groups_of(prof.audit, exp).get(group)
            if g is None:
                continue
            sources = sorted({a["source"] for a in g["attacks"].values() if isinstance(a, dict)})
            attacks = {c: {**a, "source": lay.train(a["source"])} if isinstance(a, dict) else a
                       for c, a in g["attacks"].items()}
            out_dir = lay.audit(group, exp)
            add(f"audit/{group}/{exp}", "21_audit", {
                "experiment": exp, "label": prof.label(exp), "method": m.method, "group": group,
                "run_dir": lay.train(exp), "eval_dir": lay.eval(exp), "out_dir": out_dir, "dataset": prof.dataset,
                "data_root": prof.data_root, "batch_size": prof.eval.get("batch_size", 250), "seed": prof.seed,
                "n_examples": g["n_examples"], "attacks": attacks, "eps_sweep": g["eps_sweep"]}, out_dir,
                [f"{out_dir}/{EVAL_FILE}", f"{out_dir}/{MASKS_FILE}"],
                [f"train/{exp}", f"evaluate/{exp}"] + [f"train/{s}" for s in sources], resolved=True)
            names.append(f"audit/{group}/{exp}")
    return names


def _interleave(steps: list[Step]) -> list[Step]:
    """Each ``evaluate/<exp>`` right after the last training step it needs (instead of after every training
    step): a run cut short by ``--budget`` leaves finished evaluations, not only trained models."""
    kind = lambda s: s.name.split("/", 1)[0]  # noqa: E731
    trains = [s for s in steps if kind(s) == "train"]
    evals = [s for s in steps if kind(s) == "evaluate"]
    placed = {s.name for s in steps if kind(s) not in ("train", "evaluate")}
    out = [s for s in steps if kind(s) not in ("train", "evaluate") and not s.deps]
    for t in trains:
        out.append(t)
        placed.add(t.name)
        for e in [e for e in evals if all(d in placed for d in e.deps)]:
            out.append(e)
            placed.add(e.name)
            evals.remove(e)
    out += evals
    return out + [s for s in steps if s not in out]


def compute_hashes(plan: Plan) -> None:
    """Set ``step.hash`` = sha256 of (notebook digest, parameters, upstream hashes, package version), in order
    (:func:`notebook_digest`: the notebook's code cells without comments or blank lines).

    Raises:
        PipelineError: a step's notebook file does not exist, or a step depends on a later/unknown step.
    """
    known: dict[str, str] = {}
    for s in plan.steps:
        nb = plan.root / s.notebook
        if not nb.is_file():
            raise PipelineError(f"step {s.name}: notebook {nb} does not exist", step=s.name, notebook=str(nb))
        missing = [d for d in s.deps if d not in known]
        if missing:
            raise PipelineError(f"step {s.name} depends on {missing}, which do not come before it in the plan",
                                step=s.name)
        payload = {"notebook": notebook_digest(nb), "params": s.params,
                   "upstream": {d: known[d] for d in sorted(s.deps)}, "version": __version__}
        s.hash = _sha256(_js(payload).encode())
        known[s.name] = s.hash


def is_done(step: Step, root: Path) -> bool:
    """True if ``<done_dir>/.done.json`` records this step's hash and every declared output exists."""
    p = root / step.done_dir / DONE_FILE
    try:
        rec = json.loads(p.read_text())
    except (OSError, ValueError):
        return False
    return rec.get("hash") == step.hash and all(_present(root, o) for o in step.outputs)


def _present(root: Path, output: str) -> bool:
    """Whether a step's declared output exists; a training run's ``model.pt`` is stood in for by its
    ``diverged.json`` (a run that diverged has no model: :class:`ot_robust.training.trainer.TrainingDiverged`)."""
    path = root / output
    return path.exists() or (path.name == MODEL_FILE and (path.parent / DIVERGED_FILE).is_file())


def restamp(step: Step, root: Path, note: dict[str, Any]) -> None:
    """Record ``step.hash`` and ``step.params`` in the step's existing ``.done.json`` (atomically), keeping the old
    hash and ``note`` (why the results still stand) in its ``restamped`` list. For changes that alter a finished
    step's hash but not what it computed (``scripts/restamp_steps.py``, ``scripts/migrate_step_hashes.py``).

    Raises:
        FileNotFoundError: the step has no ``.done.json``.
    """
    path = root / step.done_dir / DONE_FILE
    rec = json.loads(path.read_text())
    rec.setdefault("restamped", []).append({"old_hash": rec["hash"], **note,
                                            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    rec.update(hash=step.hash, params=step.params)
    atomic_write_json(path, rec)


def is_committed(step: Step, root: Path) -> bool:
    """True if the step's ``.done.json`` records its hash and the only missing outputs are model weights (``*.pt``):
    the state of a fresh clone of a results folder committed without weights (the study's results commit its small
    weights, other runs folders may not). Such a step counts as
    done unless a step that still has to run needs it (then it reruns, e.g. to give an analysis figure its model)."""
    p = root / step.done_dir / DONE_FILE
    try:
        rec = json.loads(p.read_text())
    except (OSError, ValueError):
        return False
    missing = [o for o in step.outputs if not _present(root, o)]
    return rec.get("hash") == step.hash and bool(missing) and all(o.endswith(".pt") for o in missing)


def parse_budget(text: str | None) -> float | None:
    """``"150m"``, ``"2.5h"``, ``"90s"`` -> seconds (None -> None). Raises ValueError naming the bad text."""
    if text is None:
        return None
    t = str(text).strip().lower()
    units = {"s": 1, "m": 60, "h": 3600}
    try:
        if t[-1:] in units and float(t[:-1]) > 0:
            return float(t[:-1]) * units[t[-1]]
    except ValueError:
        pass
    raise ValueError(f"--budget {text!r}: give a positive number with a unit, e.g. 90s, 150m or 2.5h")


def _needs_raw(v: str) -> bool:
    """Would papermill's ``-p`` turn this string into a non-string (number, bool, None)?"""
    if v in ("True", "False", "None"):
        return True
    try:
        float(v)
        return True
    except ValueError:
        return False


def papermill_command(step: Step, kernel: str | None = None) -> str:
    """The shell command line that runs ``step`` (from the project directory), every value shell-quoted.

    Strings papermill would otherwise parse as numbers/booleans go through ``-r`` (raw); everything else ``-p``.
    """
    parts = ["papermill", step.notebook, step.output]
    if kernel:
        parts += ["-k", kernel]
    for k, v in step.papermill_params.items():
        if isinstance(v, str) and _needs_raw(v):
            parts += ["-r", k, v]
        else:
            parts += ["-p", k, "None" if v is None else str(v)]
    return " ".join(shlex.quote(p) for p in parts)


def _patterns(only: str | list[str]) -> list[str]:
    return [p.strip() for p in (only.split(",") if isinstance(only, str) else only) if p.strip()]


def matches(name: str, only: str | list[str] | None) -> bool:
    """True if the step ``name`` is selected by ``only`` (glob patterns, comma-separated string or list; None: all)."""
    return not only or any(fnmatch.fnmatchcase(name, p) for p in _patterns(only))


def select_steps(plan: Plan, only: str | list[str] | None) -> list[Step]:
    """Steps whose name matches one of the glob patterns ``only`` (comma-separated string or list); all if None.

    Raises:
        ValueError: no step matches (the message lists the step names).
    """
    if not only:
        return list(plan.steps)
    sel = [s for s in plan.steps if matches(s.name, only)]
    if not sel:
        raise ValueError(f"--only {only!r} matches no step; steps: {[s.name for s in plan.steps]}")
    return sel


def execute_step(step: Step, root: str | Path, kernel: str | None = None, threads: int | None = None
                 ) -> dict[str, Any]:
    """Run one step with papermill, in this process's kept kernel (:mod:`ot_robust.study.jupyter_kernel`); on success
    write ``.done.json``.

    ``threads``: if given (and ``OMP_NUM_THREADS`` is not set by the user), the kernel's torch uses that many threads
    (``--jobs N`` gives each of the N parallel kernels ``cores // N``, so they do not oversubscribe the CPU).

    Returns ``{"ok": True, "seconds": ...}`` or ``{"ok": False, ...}`` with the failing cell's index, execution
    count, source, error name and value (picklable, so it crosses process boundaries).
    """
    from papermill.exceptions import PapermillExecutionError

    from .jupyter_kernel import execute_notebook

    root = Path(root)
    if threads is not None and "OMP_NUM_THREADS" not in os.environ:
        os.environ["OMP_NUM_THREADS"] = str(threads)  # inherited by the kernel this worker process starts
    t0 = time.time()
    (root / step.output).parent.mkdir(parents=True, exist_ok=True)
    (root / step.done_dir).mkdir(parents=True, exist_ok=True)
    stopped = root / step.done_dir / STOPPED_FILE
    stopped.unlink(missing_ok=True)
    try:
        execute_notebook(root / step.notebook, root / step.output, step.papermill_params, cwd=root,
                         kernel_name=kernel)
    except PapermillExecutionError as e:
        return {"ok": False, "cell_index": e.cell_index, "exec_count": e.exec_count, "source": e.source,
                "ename": e.ename, "evalue": e.evalue, "seconds": time.time() - t0, "budget": stopped.is_file()}
    except Exception as e:  # kernel died, notebook unreadable, ...
        return {"ok": False, "ename": type(e).__name__, "evalue": str(e), "seconds": time.time() - t0}
    missing = [o for o in step.outputs if not _present(root, o)]
    if missing:
        return {"ok": False, "ename": "MissingOutputs", "evalue": f"notebook finished but did not write {missing}",
                "seconds": time.time() - t0}
    secs = time.time() - t0
    atomic_write_json(root / step.done_dir / DONE_FILE, {
        "step": step.name, "hash": step.hash, "notebook": step.notebook, "executed_notebook": step.output,
        "params": step.params, "deps": step.deps, "package_version": __version__, "seconds": round(secs, 2),
        "git_commit": git_commit(),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    return {"ok": True, "seconds": secs}


def _failure(step: Step, res: dict[str, Any], root: Path) -> PipelineError:
    where = (f"cell {res['cell_index']} of the executed notebook (execution count {res.get('exec_count')})"
             if "cell_index" in res
             else "the notebook run")
    msg = (f"step {step.name} failed in {where}: {res.get('ename')}: {res.get('evalue')}\n"
           f"  executed notebook: {root / step.output}\n"
           f"  rerun: {papermill_command(step)}")
    if res.get("source"):
        msg += "\n  failing cell:\n" + "\n".join("    " + line for line in str(res["source"]).splitlines())
    return PipelineError(msg, step=step.name, notebook=str(root / step.output),
                         **{k: v for k, v in res.items() if k not in ("ok", "seconds")})


def run_plan(plan: Plan, force: bool = False, only: str | list[str] | None = None, jobs: int = 1,
             dry_run: bool = False, kernel: str | None = None, log: Callable[[str], None] = print,
             budget_s: float | None = None, deadline: float | None = None,
             executor: str | Callable[..., dict[str, str]] = "local",
             slurm: dict[str, Any] | None = None) -> dict[str, str]:
    """Run the plan: skip up-to-date steps (unless ``force``), run the others in dependency order, up to ``jobs``
    at a time (separate processes, each driving its own kernel). ``dry_run`` prints one papermill command per
    selected step (dependency order) and runs nothing.

    Steps recorded as done whose only missing outputs are weights (:func:`is_committed`: a fresh clone of a
    committed results folder) are skipped unless a step that runs needs them.

    ``budget_s`` (or an absolute ``deadline``, unix time): no step starts after the deadline, and a training step
    running at the deadline stops at its next epoch end with its checkpoint saved (:class:`BudgetReached`); the
    same command run again continues where this one stopped.

    ``executor``: ``"local"`` (default) or another executor's plan function, called as ``executor(plan, force=,
    only=, log=, dry_run=, **slurm)`` instead of running here: :func:`ot_robust.study.slurm.submit_plan` submits the
    steps that must run as SLURM jobs (keyword arguments in ``slurm``: ``overrides``, ``wait``, ``folder``; with
    ``dry_run`` it prints the job graph). The CLI passes it for ``--executor slurm``; the executor modules sit above
    this one (they use the plan), so this module never imports them.

    Returns:
        ``{step name: "ran" | "skipped" | "committed" | "stopped" | "deferred" | "printed" | "submitted <job id>"}``.
    Raises:
        PipelineError: a step failed (message: step, executed notebook path, failing cell); steps finished before
            keep their ``.done.json``. Also raised when a selected step depends on an unselected step that is not
            up to date.
        ValueError: ``jobs`` < 1 or ``only`` matches nothing.
    """
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    if executor != "local":
        if not callable(executor):
            raise ValueError(f"executor {executor!r} unknown; allowed: 'local' or an executor's plan function "
                             "(ot_robust.study.slurm.submit_plan)")
        return executor(plan, force=force, only=only, log=log, dry_run=dry_run, **(slurm or {}))
    selected = select_steps(plan, only)
    if dry_run:
        for s in selected:
            log(papermill_command(s, kernel))
        return {s.name: "printed" for s in selected}
    root = plan.root
    sel_names = {s.name for s in selected}
    status: dict[str, str] = {}
    todo = []
    for s in selected:
        if not force and is_done(s, root):
            status[s.name] = "skipped"
            log(f"[skip] {s.name} (up to date: {s.done_dir}/{DONE_FILE})")
        else:
            todo.append(s)
    needed: set[str] = set()
    keep = []
    for s in reversed(todo):  # committed steps (weights not on this clone) rerun only for a step that needs them
        if not force and s.name not in needed and is_committed(s, root):
            status[s.name] = "committed"
            log(f"[skip] {s.name} (committed result; weights not needed by any step that runs)")
            continue
        keep.append(s)
        needed.update(s.deps)
    todo = keep[::-1]
    if deadline is None and budget_s is not None:
        deadline = time.time() + budget_s
    prev_deadline, prev_progress = os.environ.get(DEADLINE_ENV), os.environ.get(PROGRESS_ENV)
    if deadline is not None:
        os.environ[DEADLINE_ENV] = repr(deadline)  # read by the steps' kernels (Trainer: stop at an epoch end)
    os.environ[PROGRESS_ENV] = "1"  # long steps stream progress lines to this console (study.signals)
    try:
        _run_todo(plan, todo, status, sel_names, jobs, kernel, log, deadline)
    finally:
        for name, prev in ((DEADLINE_ENV, prev_deadline), (PROGRESS_ENV, prev_progress)):
            if prev is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = prev
        from .jupyter_kernel import shutdown

        shutdown()  # the kept kernel of --jobs 1 (pool workers shut theirs down when they exit)
    return status


def _run_todo(plan: Plan, todo: list[Step], status: dict[str, str], sel_names: set[str], jobs: int,
              kernel: str | None, log: Callable[[str], None], deadline: float | None) -> None:
    """The execution part of :func:`run_plan` (fills ``status``)."""
    root = plan.root
    pending_names = {s.name for s in todo}
    for s in todo:
        stale = [d for d in s.deps if d not in sel_names and not is_done(plan[d], root)]
        if stale:
            raise PipelineError(f"step {s.name} needs {stale}, which are not selected by --only and not up to date; "
                                f"run them first or widen --only", step=s.name)
    finished: set[str] = set()
    run_t0 = time.time()

    def ready(s: Step) -> bool:
        return all(d not in pending_names or d in finished for d in s.deps)

    def out_of_time() -> bool:
        return deadline is not None and time.time() > deadline

    def on_result(s: Step, res: dict[str, Any]) -> None:
        if not res["ok"] and res.get("budget"):
            status[s.name] = "stopped"
            log(f"[stop] {s.name}: budget reached, checkpoint saved ({res['seconds']:.1f} s); rerun to continue")
            return
        if not res["ok"]:
            raise _failure(s, res, root)
        finished.add(s.name)
        status[s.name] = "ran"
        clock.record(s, res["seconds"])
        log(f"[done] {s.name} in {res['seconds']:.1f} s")

    def deferred(s: Step) -> bool:
        if out_of_time() or any(status.get(d) in ("stopped", "deferred") for d in s.deps):
            status[s.name] = "deferred"
            return True
        return False

    total = len(todo)
    clock = StepClock(jobs)
    clock.record_done_files(plan.steps, root, DONE_FILE)
    started: list[str] = []

    def start_line(s: Step) -> str:
        started.append(s.name)
        done = sum(v in ("ran", "stopped") for v in status.values())
        el = time.time() - run_t0
        left = clock.remaining([t for t in todo if t.name not in started or t.name == s.name])
        eta = format_minutes(left)
        if eta and deadline is not None and time.time() + left > deadline:
            eta += f" (beyond the budget, {max(0.0, deadline - time.time()) / 60:.0f} min left)"
        return (f"[run]  {s.name} ({done + 1}/{total}, {el / 60:.1f} min elapsed{', ' + eta if eta else ''}) "
                f"-> {s.output}")

    if jobs == 1:
        for s in todo:
            if deferred(s):
                continue
            log(start_line(s))
            on_result(s, execute_step(s, root, kernel))
    else:
        queue = list(todo)
        threads = max(1, (os.cpu_count() or 1) // jobs)
        with cf.ProcessPoolExecutor(max_workers=jobs) as pool:
            running: dict[cf.Future, Step] = {}
            error: PipelineError | None = None
            while queue or running:
                while error is None and len(running) < jobs:
                    nxt = next((s for s in queue if ready(s) or any(status.get(d) in ("stopped", "deferred")
                                                                   for d in s.deps)), None)
                    if nxt is None:
                        break
                    queue.remove(nxt)
                    if deferred(nxt):
                        continue
                    log(start_line(nxt))
                    running[pool.submit(execute_step, nxt, root, kernel, threads)] = nxt
                if not running:
                    break
                done, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
                for fut in done:
                    s = running.pop(fut)
                    try:
                        on_result(s, fut.result())
                    except PipelineError as e:
                        error = error or e
            if error is not None:
                raise error
    counts = {k: sum(v == k for v in status.values()) for k in ("ran", "skipped", "committed", "stopped", "deferred")}
    log(f"[pipeline] profile {plan.profile.name}: "
        + ", ".join(f"{v} {k}" for k, v in counts.items() if v or k == "ran")
        + f", {time.time() - run_t0:.1f} s" + ("; budget reached: run the same command again to continue"
                                                if counts["stopped"] or counts["deferred"] else ""))


CLAIMS_NOTEBOOK = "50_claims"


def profile_plans(profile: str | Path, runs_dir: str | Path | None = None, fig_dir: str | Path = "figures",
                  root: str | Path | None = None, max_batches: int | None = None,
                  only: str | list[str] | None = None):
    """``(meta, {profile name: Plan}, run_claims)`` for a plain profile (``meta`` None, one plan) or a meta profile
    (one plan per included profile; with ``only``, just those with a matching step; ``run_claims``: whether its
    claims step is selected). ``runs_dir`` None: the meta profile's, else the profile's ``runs_dir``, else ``runs``.

    Raises ProfileError for a bad profile, ValueError when ``only`` matches no step of a meta profile.
    """
    from ..profiles import load_meta_profile, load_profile

    meta = load_meta_profile(profile)
    names = meta.include if meta else [profile]
    plans = {}
    for name in names:
        prof = load_profile(name)
        rd = runs_dir or (meta.runs_dir if meta and meta.runs_dir else None) or prof.runs_dir or "runs"
        plans[name] = build_plan(prof, runs_dir=rd, fig_dir=fig_dir, root=root, max_batches=max_batches)
    run_claims = bool(meta and meta.claims and matches("claims", only))
    if meta and only:  # --only over a meta profile: the included profiles with a match, and/or the claims step
        hit = {n for n, pl in plans.items() if any(matches(s.name, only) for s in pl.steps)}
        if not hit and not run_claims:
            names_all = [s.name for pl in plans.values() for s in pl.steps] + (["claims"] if meta.claims else [])
            raise ValueError(f"--only {only!r} matches no step of {meta.name}; steps: {names_all}")
        plans = {n: pl for n, pl in plans.items() if n in hit}
    return meta, plans, run_claims


def run_profile(profile: str | Path, runs_dir: str | Path | None = None, fig_dir: str | Path = "figures",
                max_batches: int | None = None, budget: str | None = None, root: str | Path | None = None,
                log: Callable[[str], None] = print, **run_kw: Any) -> dict[str, str]:
    """Run a profile (``python -m ot_robust reproduce``): a plain one with :func:`build_plan` + :func:`run_plan`, a
    meta profile (``include:``, e.g. ``study``) as each included profile in order under one shared ``budget``
    (``"150m"``), then its claims-verdict notebook. ``runs_dir`` None: the profile's ``runs_dir``, else ``runs``.
    ``only`` (in ``run_kw``) on a meta profile selects across its included profiles, and the pattern ``claims``
    selects the verdict notebook (``--only claims`` rebuilds the verdict table from the results alone).

    Returns ``{step name: status}`` (steps of included profiles prefixed ``<profile>:``).
    Raises PipelineError / ValueError as :func:`run_plan`, ProfileError for a bad profile, ValueError for a bad
    budget.
    """
    budget_s = parse_budget(budget)
    deadline = None if budget_s is None else time.time() + budget_s
    only = run_kw.pop("only", None)
    meta, plans, run_claims = profile_plans(profile, runs_dir=runs_dir, fig_dir=fig_dir, root=root,
                                            max_batches=max_batches, only=only)
    status: dict[str, str] = {}
    for name, plan in plans.items():
        st = run_plan(plan, log=log, deadline=deadline, only=only, **run_kw)
        status.update({(f"{name}:{k}" if meta else k): v for k, v in st.items()})
    if run_claims and run_kw.get("executor", "local") != "local" and not run_kw.get("dry_run"):
        log(f"[note] the claims step of {meta.name} is not submitted to SLURM: run `python -m ot_robust reproduce "
            f"--profile {meta.name} --only claims` when the jobs have finished")
    elif run_claims and not run_kw.get("dry_run"):
        rd = runs_dir or meta.runs_dir or "runs"
        step = Step("claims", _nb(NOTEBOOKS_DIR, CLAIMS_NOTEBOOK, Path(root or Path.cwd())),
                    f"{rd}/{meta.name}/notebooks/{CLAIMS_NOTEBOOK}.ipynb",
                    {"profiles": _js(list(meta.include)), "runs_dir": str(rd),
                     "out_dir": f"{Path(fig_dir).as_posix()}/{meta.name}"}, f"{rd}/{meta.name}/claims")
        step.hash = _sha256(_js(step.params).encode())
        log(f"[run]  claims -> {step.output}")
        res = execute_step(step, Path(root or Path.cwd()), run_kw.get("kernel"))
        from .jupyter_kernel import shutdown

        shutdown()
        if not res["ok"]:
            raise _failure(step, res, Path(root or Path.cwd()))
        status["claims"] = "ran"
    if meta is None and not run_kw.get("dry_run") and "ran" in status.values():
        _note_stale_claims(next(iter(plans.values())), log)
    if meta and not run_kw.get("dry_run"):
        write_provenance(Path(root or Path.cwd()) / (runs_dir or meta.runs_dir or "runs"), meta.include)
    return status


def _note_stale_claims(plan: Plan, log: Callable[[str], None]) -> None:
    """After a run of one profile of a meta profile with claims (e.g. ``study-mnist`` of ``study``) into that meta
    profile's results: say that the verdict table, its README copy and the notebooks committed with outputs are now
    behind the results (the study's tests compare them)."""
    for m in metas_with_claims(plan.profile.name):
        if Path(plan.runs_dir) == Path(m.runs_dir or "runs") / plan.profile.name:
            log(f"[note] {plan.profile.name} is part of the meta profile {m.name}: this run did not rebuild its "
                f"verdict table; run `python -m ot_robust reproduce --profile {m.name} --only claims`, "
                "`scripts/sync_readme_claims.py` and `scripts/execute_notebooks.py --checked` (`make study-sync` "
                "does all three) before committing these results")


def _output_commit(folder: Path) -> str | None:
    """The git commit recorded in a step's own output (config.json or eval.json provenance)."""
    for name in (CONFIG_FILE, EVAL_FILE):
        try:
            return json.loads((folder / name).read_text())["provenance"]["git_commit"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return None


def write_provenance(runs_dir: Path, profiles: list[str]) -> Path:
    """``<runs_dir>/PROVENANCE.md``: every finished step of ``profiles`` (from its ``.done.json``) with its git
    commit, seconds and finish time, and how many steps each profile still has to run."""
    lines = ["# Provenance of the committed study results", "",
             "Generated by `python -m ot_robust reproduce --profile study` after each chunk. One line per finished "
             "step: its git commit (the code that produced it), wall seconds on 2 CPU cores, finish time.", ""]
    for name in profiles:
        plan = build_plan(name, runs_dir=runs_dir.name, root=runs_dir.parent)
        done = [s for s in plan.steps if is_done(s, plan.root) or is_committed(s, plan.root)]
        lines += [f"## {name}: {len(done)} of {len(plan.steps)} steps done", "",
                  "| step | commit | seconds | finished |", "|---|---|---:|---|"]
        for s in done:
            rec = json.loads((plan.root / s.done_dir / DONE_FILE).read_text())
            commit = rec.get("git_commit") or _output_commit(plan.root / s.done_dir) or "not recorded"
            lines.append(f"| {s.name} | {commit[:12]} | {rec.get('seconds', '')} "
                         f"| {rec.get('finished', '')} |")
        lines.append("")
    path = runs_dir / "PROVENANCE.md"
    atomic_write_bytes(path, "\n".join(lines).encode())
    return path
