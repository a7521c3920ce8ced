"""The SLURM executor (issue 37, ot_robust/study/slurm.py): the job graph equals the local plan (no SLURM needed); on a
real single-node SLURM started by scripts/slurm_local.sh (installed with apt-get by the fixture, as CI runs it), the
smoke profile runs end to end and leaves the state a local run leaves, and a training job signalled with SIGUSR1 is
requeued, resumes from its checkpoint and ends with the weights of an uninterrupted run."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from ot_robust.study.pipeline import build_plan, execute_step, is_done, run_plan
from ot_robust.profiles import PROFILE_DIR, load_profile
from ot_robust.study.slurm import DEFAULTS, job_graph, step_resources, submit_plan

REPO = Path(__file__).resolve().parents[1]
SMALL = {"gpus": 0, "cpus": 1, "mem": "2G", "time": 20}


# ------------------------------------------------------------------------------------------------ no SLURM needed

@pytest.mark.parametrize("profile", ["smoke", "quick", "cifar10-paper", "got-cifar10-paper"])
def test_job_graph_equals_local_plan(profile, tmp_path):
    plan = build_plan(profile, runs_dir=str(tmp_path / "runs"), fig_dir=str(tmp_path / "fig"), root=REPO)
    graph = job_graph(plan)
    assert [j.step.name for j in graph] == [s.name for s in plan.steps]
    assert {j.step.name: j.deps for j in graph} == {s.name: s.deps for s in plan.steps}
    assert all(j.step.hash == s.hash for j, s in zip(graph, plan.steps))
    for j in graph:  # per-notebook defaults
        assert j.resources["gpus"] == DEFAULTS.get(Path(j.step.notebook).stem, DEFAULTS["*"])["gpus"]


def test_make_reproduce_passes_the_executor_through():
    repo = Path(__file__).resolve().parents[1]
    out = subprocess.run(["make", "-n", "-s", "-C", str(repo), "reproduce", "EXECUTOR=slurm", "PROFILE=smoke",
                          "ARGS=--partition gpu", "STAMP="], capture_output=True, text=True, check=True).stdout
    assert "reproduce --profile smoke --jobs 2 --executor slurm --partition gpu" in out
    local = subprocess.run(["make", "-n", "-s", "-C", str(repo), "reproduce", "STAMP="], capture_output=True,
                           text=True, check=True).stdout
    assert "--executor local" in local  # the default is unchanged: the local executor


def test_resources_profile_method_and_command_line(tmp_path):
    raw = yaml.safe_load((PROFILE_DIR / "smoke.yaml").read_text())
    raw["name"] = "slurmres"
    raw["slurm"] = {"train/*": {"gpus": 2, "time": "2h"}, "20_evaluate": {"mem": "64G"}}
    raw["methods"]["pgd_at"]["slurm"] = {"gpus": 4, "partition": "big"}
    path = tmp_path / "slurmres.yaml"
    path.write_text(yaml.safe_dump(raw))
    plan = build_plan(load_profile(path), runs_dir=str(tmp_path / "runs"), root=REPO)
    r = step_resources(plan, plan["train/standard"])
    assert (r["gpus"], r["time"], r["cpus"]) == (2, 120, DEFAULTS["10_train"]["cpus"])
    assert step_resources(plan, plan["train/pgd_at"])["gpus"] == 4
    assert step_resources(plan, plan["train/pgd_at"])["partition"] == "big"
    assert step_resources(plan, plan["evaluate/otjr"])["mem"] == "64G"
    assert step_resources(plan, plan["train/pgd_at"], {"gpus": 1, "qos": "high", "time": None})["gpus"] == 1
    raw["slurm"] = {"train/*": {"gpu": 2}}
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ValueError, match="unknown key"):
        load_profile(path)


class _FakeExecutor:
    """Records what submit_plan asks submitit for (no SLURM)."""
    submitted: list = []

    def __init__(self, folder, python):
        self.params = {}

    def update_parameters(self, **kw):
        self.params = kw

    def submit(self, fn):
        job = type("J", (), {"job_id": str(100 + len(self.submitted))})()
        self.submitted.append((self.params, fn, job))
        return job


def test_submit_plan_dependencies_are_afterok_job_ids(tmp_path):
    _FakeExecutor.submitted = []
    plan = build_plan("smoke", runs_dir=str(tmp_path / "runs"), fig_dir=str(tmp_path / "fig"), root=REPO)
    status = run_plan(plan, executor=submit_plan, slurm={"overrides": SMALL, "executor_cls": _FakeExecutor,
                                                     "folder": tmp_path / "slurm"}, log=lambda s: None)
    ids = {fn.step.name: job.job_id for _, fn, job in _FakeExecutor.submitted}
    assert set(status) == {s.name for s in plan.steps}
    for params, fn, _ in _FakeExecutor.submitted:
        deps = fn.step.deps
        dep = params["additional_parameters"].get("dependency")
        assert dep == ("afterok:" + ":".join(ids[d] for d in deps) if deps else None)
        assert params["cpus_per_task"] == 1 and "gpus_per_node" not in params


def test_a_step_whose_job_is_still_queued_is_not_submitted_twice(tmp_path):
    """Submitting again while jobs are queued: those steps are left alone (their dependants wait for the queued
    job); once a job has left the queue, or its step's hash changed, the step is submitted anew."""
    _FakeExecutor.submitted = []
    plan = build_plan("smoke", runs_dir=str(tmp_path / "runs"), fig_dir=str(tmp_path / "fig"), root=REPO)
    kw = {"overrides": SMALL, "executor_cls": _FakeExecutor, "folder": tmp_path / "slurm", "log": lambda s: None}
    first = submit_plan(plan, **kw)
    ids = {name: st.split()[-1] for name, st in first.items()}
    registry = json.loads((tmp_path / "slurm" / "submitted.json").read_text())
    assert registry["train/standard"]["job_id"] == ids["train/standard"]
    asked = []

    def queue(job_ids):  # SLURM still holds only the training job of the standard model
        asked.append(sorted(job_ids))
        return {ids["train/standard"]} & set(job_ids)

    n = len(_FakeExecutor.submitted)
    second = submit_plan(plan, force=True, queue=queue, **kw)
    assert second["train/standard"] == f"in flight {ids['train/standard']}"
    assert asked and ids["train/standard"] in asked[0]
    new = {fn.step.name: params for params, fn, _ in _FakeExecutor.submitted[n:]}
    assert "train/standard" not in new and "evaluate/standard" in new
    dep = new["evaluate/standard"]["additional_parameters"]["dependency"]
    assert dep == f"afterok:{ids['train/standard']}"  # waits for the job already queued
    n = len(_FakeExecutor.submitted)
    third = submit_plan(plan, queue=lambda job_ids: set(), **kw)  # every job gone: all submitted again
    assert all(st.startswith("submitted") for st in third.values() if not st.startswith(("skipped", "committed")))
    assert "train/standard" in {fn.step.name for _, fn, _ in _FakeExecutor.submitted[n:]}


# ------------------------------------------------------------------------------------------------ a real SLURM

@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    """A single-node SLURM on localhost (scripts/slurm_local.sh installs slurm-wlm + munge with apt-get)."""
    d = tmp_path_factory.mktemp("slurm")
    res = subprocess.run(["bash", str(REPO / "scripts" / "slurm_local.sh"), "start", str(d)], capture_output=True,
                         text=True, timeout=900)
    if res.returncode == 3:
        pytest.skip("SLURM tests skipped: apt-get could not install slurm-wlm and munge: " + res.stderr.strip())
    assert res.returncode == 0, res.stdout + res.stderr
    old = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(d / "slurm.conf")
    try:
        yield d
    finally:
        subprocess.run(["scancel", "--user=root"], capture_output=True)
        subprocess.run(["bash", str(REPO / "scripts" / "slurm_local.sh"), "stop", str(d)], capture_output=True)
        if old is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = old


@pytest.mark.slurm
@pytest.mark.slow
def test_smoke_profile_on_slurm_matches_a_local_run(slurm_cluster, tmp_path):
    runs, fig = tmp_path / "runs", tmp_path / "fig"
    t0 = time.time()
    res = subprocess.run([sys.executable, "-m", "ot_robust", "reproduce", "--profile", "smoke", "--executor", "slurm",
                          "--runs-dir", str(runs), "--fig-dir", str(fig), "--slurm-gpus", "0", "--slurm-cpus", "1",
                          "--slurm-mem", "3G", "--slurm-time", "20", "--slurm-wait"],
                         cwd=REPO, capture_output=True, text=True, timeout=1500)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    print(f"smoke on SLURM: {time.time() - t0:.0f} s")
    plan = build_plan("smoke", runs_dir=str(runs), fig_dir=str(fig), root=REPO)
    for s in plan.steps:  # the .done.json a local run would write: same hash, same outputs, executed notebook
        rec = json.loads((REPO / s.done_dir / ".done.json").read_text())
        assert rec["hash"] == s.hash and rec["step"] == s.name, s.name
        assert is_done(s, REPO) and (REPO / s.output).is_file(), s.name
    assert (fig / "smoke" / "tables").is_dir()
    # a later local run (and --status) sees the same state: nothing left to run
    assert set(run_plan(plan, log=lambda s: None).values()) == {"skipped"}
    st = subprocess.run([sys.executable, "-m", "ot_robust", "reproduce", "--profile", "smoke", "--status",
                         "--runs-dir", str(runs), "--fig-dir", str(fig)], cwd=REPO, capture_output=True, text=True)
    assert st.returncode == 0, st.stderr


def _one_method_profile(tmp_path: Path, name: str, method: dict, **defaults) -> Path:
    """The smoke profile cut down to one training run of ``method`` (no tables, figures, analysis)."""
    raw = yaml.safe_load((PROFILE_DIR / "smoke.yaml").read_text())
    raw.update(name=name, tables=[], figures=[], notebooks=[], analysis={}, audit={})
    raw["methods"] = {"standard": method}
    raw["eval"].pop("loss_curves", None)
    raw["defaults"].update(defaults)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _preempt_profile(tmp_path: Path) -> Path:
    return _one_method_profile(tmp_path, "slurmpreempt", {"method": "standard", "label": "Standard"},
                               epochs=4, num_train=4000, deterministic=True)


@pytest.mark.slurm
@pytest.mark.slow
def test_signalled_training_job_is_requeued_and_resumes(slurm_cluster, tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # same threads in the job and the local run: identical weights
    prof = load_profile(_preempt_profile(tmp_path))
    plan = build_plan(prof, runs_dir=str(tmp_path / "slurm_runs"), root=REPO)
    step = plan["train/standard"]
    status = submit_plan(plan, only="train/*", overrides=SMALL, log=print)
    job_id = status["train/standard"].split()[-1]
    run_dir = REPO / step.done_dir
    deadline = time.time() + 600
    while not (run_dir / "checkpoint.pt").exists():  # the first epoch has ended
        assert time.time() < deadline, "no checkpoint after 10 min"
        time.sleep(1)
    subprocess.run(["scancel", "--signal=USR1", job_id], check=True)
    t_sig, nudged = time.time(), False
    while True:
        info = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True).stdout
        if "JobState=COMPLETED" in info or "JobState=FAILED" in info or "JobState=CANCELLED" in info:
            break
        if "JobState=PENDING" in info and "Restarts=1" in info and not nudged:  # requeued: SLURM holds a requeued
            subprocess.run(["scontrol", "update", f"JobId={job_id}", "StartTime=now"], capture_output=True)
            nudged = True  # job ~2 min before it is eligible again; let it start now (keeps the test short)
        assert time.time() < t_sig + 900, info
        time.sleep(2)
    assert "JobState=COMPLETED" in info and "Restarts=1" in info, info
    log = "".join(p.read_text() for p in (tmp_path / "slurm_runs" / "slurmpreempt" / "slurm" / job_id).glob("*_log.*"))
    assert "stopping at the next epoch end" in log and "restart 1" in log, log[-3000:]
    assert is_done(step, REPO)
    epochs = [json.loads(line)["epoch"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()
              if line.strip() and "epoch" in json.loads(line)]
    assert sorted(set(epochs)) == sorted(epochs) and len(epochs) == 4, epochs  # resumed, no epoch trained twice
    # an uninterrupted local run of the same step
    local = build_plan(prof, runs_dir=str(tmp_path / "local_runs"), root=REPO)["train/standard"]
    assert execute_step(local, REPO, threads=1)["ok"]
    a = torch.load(run_dir / "model.pt", map_location="cpu", weights_only=False)
    b = torch.load(REPO / local.done_dir / "model.pt", map_location="cpu", weights_only=False)
    sa, sb = a["state_dict"], b["state_dict"]
    assert sa and sa.keys() == sb.keys() and a["epochs"] == b["epochs"]
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    shutil.rmtree(tmp_path / "local_runs", ignore_errors=True)


@pytest.mark.slow
def test_multi_gpu_step_runs_under_torchrun(tmp_path, monkeypatch):
    """``gpus: N`` > 1: the job runs the step under torchrun (here 2 CPU processes, gloo): rank 0 writes the
    executed notebook, the model and .done.json; rank 1 its own notebook copy only; both trained as one DDP group."""
    from ot_robust.study.slurm import StepJob

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    path = _one_method_profile(tmp_path, "slurmddp", {"method": "standard", "label": "Standard", "slurm": {"gpus": 2}},
                               epochs=1, num_train=512, eval_n=32)
    plan = build_plan(load_profile(path), runs_dir=str(tmp_path / "runs"), root=REPO)
    step = plan["train/standard"]
    assert step_resources(plan, step)["gpus"] == 2
    res = StepJob(step, str(REPO), nproc=2, threads=1)._run()
    assert res["ok"], res
    assert is_done(step, REPO)
    rec = json.loads((REPO / step.done_dir / ".done.json").read_text())
    assert rec["hash"] == step.hash and (REPO / step.done_dir / "model.pt").is_file()
    assert (REPO / step.output).is_file()
    assert Path(str(REPO / step.output)[:-len(".ipynb")] + ".rank1.ipynb").is_file()
    assert '"world_size": 2' in (REPO / step.done_dir / "config.json").read_text() + \
        (REPO / step.done_dir / "train_summary.json").read_text()


def test_cli_dry_run_prints_the_job_graph_and_refuses_slurm_options_without_slurm(tmp_path):
    base = [sys.executable, "-m", "ot_robust", "reproduce", "--profile", "got-cifar10-paper",
            "--runs-dir", str(tmp_path / "runs")]
    res = subprocess.run(base + ["--executor", "slurm", "--dry-run", "--partition", "gpu", "--slurm-time", "2h"],
                         cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert "train/pgd_at: 1 GPU, 8 CPU, 32G, 120 min, partition gpu" in lines
    assert "evaluate/pgd_at: 1 GPU, 8 CPU, 32G, 120 min, partition gpu; afterok train/pgd_at" in lines
    res = subprocess.run(base + ["--partition", "gpu"], cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 2 and "--partition: needs --executor slurm" in res.stderr
