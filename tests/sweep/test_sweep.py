"""The seed sweep's parts without training: seed lists, the launch plan, failure reports, statistics,
status, the job's DDP environment and requeue, and the Slurm submission (fake sbatch, no Slurm needed)."""
from __future__ import annotations

import json
import os
import signal
import socket
import stat
from pathlib import Path
from types import SimpleNamespace

import pytest

from rsb.errors import UserError
from rsb.sweep import cli, queue, state, stats
from rsb.sweep import spec as sweepspec
from rsb.runtime.distributed import master_port_for_job as master_port
from rsb.sweep.seedjob import SeedJob, ddp_environment
from rsb.sweep.spec import format_seeds, parse_seeds, run_dir_name
from rsb.sweep.state import collect, format_table, plan_seeds, seed_status

RANK_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@pytest.fixture
def rank_env(monkeypatch):
    """The job sets rank variables in os.environ; give them back afterwards."""
    for k in (*RANK_VARS, "LOCAL_WORLD_SIZE"):
        monkeypatch.setenv(k, "unset")
        monkeypatch.delenv(k)
    return monkeypatch


# ---- seeds -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, seeds", [
    ("1-100", list(range(1, 101))),
    ("1,5,9", [1, 5, 9]),
    ("1-10,20,30-32", list(range(1, 11)) + [20, 30, 31, 32]),
    ("9,1,5,5,3-4", [1, 3, 4, 5, 9]),   # sorted, unique
    (" 7 ", [7]),
    ("0-2", [0, 1, 2]),
])
def test_seed_lists_parse(text, seeds):
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize("text", ["", "a", "1-", "-3", "5-1", "1..4", "1,,2", "1-2-3", "1.5", "1-100000000"])
def test_bad_seed_lists_are_user_errors(text):
    with pytest.raises(UserError, match="seeds"):
        parse_seeds(text)


def test_seed_format_and_run_folder():
    assert format_seeds([7, 1, 2, 3, 9, 10]) == "1-3,7,9-10"
    assert run_dir_name(1) == "seed_0001" and run_dir_name(12345) == "seed_12345"


# ---- statistics against hand-computed values -------------------------------------------------------------------
def test_describe_by_hand():
    d = stats.describe([10, 1, 3, 2, 4])
    # mean 20/5 = 4; squared deviations 36+9+1+4+0 = 50; sample variance 50/4 = 12.5
    assert d["n"] == 5 and d["mean"] == 4.0
    assert d["std"] == pytest.approx(12.5 ** 0.5)
    assert (d["min"], d["max"], d["median"], d["range"]) == (1.0, 10.0, 3.0, 9.0)
    assert stats.describe([4, 1, 3, 2])["median"] == 2.5
    assert stats.describe([5.0])["std"] is None and stats.describe([])["mean"] is None


def test_pearson_and_spearman_by_hand_with_ties():
    x, y = [1, 2, 3, 4, 5], [2, 4, 5, 4, 5]
    # Pearson: dx = -2..2, dy = -2,0,1,0,1: sxy = 6, sxx = 10, syy = 6 -> 6 / sqrt(60)
    assert stats.pearson(x, y) == pytest.approx(6 / 60 ** 0.5)
    # Ties share the mean rank: y ranks 1, 2.5, 4.5, 2.5, 4.5; sxy = 7, sxx = 10, syy = 9 -> 7 / sqrt(90)
    assert stats.spearman(x, y) == pytest.approx(7 / 90 ** 0.5)
    assert stats.spearman([1, 2, 3], [30, 20, 10]) == pytest.approx(-1.0)
    assert stats.pearson([1, 2, 3], [5, 5, 5]) is None and stats.pearson([1], [2]) is None
    assert stats.spearman([4, 4], [1, 2]) is None and stats.spearman([1], [2]) is None
    assert stats.best([3, 1, 2], [80.0, 81.0, 81.0]) == (1, 81.0)  # a tie goes to the lower seed


# ---- the launch plan: finished seeds skipped, interrupted ones resumed -----------------------------------------
def _fake_runs(out: Path) -> None:
    def run(seed):
        d = out / run_dir_name(seed)
        d.mkdir(parents=True)
        return d
    (run(1) / "summary.json").write_text(json.dumps({"final_epoch": 2, "final_val_top1": 50.0}))
    (run(2) / "last.pt").write_bytes(b"checkpoint")                    # interrupted: resumes
    d = run(3)
    (d / "last.pt").write_bytes(b"checkpoint")
    (d / "metrics.csv").write_text("epoch,train_loss\n1,0.7\n")
    (d / "FAILED.json").write_text(json.dumps({"type": "RuntimeError", "message": "boom"}))
    d = run(5)                                                          # a shorter run's summary: not finished
    (d / "summary.json").write_text(json.dumps({"final_epoch": 1}))
    (d / "last.pt").write_bytes(b"checkpoint")
    (run(6) / "RUNNING.json").write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid()}))
    # seed 4: nothing at all; seed 7: queued behind a local launcher that is alive (this process)
    state.save_jobs(out, {7: state.local_record(os.getpid())})


def test_relaunch_skips_finished_and_resumes_interrupted(tmp_path):
    _fake_runs(tmp_path)
    p = plan_seeds(tmp_path, list(range(1, 8)), epochs=2)
    assert p.finished == [1]
    assert p.active == [6, 7]                  # running / queued: never a second job in one folder
    assert p.submit == [2, 3, 4, 5]
    assert p.resume == [2, 3, 5] and p.retry == [3]


def test_launch_dry_run_reports_the_plan(tmp_path, capsys):
    _fake_runs(tmp_path)
    assert cli.main(["launch", "--seeds", "1-7", "--out", str(tmp_path), "--cluster", "local", "--dry-run",
                     "sched.epochs=2"]) == 0
    out = capsys.readouterr().out
    assert "skipping 1 finished seed(s): 1" in out
    assert "leaving 2 queued or running seed(s) alone: 6-7" in out
    assert "starting 1 seed(s): 4" in out
    assert "resuming 3 seed(s) from their last checkpoint: 2-3,5" in out
    assert not (tmp_path / "sweep.json").exists()  # a dry run records nothing


@pytest.mark.parametrize("flags, message", [
    (["--gpus-per-node", "4", "--tasks-per-node", "2"], "one process per GPU"),
    (["--tasks-per-node", "0"], "--tasks-per-node must be positive"),
    (["--timeout-min", "1"], "--signal-before-s 180 is not shorter than the time limit"),
])
def test_bad_slurm_task_and_signal_settings_are_one_sentence_errors(tmp_path, capsys, flags, message):
    assert cli.main(["launch", "--seeds", "1", "--out", str(tmp_path), "--cluster", "local", "--dry-run",
                     *flags]) == 2
    assert message in capsys.readouterr().err


def test_cpu_tasks_per_node_set_the_world_size_and_the_job_tasks():
    from rsb.sweep.slurm import executor_parameters
    ex = sweepspec.Executor(cluster="slurm", gpus_per_node=0, tasks_per_node=2, signal_before_s=20)
    params = executor_parameters(ex, "x")
    assert params["tasks_per_node"] == 2 and "gpus_per_node" not in params
    assert params["slurm_additional_parameters"]["signal"] == "USR2@20"
    assert executor_parameters(sweepspec.Executor(gpus_per_node=4), "x")["tasks_per_node"] == 4
    assert sweepspec.Executor(gpus_per_node=0).processes_per_node == 1


def test_relaunch_with_other_settings_is_refused(tmp_path):
    ex = sweepspec.Executor()
    first = sweepspec.make_spec("a2", [1, 2], ["sched.epochs=2"], None, None, ex)
    sweepspec.save(first, tmp_path)
    same = sweepspec.merge(sweepspec.load(tmp_path), sweepspec.make_spec("a2", [3], ["sched.epochs=2"], None,
                                                                         None, ex), tmp_path)
    assert same.seeds == [1, 2, 3] and same.epochs == 2
    with pytest.raises(UserError, match=r"other recipe values \(sched.epochs\); give a new --out .*--resume-changed"):
        sweepspec.merge(first, sweepspec.make_spec("a2", [1], ["sched.epochs=3"], None, None, ex), tmp_path)
    # --resume-changed continues the sweep with the new values on purpose, and hands the flag to each seed's run.
    on_purpose = sweepspec.Executor(resume_changed=True)
    longer = sweepspec.merge(first, sweepspec.make_spec("a2", [1], ["sched.epochs=3"], None, None, on_purpose),
                             tmp_path)
    assert longer.epochs == 3 and longer.seeds == [1, 2]
    assert SeedJob.from_spec(longer, tmp_path, 1).params["resume_changed"] is True
    assert SeedJob.from_spec(first, tmp_path, 1).params["resume_changed"] is False
    with pytest.raises(UserError, match="recipe"):
        sweepspec.merge(first, sweepspec.make_spec("a3", [1], ["sched.epochs=2"], None, None, on_purpose), tmp_path)
    with pytest.raises(UserError, match="train.seed"):
        sweepspec.make_spec("a2", [1], ["train.seed=4"], None, None, ex)
    assert cli.main(["status", str(tmp_path / "nowhere")]) == 2
    # Run policy is not the study: another log cadence or checkpoint period relaunches, with the new values.
    policy = ["sched.epochs=2", "run.log_every=5", "run.checkpoint_every_minutes=1"]
    relaunch = sweepspec.merge(first, sweepspec.make_spec("a2", [4], policy, None, None, ex), tmp_path)
    assert relaunch.seeds == [1, 2, 4] and relaunch.overrides == policy


# ---- a failing job is reported with its error ------------------------------------------------------------------
def test_failed_job_is_reported_with_its_error(tmp_path, rank_env, capsys):
    empty = tmp_path / "empty_data"
    empty.mkdir()
    out = tmp_path / "sweep"
    s = sweepspec.make_spec("a2", [1, 2], ["model.num_classes=10"], empty, None, sweepspec.Executor())
    sweepspec.save(s, out)
    assert cli.main(["job", str(out), "1"]) == 2          # the job's UserError: one sentence, exit 2
    assert "has no 'train' folder" in capsys.readouterr().err
    failed = json.loads((out / "seed_0001" / "FAILED.json").read_text())
    assert failed["type"] == "UserError" and "has no 'train' folder" in failed["message"]
    assert failed["traceback"] and not (out / "seed_0001" / "RUNNING.json").exists()
    _, st = collect(out)
    assert [(x.seed, x.state) for x in st] == [(1, "failed"), (2, "missing")]
    assert "has no 'train' folder" in st[0].reason
    table = format_table(s, out, st)
    assert "failed" in table and "UserError: data folder" in table and "1 failed, 1 missing" in table
    assert cli.main(["status", str(out), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["counts"]["failed"] == 1 and doc["seeds"][0]["reason"].startswith("UserError")
    # A relaunch retries it and keeps the last error beside.
    state.retire_failed(out / "seed_0001")
    assert (out / "seed_0001" / "FAILED.previous.json").is_file()
    assert plan_seeds(out, [1], 2).submit == [1]


def test_status_states_from_files_and_scheduler(tmp_path):
    d = tmp_path / "r"
    d.mkdir()
    (d / "metrics.csv").write_text("epoch,train_loss\n1,0.7\n2,0.6\n")
    (d / "last.pt").write_bytes(b"x")
    slurm = {"cluster": "slurm", "job_id": "77_3"}
    assert seed_status(3, d, 10, slurm, "RUNNING").text == "running (epoch 3 of 10)"
    assert seed_status(3, d, 10, slurm, "PENDING").state == "queued"
    oom = seed_status(3, d, 10, slurm, "OUT_OF_MEMORY")
    assert oom.state == "failed" and "OUT_OF_MEMORY" in oom.reason
    assert seed_status(3, d, 10, slurm, "TIMEOUT").state == "interrupted"
    gone = seed_status(3, d, 10, slurm, state.NOT_FOUND)
    assert gone.state == "interrupted" and "unknown to Slurm" in gone.reason
    assert seed_status(3, d, 10, slurm, None).state == "queued"  # no sacct: a live job is assumed
    assert seed_status(3, d, 10, None, None).state == "interrupted"  # progress but no job: relaunch resumes
    dead = {"cluster": "local", "host": socket.gethostname(), "launcher_pid": 2 ** 22 + 12345}
    assert seed_status(3, d, 10, dead, None).state == "interrupted"
    assert queue.parse_states("5_[2-4%2]|PENDING\n5_1|RUNNING\n6|CANCELLED by 12\n") == {
        "5_2": "PENDING", "5_3": "PENDING", "5_4": "PENDING", "5_1": "RUNNING", "6": "CANCELLED"}


# ---- the job: DDP variables from submitit, requeue on submitit's signal ----------------------------------------
class _FakeJobEnv:
    global_rank, num_tasks, local_rank, hostnames, raw_job_id = 5, 8, 1, ["node1", "node2"], "4321"


def test_ddp_environment_from_submitit():
    env = ddp_environment(_FakeJobEnv())
    assert env == {"RANK": "5", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "MASTER_ADDR": "node1",
                   "MASTER_PORT": str(master_port("4321"))}
    assert master_port("4321") == 20000 + 4321


def test_job_under_slurm_sets_ranks(rank_env):
    pytest.importorskip("submitit")
    for k, v in dict(SUBMITIT_EXECUTOR="slurm", SLURM_JOB_ID="4321", SLURM_NTASKS="8", SLURM_PROCID="5",
                     SLURM_LOCALID="1", SLURM_JOB_NODELIST="gpu[7-8]", SLURM_JOB_NUM_NODES="2",
                     SLURM_NODEID="1").items():
        rank_env.setenv(k, v)
    assert SeedJob("/x", 1, "a2", [], None)._environment() == (5, 8, "4321", signal.SIGUSR2)
    assert [os.environ[k] for k in RANK_VARS] == ["5", "8", "1", "gpu7", str(20000 + 4321)]


def test_a_local_job_hands_its_cpu_settings_to_the_trainer(tmp_path, rank_env):
    import rsb.training.trainer
    given = []
    rank_env.setattr(rsb.training.trainer, "train", lambda cfg, launch: given.append(launch) or {})
    job = SeedJob.from_spec(SimpleNamespace(recipe="a2", overrides=[], data=None, val_labels=None,
                                            executor=sweepspec.Executor(workers=2, threads=1)), tmp_path, 3,
                            cpu_share=4)
    job()
    assert (given[0].workers, given[0].threads, given[0].cpu_share) == (2, 1, 4)
    # a single process: no rank variables of an enclosing torchrun divide its CPUs
    assert (os.environ["WORLD_SIZE"], os.environ["LOCAL_WORLD_SIZE"]) == ("1", "1")


def test_job_requeues_through_submitit_on_its_signal(tmp_path, rank_env):
    """Inside a submitit job: the trainer catches USR2, saves, restores submitit's handler and exits with
    128 + USR2; the job hands the signal to submitit, whose handler calls checkpoint(), writes the resubmission
    and requeues (a local job: exit status 144). A SIGTERM stop (scancel) is not requeued."""
    submitit = pytest.importorskip("submitit")
    import rsb.runtime.signals
    import rsb.training.trainer
    folder = tmp_path / "submitit"
    folder.mkdir()
    for k, v in dict(SUBMITIT_EXECUTOR="local", SUBMITIT_FOLDER=str(folder), SUBMITIT_LOCAL_JOB_ID="77",
                     SUBMITIT_LOCAL_NTASKS="1", SUBMITIT_LOCAL_GLOBALID="0", SUBMITIT_LOCAL_LOCALID="0",
                     SUBMITIT_LOCAL_JOB_NUM_NODES="1", SUBMITIT_LOCAL_NODEID="0").items():
        rank_env.setenv(k, v)
    job = SeedJob(str(tmp_path), 3, "a2", ["sched.epochs=2"], None)
    env = submitit.JobEnvironment()
    resubmitted = env.paths.submitted_pickle
    old = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGCONT, signal.SIGUSR2, signal.SIGINT)}
    try:
        for sig, exit_code in ((signal.SIGUSR2, 144), (signal.SIGTERM, 128 + signal.SIGTERM)):
            delayed = submitit.helpers.DelayedSubmission(job)
            delayed.set_timeout(60, 3)
            env._handle_signals(env.paths, delayed)  # what submitit does before calling the job

            def trainer_stopped_by(cfg, env_, sig=sig):
                assert cfg.train.seed == 3 and env_.output == tmp_path / "seed_0003"
                assert (env_.output / "RUNNING.json").is_file()
                flag = rsb.runtime.signals.StopFlag()
                flag.install()
                os.kill(os.getpid(), sig)  # as Slurm's signal before the time limit, or scancel's SIGTERM
                flag.restore()
                raise SystemExit(128 + flag.signum)
            rank_env.setattr(rsb.training.trainer, "train", trainer_stopped_by)
            with pytest.raises(SystemExit) as stop:
                job()
            assert stop.value.code == exit_code
            assert not (tmp_path / "seed_0003" / "RUNNING.json").exists()
            assert not (tmp_path / "seed_0003" / "FAILED.json").exists()  # a stop is not a failure
            assert resubmitted.exists() == (sig == signal.SIGUSR2)
            if resubmitted.exists():
                again = submitit.helpers.DelayedSubmission.load(resubmitted)
                assert isinstance(again.function, SeedJob) and again.function.params == job.params
                resubmitted.unlink()
    finally:
        for s, h in old.items():
            signal.signal(s, h)


# ---- Slurm: the submission file submitit writes, with a fake sbatch --------------------------------------------
def _fake_slurm(bin_dir: Path, record: Path, sacct_out: str) -> None:
    bin_dir.mkdir()
    scripts = {
        "sbatch": (f'#!/bin/sh\ncat "$1" >> "{record}"\necho "----" >> "{record}"\n'
                   'echo "Submitted batch job 1234"\n'),
        "srun": "#!/bin/sh\nexit 0\n",
        "squeue": "#!/bin/sh\nexit 1\n",  # a controller that does not answer: the states come from sacct
        "sacct": f"#!/bin/sh\nprintf '{sacct_out}'\n",
    }
    for name, text in scripts.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod((bin_dir / name).stat().st_mode | stat.S_IEXEC)


def test_slurm_array_job_parameters(tmp_path, monkeypatch, capsys):
    submitit = pytest.importorskip("submitit")
    record = tmp_path / "sbatch_input.txt"
    _fake_slurm(tmp_path / "bin", record, "1234_0|PENDING\\n1234_1|RUNNING\\n1234_2|FAILED\\n")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    out = tmp_path / "sweep"
    assert cli.main(["launch", "--recipe", "a2", "--seeds", "1-3", "--out", str(out), "--partition", "gpu",
                     "--nodes", "2", "--gpus-per-node", "4", "--cpus-per-task", "10", "--mem-gb", "64",
                     "--timeout-min", "120", "--max-parallel", "2", "--slurm", "account=proj",
                     "sched.epochs=2"]) == 0                 # --cluster auto finds the (fake) sbatch and srun
    assert "submitted 3 job(s) (1234_0 .. 1234_2)" in capsys.readouterr().out
    text = record.read_text()
    for line in ["#SBATCH --partition=gpu", "#SBATCH --nodes=2", "#SBATCH --gpus-per-node=4",
                 "#SBATCH --ntasks-per-node=4", "#SBATCH --cpus-per-task=10", "#SBATCH --mem=64GB",
                 "#SBATCH --time=120", "#SBATCH --array=0-2%2", "#SBATCH --signal=USR2@180",
                 "#SBATCH --job-name=rsb-a2-sweep", "#SBATCH --account=proj"]:
        assert line in text.splitlines(), line
    assert "export PYTHONPATH=" in text and "srun" in text
    assert json.loads((out / "sweep.json").read_text())["executor"]["partition"] == "gpu"
    assert {s: r["job_id"] for s, r in state.load_jobs(out).items()} == {1: "1234_0", 2: "1234_1", 3: "1234_2"}
    # Each array task runs a pickled SeedJob for its seed, checkpointable for requeueing.
    delayed = submitit.helpers.DelayedSubmission.load(out / "submitit" / "1234_1" / "1234_1_submitted.pkl")
    fn = delayed.function
    assert isinstance(fn, SeedJob) and fn.params["seed"] == 2 and fn.params["overrides"] == ["sched.epochs=2"]
    assert fn.run_dir == out.resolve() / "seed_0002" and hasattr(fn, "checkpoint")
    # Status reads the scheduler's states; a relaunch submits only the seed whose job failed.
    _, st = collect(out)
    assert [s.state for s in st] == ["queued", "running", "failed"]
    assert cli.main(["launch", "--recipe", "a2", "--seeds", "1-3", "--out", str(out), "--cluster", "slurm",
                     "sched.epochs=2"]) == 0
    captured = capsys.readouterr().out
    assert "leaving 2 queued or running seed(s) alone: 1-2" in captured and "starting 1 seed(s): 3" in captured
    last = text_after_last_submission(record.read_text())
    assert "--array" not in last  # a single seed is a plain job


def text_after_last_submission(text: str) -> str:
    parts = [p for p in text.split("----\n") if p.strip()]
    return parts[-1]
