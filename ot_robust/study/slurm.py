"""The SLURM executor of the pipeline: ``python -m ot_robust reproduce --profile P --executor slurm``.

Every step of the plan that must run (the steps a local run would run: not up to date, not a committed result nobody
needs) becomes one SLURM job submitted through ``submitit``; a step's dependencies become ``afterok`` job
dependencies. Each job calls :func:`ot_robust.study.pipeline.execute_step` for its step in the project directory, so the
executed notebook, the logs and ``.done.json`` land where a local run writes them (``--status`` and a later local
run see the same state). submitit's own files (sbatch script, stdout/stderr, pickles) go to
``<runs_dir>/slurm/<job id>_*``.

Resources: :data:`DEFAULTS` (per notebook) < the profile's top-level ``slurm:`` mapping (keys: step-name globs such as
``train/*`` or notebook stems such as ``20_evaluate``, in file order) < a method's own ``slurm:`` mapping (its
``train/<exp>`` step) < the command line (``--partition``, ``--account``, ``--qos``, ``--slurm-time``,
``--slurm-gpus``, ``--slurm-cpus``, ``--slurm-mem``, ``--slurm-constraint``). Keys: :data:`RESOURCE_KEYS`.

Pre-emption and time limits: each job asks SLURM for ``SIGUSR1`` ``signal_delay_s`` seconds before its time limit
(``--signal=USR1@...``). SIGUSR1 or SIGTERM (``scancel --signal=USR1 <job>``, a pre-empting scheduler) reaches the
step's Jupyter kernel, where a handler installed at kernel start (an IPython startup file) moves the pipeline's
``--budget`` deadline (``$OT_ROBUST_DEADLINE``) into the past: the Trainer stops at its next epoch end with its
checkpoint saved (:class:`~ot_robust.training.budget.BudgetReached`). submitit's checkpoint hook
(:meth:`StepJob.checkpoint`) waits for that stop, then submitit requeues the job (``scontrol requeue``); the requeued
job runs the same step again, and the trainer resumes from the checkpoint (an evaluation keeps its finished attack
batches). ``signal_delay_s`` must therefore exceed one epoch of the step.

Several GPUs: a step whose resources say ``gpus: N`` with N > 1 (a training step) runs under ``torchrun --standalone
--nproc_per_node N``; each rank runs the notebook in its own kernel (``ot_robust.training.distributed`` picks the
group up from torchrun's environment); rank 0 writes the executed notebook and ``.done.json``, the other ranks write
``<notebook>.rank<r>.ipynb`` only.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..core.utils import atomic_write_json
from .pipeline import DONE_FILE, PipelineError, Plan, Step, execute_step, is_committed, is_done, select_steps
from ..profiles.slurm_schema import check_resources, parse_time
from .signals import DEADLINE_ENV, PROGRESS_ENV

#: per-notebook defaults, sized for the GPU profiles (WRN-28-10 / ResNet-18 on CIFAR): one GPU for training,
#: evaluation and the analysis figures; CPU only for the plan, the solver checks and the table/figure notebooks.
#: ``time`` in minutes. A step the table does not name gets ``"*"``.
DEFAULTS: dict[str, dict[str, Any]] = {
    "00_overview": {"gpus": 0, "cpus": 1, "mem": "4G", "time": 30},
    "01_ot_solvers": {"gpus": 0, "cpus": 4, "mem": "8G", "time": 60},
    "10_train": {"gpus": 1, "cpus": 8, "mem": "32G", "time": 24 * 60},
    "20_evaluate": {"gpus": 1, "cpus": 8, "mem": "32G", "time": 12 * 60},
    "21_audit": {"gpus": 1, "cpus": 8, "mem": "32G", "time": 12 * 60},
    "30_tables_fs": {"gpus": 0, "cpus": 2, "mem": "8G", "time": 30},
    "31_tables_got": {"gpus": 0, "cpus": 2, "mem": "8G", "time": 30},
    "32_tables_otjr": {"gpus": 0, "cpus": 2, "mem": "8G", "time": 30},
    "40_figures_fs": {"gpus": 0, "cpus": 2, "mem": "8G", "time": 30},
    "41_figures_got": {"gpus": 0, "cpus": 2, "mem": "8G", "time": 30},
    "42_figures_otjr": {"gpus": 0, "cpus": 2, "mem": "8G", "time": 30},
    "*": {"gpus": 1, "cpus": 8, "mem": "32G", "time": 4 * 60},
}
SIGNAL_DELAY_S = 600  # SIGUSR1 this long before the time limit: must exceed one epoch of the step
_SIGNAL_NAMES = ("SIGUSR1", "SIGTERM")


class SlurmError(PipelineError):
    """submitit is missing, SLURM refused a job, or (with ``wait``) a job failed."""


def _stem(step: Step) -> str:
    return Path(step.notebook).stem


def step_resources(plan: Plan, step: Step, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The resources of ``step``: :data:`DEFAULTS` < profile ``slurm:`` (globs / notebook stems, in order) < the
    method's ``slurm:`` (training step) < ``overrides`` (command line; None values ignored). ``time`` in minutes."""
    res = dict(DEFAULTS.get(_stem(step), DEFAULTS["*"]))
    res["signal_delay_s"] = SIGNAL_DELAY_S
    for pattern, extra in (getattr(plan.profile, "slurm", None) or {}).items():
        if pattern == _stem(step) or fnmatch.fnmatchcase(step.name, pattern):
            res.update(extra)
    kind, _, exp = step.name.partition("/")
    if kind == "train" and exp in plan.profile.methods:
        res.update(plan.profile.methods[exp].slurm)
    res.update({k: v for k, v in (overrides or {}).items() if v is not None})
    check_resources(res, f"resources of {step.name}")
    res["time"] = parse_time(res["time"])
    return res


@dataclass
class Job:
    """One node of the job graph: the step, its resources, and the steps (submitted in the same run) it waits for."""

    step: Step
    resources: dict[str, Any]
    deps: list[str]


def steps_to_run(plan: Plan, force: bool = False, only: str | list[str] | None = None) -> tuple[list[Step], dict]:
    """The steps a local :func:`~ot_robust.study.pipeline.run_plan` would run (same skip rules), and
    ``{name: "skipped" | "committed"}`` for the others. Raises PipelineError (from the pipeline) like a local run for a
    selected step that needs an unselected step that is not up to date."""
    from .pipeline import PipelineError

    selected = select_steps(plan, only)
    sel = {s.name for s in selected}
    status: dict[str, str] = {}
    todo = []
    for s in selected:
        if not force and is_done(s, plan.root):
            status[s.name] = "skipped"
        else:
            todo.append(s)
    needed: set[str] = set()
    keep = []
    for s in reversed(todo):
        if not force and s.name not in needed and is_committed(s, plan.root):
            status[s.name] = "committed"
            continue
        keep.append(s)
        needed.update(s.deps)
    todo = keep[::-1]
    for s in todo:
        stale = [d for d in s.deps if d not in sel and not is_done(plan[d], plan.root)]
        if stale:
            raise PipelineError(f"step {s.name} needs {stale}, which are not selected by --only and not up to date; "
                                f"run them first or widen --only", step=s.name)
    return todo, status


def job_graph(plan: Plan, force: bool = False, only: str | list[str] | None = None,
              overrides: dict[str, Any] | None = None) -> list[Job]:
    """The jobs a ``--executor slurm`` run submits, in submission (= plan) order: each step that must run, with its
    resources and its dependencies among the submitted steps (a dependency already done needs no job)."""
    todo, _ = steps_to_run(plan, force, only)
    names = {s.name for s in todo}
    return [Job(s, step_resources(plan, s, overrides), [d for d in s.deps if d in names]) for s in todo]


# --------------------------------------------------------------------------------------------- inside the job

_KERNEL_STARTUP = f'''# ot_robust.study.slurm: SIGUSR1/SIGTERM (pre-emption, time limit) -> the --budget \
deadline is now:
# a training step stops at its next epoch end with its checkpoint saved, and the job is requeued. The handler keeps
# no reference to the user namespace (the pipeline's %reset -f between steps clears it).
def _ot_robust_install():
    import os, signal, sys

    def handler(signum, frame, os=os, sys=sys, print=print):
        os.environ["{DEADLINE_ENV}"] = "0"
        print(f"[slurm] signal {{signum}}: stopping at the next epoch end (checkpoint saved)", flush=True,
              file=sys.__stderr__ or sys.stderr)  # the job's log, like the pipeline's progress lines

    for s in ({", ".join("signal." + n for n in _SIGNAL_NAMES)}):
        signal.signal(s, handler)


_ot_robust_install()
del _ot_robust_install
'''


def _kernel_ipython_dir() -> str:
    """An IPYTHONDIR whose startup file installs the pre-emption handler in every kernel this job starts."""
    d = Path(tempfile.mkdtemp(prefix="ot-robust-ipython-"))
    (d / "profile_default" / "startup").mkdir(parents=True)
    (d / "profile_default" / "startup" / "00-ot-robust-slurm.py").write_text(_KERNEL_STARTUP)
    return str(d)


def _children(pid: int) -> list[int]:
    out = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if int((p / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(p.name))
            except (OSError, IndexError, ValueError):
                continue
    return out


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        kids = _children(todo.pop())
        out += kids
        todo += kids
    return out


class StepJob:
    """The callable submitit pickles for one step: runs :func:`~ot_robust.study.pipeline.execute_step` in the project
    directory (under ``torchrun`` when ``nproc`` > 1); a checkpointable submitit job (:meth:`checkpoint`)."""

    def __init__(self, step: Step, root: str, nproc: int = 1, threads: int | None = None,
                 env: dict[str, str] | None = None):
        self.step, self.root, self.nproc, self.threads, self.env = step, str(root), nproc, threads, dict(env or {})
        self._worker: threading.Thread | None = None
        self._result: dict[str, Any] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("_worker", "_result")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _worker=None, _result=None)

    # the step itself ---------------------------------------------------------------------------------------
    def _run(self) -> dict[str, Any]:
        if self.nproc <= 1:
            return execute_step(self.step, self.root, None, self.threads)
        fd, spec = tempfile.mkstemp(prefix="ot-robust-step-", suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump({"step": dataclasses.asdict(self.step), "root": self.root, "threads": self.threads}, f)
        cmd = torchrun_command(self.nproc, spec)
        print("[slurm] " + " ".join(cmd), flush=True)
        # torchrun's agent dies of SIGUSR1 by default: ignore it there (the ranks' kernels install their handler)
        rc = subprocess.call(cmd, cwd=self.root,
                             preexec_fn=lambda: signal.signal(signal.SIGUSR1, signal.SIG_IGN))
        try:
            return json.loads(Path(spec + ".result").read_text())
        except (OSError, ValueError):
            return {"ok": False, "ename": "TorchrunFailed", "evalue": f"torchrun exited with {rc}", "seconds": 0.0}

    def __call__(self) -> str:
        root = Path(self.root)
        os.chdir(root)
        if is_done(self.step, root):
            print(f"[slurm] {self.step.name}: already done ({self.step.done_dir}/{DONE_FILE})", flush=True)
            return "skipped"
        os.environ.update(self.env)
        os.environ["IPYTHONDIR"] = _kernel_ipython_dir()
        os.environ.setdefault(PROGRESS_ENV, "1")
        os.environ.pop(DEADLINE_ENV, None)
        print(f"[slurm] {self.step.name} -> {self.step.output} (job {os.environ.get('SLURM_JOB_ID')}, "
              f"restart {os.environ.get('SLURM_RESTART_COUNT', '0')})", flush=True)

        def work():
            self._result = self._run()

        self._worker = threading.Thread(target=work, daemon=True)
        self._worker.start()
        while self._worker.is_alive():  # join with a timeout: signals reach this (main) thread's handlers
            self._worker.join(0.5)
        res = self._result or {"ok": False, "ename": "NoResult", "evalue": "the step's thread returned nothing"}
        if res.get("ok"):
            print(f"[slurm] {self.step.name} done in {res['seconds']:.1f} s", flush=True)
            return "ran"
        if res.get("budget"):  # stopped at an epoch end by SIGTERM (submitit ignores it): requeue ourselves
            print(f"[slurm] {self.step.name}: stopped at an epoch end, checkpoint saved; requeueing", flush=True)
            _requeue()
            time.sleep(120)  # SLURM ends this run of the job
            sys.exit(-1)
        from .pipeline import _failure

        raise _failure(self.step, res, root)

    # submitit's pre-emption hook -------------------------------------------------------------------------------
    def checkpoint(self, *args: Any, **kwargs: Any):
        """Called by submitit in this job's main process on the pre-emption signal (SIGUSR1, :func:`submit_plan`
        sets ``SUBMITIT_PREEMPT_SIGNAL``): pass the signal on to the step's kernel(s) (they may have it already),
        wait for the step to stop at its epoch end with its checkpoint saved (at most ``signal_delay_s``), and return
        the same job for submitit to requeue; the requeued run resumes from the checkpoint (a finished step is then
        skipped at once)."""
        import submitit

        for pid in _descendants(os.getpid()):
            try:
                os.kill(pid, signal.SIGUSR1)
            except OSError:
                pass
        limit = time.time() + float(os.environ.get("OT_ROBUST_SLURM_SIGNAL_DELAY", SIGNAL_DELAY_S)) - 15
        while self._worker is not None and self._worker.is_alive() and time.time() < limit:
            self._worker.join(0.5)
        print(f"[slurm] {self.step.name}: pre-empted; "
              f"{'stopped at an epoch end' if self._result else 'still running'}: requeueing", flush=True)
        return submitit.helpers.DelayedSubmission(StepJob(self.step, self.root, self.nproc, self.threads, self.env))


def _requeue() -> None:
    jid = os.environ.get("SLURM_ARRAY_JOB_ID") or os.environ.get("SLURM_JOB_ID")
    if jid and os.environ.get("SLURM_ARRAY_TASK_ID"):
        jid = f"{jid}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    subprocess.check_call(["scontrol", "requeue", str(jid)], timeout=60)


def torchrun_command(nproc: int, spec: str) -> list[str]:
    """``torchrun --standalone --nproc_per_node N -m ot_robust.study.slurm <step spec>``: one rank per GPU."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
            "-m", "ot_robust.study.slurm", spec]


def _rank_main(spec: str) -> int:
    """One torchrun rank of a multi-GPU step: rank 0 runs the step itself (notebook, ``.done.json``), the others run
    it into ``<output>.rank<r>.ipynb`` and a scratch ``done_dir``; rank 0 writes the result next to ``spec``."""
    cfg = json.loads(Path(spec).read_text())
    step = Step(**cfg["step"])
    rank = int(os.environ.get("RANK", "0"))
    if rank:
        step = dataclasses.replace(step, output=step.output[:-len(".ipynb")] + f".rank{rank}.ipynb",
                                   done_dir=tempfile.mkdtemp(prefix=f"ot-robust-rank{rank}-"), outputs=[])
    res = execute_step(step, cfg["root"], None, cfg.get("threads"))
    if rank == 0:
        Path(spec + ".result").write_text(json.dumps(res, default=str))
    return 0 if res.get("ok") else 3


# --------------------------------------------------------------------------------------------- submission

def _wait(jobs: dict[str, Any], status: dict[str, str], log: Callable[[str], None], poll_s: float = 5.0) -> None:
    """Block until no job is left in ``squeue`` (requeued jobs count as left), then read each job's result.
    Raises SlurmError naming the first step whose job failed or ended without a result."""
    ids = {job.job_id: name for name, job in jobs.items()}
    failures = 0
    while True:
        out = subprocess.run(["squeue", "-h", "-o", "%i", "-j", ",".join(ids)], capture_output=True, text=True)
        if out.returncode == 0 and not (set(out.stdout.split()) & set(ids)):
            break
        failures = 0 if out.returncode == 0 else failures + 1
        if failures >= 60:
            raise SlurmError(f"squeue failed {failures} times in a row: {out.stderr.strip()[-500:]}; the jobs may "
                             f"still run: watch them with squeue and --status")
        time.sleep(poll_s)
    for name, job in jobs.items():
        if not Path(job.paths.result_pickle).exists():
            raise SlurmError(f"SLURM job {job.job_id} for step {name} ended without a result (cancelled, failed "
                             f"before starting, or a dependency failed)\n  logs: {job.paths.stdout} and "
                             f"{job.paths.stderr}", step=name)
        try:
            job.result()
        except Exception as e:  # noqa: BLE001 - submitit raises its own types
            raise SlurmError(f"SLURM job {job.job_id} for step {name} failed: {str(e).strip()[-2000:]}\n"
                             f"  logs: {job.paths.stdout} and {job.paths.stderr}", step=name) from e
        status[name] = "ran"


#: in the jobs folder: ``{step name: {"job_id", "hash", "submitted"}}`` of every job this executor submitted
REGISTRY_FILE = "submitted.json"


def queued_jobs(job_ids: list[str]) -> set[str]:
    """The ids among ``job_ids`` that SLURM still holds (pending, running, requeued: ``squeue``). Raises SlurmError
    when squeue cannot answer (then a resubmission could run a step twice: the caller refuses)."""
    if not job_ids:
        return set()
    try:
        out = subprocess.run(["squeue", "-h", "-o", "%i", "-j", ",".join(job_ids)], capture_output=True, text=True,
                             timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise SlurmError(f"cannot ask squeue whether jobs {job_ids} are still queued ({e}); nothing submitted") from e
    if out.returncode != 0 and "Invalid job id" not in out.stderr:  # every id gone: squeue says invalid
        raise SlurmError(f"squeue failed ({out.stderr.strip()[-300:]}); nothing submitted, so that no step runs twice")
    return {line.strip() for line in out.stdout.splitlines() if line.strip()} & set(job_ids)


def submit_plan(plan: Plan, force: bool = False, only: str | list[str] | None = None,
                overrides: dict[str, Any] | None = None, wait: bool = False, folder: str | Path | None = None,
                log: Callable[[str], None] = print, executor_cls: Any = None, dry_run: bool = False,
                queue: Callable[[list[str]], set[str]] = queued_jobs) -> dict[str, str]:
    """Submit the plan's steps that must run as SLURM jobs (:func:`job_graph`), dependencies as ``afterok``.

    ``wait``: block until every job has ended and raise SlurmError naming the first failed step (its log files);
    else return right after submitting. ``executor_cls``: submitit's ``SlurmExecutor`` (tests pass another).
    ``dry_run``: print one line per job (step, resources, the steps it waits for) and submit nothing.

    **No step runs twice**: every submitted job is recorded in ``<folder>/submitted.json`` with its step's hash; a
    step whose recorded job is still queued or running (``queue``, :func:`queued_jobs`) with the same hash is not
    submitted again (even with ``force``: ``scancel`` it first), and the steps submitted now that need it wait for
    that job (``afterok``). A step whose job ended (failed, cancelled) or whose hash changed is submitted anew.

    Returns ``{step name: "submitted <job id>" | "in flight <job id>" | "ran" | "skipped" | "committed" |
    "printed"}``.
    """
    if dry_run:
        graph = job_graph(plan, force, only, overrides)
        for node in graph:
            r = node.resources
            log(f"{node.step.name}: {r['gpus']} GPU, {r['cpus']} CPU, {r['mem']}, {r['time']} min"
                + "".join(f", {k} {r[k]}" for k in ("partition", "account", "qos", "constraint") if r.get(k))
                + (f"; afterok {','.join(node.deps)}" if node.deps else ""))
        return {node.step.name: "printed" for node in graph}
    try:
        import submitit
    except ImportError as e:  # the optional extra
        raise SlurmError("--executor slurm needs submitit: pip install 'ot-robust[slurm]' "
                         "(or pip install submitit==1.5.4)") from e
    executor_cls = executor_cls or submitit.SlurmExecutor
    todo, status = steps_to_run(plan, force, only)
    for name, st in status.items():
        log(f"[skip] {name} ({'up to date' if st == 'skipped' else 'committed result'})")
    graph = job_graph(plan, force, only, overrides)
    folder = Path(folder or plan.root / plan.runs_dir / "slurm")
    folder.mkdir(parents=True, exist_ok=True)
    jobs: dict[str, Any] = {}
    registry_path = folder / REGISTRY_FILE
    registry = json.loads(registry_path.read_text()) if registry_path.is_file() else {}
    wanted = {node.step.name for node in graph}
    live = queue(sorted({e["job_id"] for n, e in registry.items() if n in wanted}))
    in_flight = {n: e["job_id"] for n, e in registry.items() if n in wanted and e["job_id"] in live
                 and e["hash"] == plan[n].hash}
    env = {k: v for k, v in os.environ.items() if k.startswith("OT_ROBUST_") and k != DEADLINE_ENV}
    for node in graph:
        if node.step.name in in_flight:
            status[node.step.name] = f"in flight {in_flight[node.step.name]}"
            log(f"[slurm] {node.step.name}: job {in_flight[node.step.name]} for this step is still queued or running; "
                "not submitted again (scancel it to resubmit)")
            continue
        r = node.resources
        ex = executor_cls(folder=str(folder / "%j"), python=sys.executable)
        params = dict(job_name=f"{plan.profile.name}:{node.step.name}", time=r["time"], cpus_per_task=r["cpus"],
                      mem=r["mem"], signal_delay_s=r["signal_delay_s"], nodes=1, ntasks_per_node=1,
                      setup=["export SUBMITIT_PREEMPT_SIGNAL=USR1",
                             f"export OT_ROBUST_SLURM_SIGNAL_DELAY={min(r['signal_delay_s'], r['time'] * 60 // 4)}"])
        if r["gpus"]:
            params["gpus_per_node"] = r["gpus"]
        for k in ("partition", "account", "qos", "constraint"):
            if r.get(k):
                params[k] = r[k]
        deps = [jobs[d].job_id if d in jobs else in_flight[d] for d in node.deps]
        delay = min(r["signal_delay_s"], r["time"] * 60 // 4)  # a short job still gets most of its time
        additional = {"requeue": True, "signal": f"USR1@{delay}"}
        if deps:
            additional["dependency"] = "afterok:" + ":".join(deps)
            additional["kill-on-invalid-dep"] = "yes"
        params["additional_parameters"] = additional
        ex.update_parameters(**params)
        threads = r["cpus"] // r["gpus"] if r["gpus"] > 1 else r["cpus"]
        job = ex.submit(StepJob(node.step, str(plan.root), max(1, r["gpus"]) if r["gpus"] > 1 else 1, threads, env))
        jobs[node.step.name] = job
        status[node.step.name] = f"submitted {job.job_id}"
        registry[node.step.name] = {"job_id": str(job.job_id), "hash": node.step.hash,
                                    "submitted": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        atomic_write_json(registry_path, registry)
        log(f"[slurm] {node.step.name}: job {job.job_id} ({r['gpus']} GPU, {r['cpus']} CPU, {r['mem']}, "
            f"{r['time']} min{', after ' + ','.join(deps) if deps else ''}) -> {node.step.output}")
    log(f"[slurm] profile {plan.profile.name}: {len(jobs)} job(s) submitted, {len(in_flight)} already in flight, "
        f"{len(status) - len(jobs) - len(in_flight)} step(s) up to date; logs in {folder}; "
        f"progress: python -m ot_robust reproduce --profile {plan.profile.name} --status")
    if wait and jobs:
        _wait(jobs, status, log)
        log(f"[slurm] profile {plan.profile.name}: all {len(jobs)} job(s) finished")
    return status


if __name__ == "__main__":  # a torchrun rank (see StepJob._run)
    sys.exit(_rank_main(sys.argv[1]))
