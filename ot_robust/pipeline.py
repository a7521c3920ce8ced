"""The reproduction pipeline: a profile becomes a plan of papermill notebook executions, run in dependency order.

``python -m ot_robust reproduce --profile quick`` (what ``make reproduce`` runs) calls :func:`build_plan` and
:func:`run_plan`. Steps (``name``: notebook, outputs under ``<runs_dir>`` = ``runs/<profile>``):

* ``overview`` (00_overview), ``ot_solvers`` (01_ot_solvers): stand-alone notebooks listed in ``notebooks:``.
* ``train/<exp>`` (10_train): one model per profile method -> ``train/<exp>/model.pt`` (+ checkpoints, metrics).
* ``evaluate/<exp>`` (20_evaluate): attack suite, AutoAttack, sanity checks, curves -> ``eval/<exp>/eval.json``;
  depends on ``train/<exp>`` (and on the black-box source models it transfers from).
* ``analysis/<name>`` (43-47, listed under ``analysis:``): analysis figures of trained models; depend on the
  ``train/<exp>`` steps of the models they draw.
* ``tables/<paper>`` (30_tables_<paper>), ``figures/<paper>`` (40_figures_<paper>): depend on every evaluation;
  tables go to ``<fig_dir>/tables/`` (Markdown, CSV, LaTeX), figures to ``<fig_dir>`` (PNG, PDF).

Each step's content hash covers the notebook file's bytes, its parameters, its upstream steps' hashes and the
package version; it is stored in ``.done.json`` beside the step's outputs when the step succeeds. A step whose
stored hash matches and whose outputs exist is skipped. Executed notebooks are kept under
``<runs_dir>/notebooks/``. Structured parameters (lists, mappings) are passed as JSON strings so that the
``--dry-run`` command lines (``papermill ... -p name value``) reproduce the run exactly.
"""

from __future__ import annotations

import concurrent.futures as cf
import fnmatch
import hashlib
import json
import os
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from . import __version__
from .profiles import Profile, load_profile
from .utils import REPO_ROOT, atomic_write_json

DONE_FILE = ".done.json"
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
TABLE_NOTEBOOKS = {"fs": "30_tables_fs", "got": "31_tables_got", "otjr": "32_tables_otjr"}
FIGURE_NOTEBOOKS = {"fs": "40_figures_fs", "got": "41_figures_got", "otjr": "42_figures_otjr"}


class PipelineError(RuntimeError):
    """A step failed: ``step``, the executed ``notebook`` path, and (for a cell error) ``cell_index``,
    ``exec_count``, ``source``, ``ename``, ``evalue``."""

    def __init__(self, message: str, step: str = "", notebook: str = "", **cell: Any):
        super().__init__(message)
        self.step, self.notebook, self.cell = step, notebook, cell


@dataclass
class Step:
    """One papermill execution: ``notebook`` run with ``params`` into ``output``; ``.done.json`` goes in
    ``done_dir``; ``outputs`` must exist after success; ``deps`` are names of steps that must run first."""

    name: str
    notebook: str
    output: str
    params: dict[str, Any]
    done_dir: str
    outputs: list[str] = field(default_factory=list)
    deps: list[str] = field(default_factory=list)
    hash: str = ""


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


def _js(obj: Any) -> str:
    """Compact, key-sorted JSON: the form structured parameters take (the notebooks ``json.loads`` them)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _nb(notebooks_dir: Path, stem: str, root: Path) -> str:
    p = notebooks_dir / f"{stem}.ipynb"
    try:
        return str(p.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(p.resolve())


def build_plan(profile: Profile | str | Path, runs_dir: str | Path = "runs", fig_dir: str | Path = "figures",
               root: str | Path | None = None, notebooks_dir: str | Path | None = None,
               max_batches: int | None = None) -> Plan:
    """The plan of ``profile``: steps in dependency order (overview, solvers, train, evaluate, tables, figures).

    Args:
        profile: a :class:`Profile` or a profile name/path (see :func:`ot_robust.profiles.load_profile`).
        runs_dir: parent of ``<profile>/`` run outputs (relative to ``root``).
        fig_dir: parent of ``<profile>/`` figures and tables.
        root: the project directory the notebooks run in (default: the current directory).
        notebooks_dir: where the numbered notebooks live (default: this checkout's ``notebooks/``).
        max_batches: if set, every training step stops after this many batches (the one-batch check of the
            GPU profiles); it is a parameter, so it changes the steps' hashes.
    Raises:
        ValueError: a table or figure of the profile has no notebook, or ``max_batches`` < 1.
    """
    prof = profile if isinstance(profile, Profile) else load_profile(profile)
    root = Path(root or Path.cwd())
    nbdir = Path(notebooks_dir) if notebooks_dir else NOTEBOOKS_DIR
    if max_batches is not None and max_batches < 1:
        raise ValueError(f"max_batches must be >= 1 or None, got {max_batches}")
    rd = f"{Path(runs_dir).as_posix().rstrip('/')}/{prof.name}"
    fd = f"{Path(fig_dir).as_posix().rstrip('/')}/{prof.name}"
    prof_file = str(prof.path or "")
    prof_sha = _sha256(Path(prof_file).read_bytes()) if prof_file and Path(prof_file).is_file() else ""
    common = {"profile": prof.name}
    steps: list[Step] = []

    def add(name: str, stem: str, params: dict, done_dir: str, outputs=(), deps=()):
        out = f"{rd}/notebooks/{stem}" + (f".{name.split('/', 1)[1]}" if "/" in name else "") + ".ipynb"
        steps.append(Step(name, _nb(nbdir, stem, root), out, {**common, **params}, done_dir, list(outputs),
                          list(deps)))

    for stem in prof.notebooks:
        short = stem.split("_", 1)[1]
        add(short, stem, {"fig_dir": fd, **({"runs_dir": rd} if stem == "00_overview" else {})}, f"{rd}/{short}")
    for exp, m in prof.methods.items():
        run_dir = f"{rd}/train/{exp}"
        train = {**prof.defaults, **m.get("train", {})}
        add(f"train/{exp}", "10_train", {
            "experiment": exp, "method": m["method"], "method_params": _js(m.get("params", {})),
            "dataset": prof.dataset, "data_root": prof.data_root, "model": prof.model,
            "model_params": _js(prof.model_params), "train_params": _js(train), "seed": m.get("seed", prof.seed),
            "max_batches": max_batches, "run_dir": run_dir}, run_dir, [f"{run_dir}/model.pt"])
    ev = prof.eval
    eval_steps = []
    for exp, m in prof.methods.items():
        out_dir = f"{rd}/eval/{exp}"
        lc = ev.get("loss_curves") if (ev.get("loss_curves") or {}).get("experiment") == exp else None
        sources = m.get("transfer_from", {})
        outputs = [f"{out_dir}/eval.json"] + ([f"{out_dir}/curves.json"] if m.get("curves") and ev.get("curves")
                                              else []) + ([f"{out_dir}/loss_curves.json"] if lc else [])
        add(f"evaluate/{exp}", "20_evaluate", {
            "experiment": exp, "label": prof.label(exp), "method": m["method"], "run_dir": f"{rd}/train/{exp}",
            "out_dir": out_dir, "dataset": prof.dataset, "data_root": prof.data_root,
            "attacks": _js(ev["attacks"]), "n_examples": ev["n_examples"], "batch_size": ev.get("batch_size", 250),
            "sanity": ev.get("sanity", True), "autoattack": _js(ev.get("autoattack") if m.get("autoattack", True) else None),
            "curves": _js(ev.get("curves") if m.get("curves") else None), "loss_curves": _js(lc),
            "transfer_from": _js({row: f"{rd}/train/{src}" for row, src in sources.items()}),
            "seed": prof.seed}, out_dir, outputs, [f"train/{exp}"] + [f"train/{s}" for s in sources.values()])
        eval_steps.append(f"evaluate/{exp}")
    for kind, names, notebooks, folder in [("tables", prof.tables, TABLE_NOTEBOOKS, f"{fd}/tables"),
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
                f"{rd}/{kind}/{paper}", [], eval_steps)
    for stem, params in prof.analysis.items():
        short = stem.split("_", 1)[1]
        models = params.get("models", [])
        add(f"analysis/{short}", stem, {"runs_dir": rd, "fig_dir": fd,
                                        **{k: _js(v) if isinstance(v, (list, dict)) else v for k, v in params.items()}},
            f"{rd}/analysis/{short}", [], [f"train/{m}" for m in models])
    plan = Plan(prof, steps, root, rd, fd)
    compute_hashes(plan)
    return plan


def compute_hashes(plan: Plan) -> None:
    """Set ``step.hash`` = sha256 of (notebook bytes, parameters, upstream hashes, package version), in order.

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
        payload = {"notebook": _sha256(nb.read_bytes()), "params": s.params,
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
    return rec.get("hash") == step.hash and all((root / o).exists() for o in step.outputs)


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
    for k, v in step.params.items():
        if isinstance(v, str) and _needs_raw(v):
            parts += ["-r", k, v]
        else:
            parts += ["-p", k, "None" if v is None else str(v)]
    return " ".join(shlex.quote(p) for p in parts)


def select_steps(plan: Plan, only: str | list[str] | None) -> list[Step]:
    """Steps whose name matches one of the glob patterns ``only`` (comma-separated string or list); all if None.

    Raises:
        ValueError: no step matches (the message lists the step names).
    """
    if not only:
        return list(plan.steps)
    pats = [p.strip() for p in (only.split(",") if isinstance(only, str) else only) if p.strip()]
    sel = [s for s in plan.steps if any(fnmatch.fnmatchcase(s.name, p) for p in pats)]
    if not sel:
        raise ValueError(f"--only {only!r} matches no step; steps: {[s.name for s in plan.steps]}")
    return sel


def execute_step(step: Step, root: str | Path, kernel: str | None = None, threads: int | None = None
                 ) -> dict[str, Any]:
    """Run one step with papermill (in this process); on success write ``.done.json``.

    ``threads``: if given (and ``OMP_NUM_THREADS`` is not set by the user), the kernel's torch uses that many threads
    (``--jobs N`` gives each of the N parallel kernels ``cores // N``, so they do not oversubscribe the CPU).

    Returns ``{"ok": True, "seconds": ...}`` or ``{"ok": False, ...}`` with the failing cell's index, execution
    count, source, error name and value (picklable, so it crosses process boundaries).
    """
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    root = Path(root)
    if threads is not None and "OMP_NUM_THREADS" not in os.environ:
        os.environ["OMP_NUM_THREADS"] = str(threads)  # inherited by the kernel this worker process starts
    t0 = time.time()
    (root / step.output).parent.mkdir(parents=True, exist_ok=True)
    (root / step.done_dir).mkdir(parents=True, exist_ok=True)
    try:
        pm.execute_notebook(str(root / step.notebook), str(root / step.output), parameters=step.params,
                            cwd=str(root), kernel_name=kernel, progress_bar=False, log_output=False)
    except PapermillExecutionError as e:
        return {"ok": False, "cell_index": e.cell_index, "exec_count": e.exec_count, "source": e.source,
                "ename": e.ename, "evalue": e.evalue, "seconds": time.time() - t0}
    except Exception as e:  # kernel died, notebook unreadable, ...
        return {"ok": False, "ename": type(e).__name__, "evalue": str(e), "seconds": time.time() - t0}
    missing = [o for o in step.outputs if not (root / o).exists()]
    if missing:
        return {"ok": False, "ename": "MissingOutputs", "evalue": f"notebook finished but did not write {missing}",
                "seconds": time.time() - t0}
    secs = time.time() - t0
    atomic_write_json(root / step.done_dir / DONE_FILE, {
        "step": step.name, "hash": step.hash, "notebook": step.notebook, "executed_notebook": step.output,
        "params": step.params, "deps": step.deps, "package_version": __version__, "seconds": round(secs, 2),
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
             dry_run: bool = False, kernel: str | None = None, log: Callable[[str], None] = print
             ) -> dict[str, str]:
    """Run the plan: skip up-to-date steps (unless ``force``), run the others in dependency order, up to ``jobs``
    at a time (separate processes, each driving its own kernel). ``dry_run`` prints one papermill command per
    selected step (dependency order) and runs nothing.

    Returns:
        ``{step name: "ran" | "skipped" | "printed"}``.
    Raises:
        PipelineError: a step failed (message: step, executed notebook path, failing cell); steps finished before
            keep their ``.done.json``. Also raised when a selected step depends on an unselected step that is not
            up to date.
        ValueError: ``jobs`` < 1 or ``only`` matches nothing.
    """
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
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

    def on_result(s: Step, res: dict[str, Any]) -> None:
        if not res["ok"]:
            raise _failure(s, res, root)
        finished.add(s.name)
        status[s.name] = "ran"
        log(f"[done] {s.name} in {res['seconds']:.1f} s")

    if jobs == 1:
        for s in todo:
            log(f"[run]  {s.name} -> {s.output}")
            on_result(s, execute_step(s, root, kernel))
    else:
        queue = list(todo)
        threads = max(1, (os.cpu_count() or 1) // jobs)
        with cf.ProcessPoolExecutor(max_workers=jobs) as pool:
            running: dict[cf.Future, Step] = {}
            error: PipelineError | None = None
            while queue or running:
                while error is None and len(running) < jobs:
                    nxt = next((s for s in queue if ready(s)), None)
                    if nxt is None:
                        break
                    queue.remove(nxt)
                    log(f"[run]  {nxt.name} -> {nxt.output}")
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
    log(f"[pipeline] profile {plan.profile.name}: {sum(v == 'ran' for v in status.values())} ran, "
        f"{sum(v == 'skipped' for v in status.values())} skipped, {time.time() - run_t0:.1f} s")
    return status
