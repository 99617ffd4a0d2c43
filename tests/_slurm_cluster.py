"""A one-node Slurm cluster for the tests: munged, slurmctld and slurmd started as root on localhost, everything
they write (config, munge key, state, spool, logs) in one temporary folder, and every daemon stopped by its pid.

Nothing is installed here: CI (.ci/run) installs Debian's slurmctld, slurmd, slurm-client and munge. `missing()`
says what is absent, so the tests can skip with one line (or fail, under RSB_REQUIRE_SLURM=1)."""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "srun", "squeue", "sinfo", "scontrol", "scancel")
PARTITION = "debug"
START_TIMEOUT_S = 60


def _find(name: str) -> str | None:
    # the daemons live in sbin, which a non-login shell's PATH may lack
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/local/sbin")


def missing() -> str | None:
    """One line naming what a Slurm test cluster lacks here, or None when it can be started."""
    absent = [n for n in DAEMONS + CLIENTS if _find(n) is None]
    if absent:
        return (f"no Slurm test cluster: {', '.join(absent)} not found (apt-get install slurmctld slurmd "
                f"slurm-client munge)")
    if os.geteuid() != 0:
        return "no Slurm test cluster: its daemons must be started as root"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def machine_resources() -> dict[str, int]:
    """This machine as slurmd sees it (`slurmd -C`): CPUs, sockets, cores, threads, memory in MB."""
    text = subprocess.run([_find("slurmd"), "-C"], capture_output=True, text=True, check=True).stdout
    found = dict(re.findall(r"(\w+)=(\d+)", text))
    keys = ("CPUs", "SocketsPerBoard", "CoresPerSocket", "ThreadsPerCore", "RealMemory")
    return {k: int(found[k]) for k in keys}


def slurm_conf(root: Path, host: str, ports: tuple[int, int], res: dict[str, int], first_job_id: int) -> str:
    """One controller and one node on localhost with this machine's cores and memory; no cgroups, no accounting
    database (the sweep reads the queue with squeue)."""
    return "\n".join([
        "ClusterName=rsbtest", "MailProg=/bin/true",
        f"SlurmctldHost={host}(127.0.0.1)",
        "SlurmUser=root", "SlurmdUser=root",
        f"SlurmctldPort={ports[0]}", f"SlurmdPort={ports[1]}",
        # cred_expire: Slurm holds a requeued job for this long plus one second (the default, 120 s, made each
        # requeue test wait two minutes); 20 s still leaves a busy machine ample time to launch a job step.
        "AuthType=auth/munge", "CredType=cred/munge",
        f"AuthInfo=socket={root / 'munge' / 'munge.socket'},cred_expire=20",
        f"StateSaveLocation={root / 'state'}", f"SlurmdSpoolDir={root / 'spool'}",
        f"SlurmctldPidFile={root / 'slurmctld.pid'}", f"SlurmdPidFile={root / 'slurmd.pid'}",
        f"SlurmctldLogFile={root / 'slurmctld.log'}", f"SlurmdLogFile={root / 'slurmd.log'}",
        "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none", "MpiDefault=none",
        "JobAcctGatherType=jobacct_gather/none", "AccountingStorageType=accounting_storage/none",
        "JobCompType=jobcomp/none",
        "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core",
        "SchedulerType=sched/backfill", "SchedulerParameters=sched_interval=2,bf_interval=2",
        "ReturnToService=2", "InactiveLimit=0", "Waittime=0", "MinJobAge=600",
        # Room after a time limit for the job to finish its step, save and requeue itself after the warning.
        "KillWait=30", "OverTimeLimit=1",
        # Job ids (and so the DDP ports derived from them) apart from another test cluster on this machine.
        f"FirstJobId={first_job_id}",
        f"NodeName={host} NodeAddr=127.0.0.1 CPUs={res['CPUs']} SocketsPerBoard={res['SocketsPerBoard']} "
        f"CoresPerSocket={res['CoresPerSocket']} ThreadsPerCore={res['ThreadsPerCore']} "
        f"RealMemory={res['RealMemory']} State=UNKNOWN",
        # Several jobs per core: the tests' tiny seeds run side by side on a 2-core machine.
        f"PartitionName={PARTITION} Nodes={host} Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4",
        ""])


class OneNodeCluster:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.conf = self.root / "slurm.conf"
        self.procs: dict[str, subprocess.Popen] = {}
        self.host = socket.gethostname().split(".")[0]

    @property
    def env(self) -> dict[str, str]:
        """What a Slurm client (and the sweep processes the tests start) needs to find this cluster."""
        return {"SLURM_CONF": str(self.conf)}

    def start(self) -> "OneNodeCluster":
        for d in ("munge", "state", "spool"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        os.chmod(self.root / "munge", 0o700)
        key = self.root / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o600)
        ports = (_free_port(), _free_port())
        self.conf.write_text(slurm_conf(self.root, self.host, ports, machine_resources(),
                                        first_job_id=1000 + os.getpid() % 9000 * 100))
        m = self.root / "munge"
        # --force: pytest's temporary folder lies under the world-writable /tmp, which munged otherwise refuses
        self._spawn("munged", [_find("munged"), "--foreground", "--force", f"--socket={m / 'munge.socket'}",
                               f"--key-file={key}", f"--pid-file={m / 'munged.pid'}",
                               f"--seed-file={m / 'munged.seed'}", f"--log-file={m / 'munged.log'}"])
        self._wait(lambda: (m / "munge.socket").exists(), "munged to open its socket", "munge/munged.log")
        self._spawn("slurmctld", [_find("slurmctld"), "-D", "-i", "-f", str(self.conf)])
        self._wait(lambda: self._client(["sinfo", "-h"]).returncode == 0, "slurmctld to answer", "slurmctld.log")
        self._spawn("slurmd", [_find("slurmd"), "-D", "-f", str(self.conf), "-N", self.host])
        self._wait(self.node_idle, "the node to be idle in sinfo", "slurmd.log")
        return self

    def _spawn(self, name: str, cmd: list[str]) -> None:
        log = open(self.root / f"{name}.out", "w")
        self.procs[name] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=self._env())
        log.close()

    def _env(self) -> dict[str, str]:
        return dict(os.environ, **self.env)

    def _client(self, args: list[str], timeout: float = 20) -> subprocess.CompletedProcess:
        return subprocess.run(args, capture_output=True, text=True, env=self._env(), timeout=timeout)

    def _wait(self, ready, what: str, log: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            dead = [n for n, p in self.procs.items() if p.poll() is not None]
            if dead:
                raise RuntimeError(f"{dead[0]} exited while waiting for {what}:\n{self.log_tail(log)}"
                                   f"\n{self.log_tail(dead[0] + '.out')}")
            if ready():
                return
            time.sleep(0.5)
        raise RuntimeError(f"timed out after {START_TIMEOUT_S} s waiting for {what}:\n{self.log_tail(log)}")

    def node_idle(self) -> bool:
        res = self._client(["sinfo", "-h", "-N", "-o", "%t"])
        return res.returncode == 0 and res.stdout.split() == ["idle"]

    def log_tail(self, name: str, lines: int = 20) -> str:
        try:
            return "\n".join((self.root / name).read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return f"({name}: no log)"

    def run(self, *args: str, timeout: float = 30) -> str:
        """A Slurm client command against this cluster; its stdout (a failure raises, with stderr)."""
        res = self._client(list(args), timeout)
        if res.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed: {res.stderr.strip()}")
        return res.stdout

    def cancel_all(self, timeout_s: float = 60) -> None:
        """Cancel every job of this cluster and wait until none is left running (their slurmstepd processes
        end with them)."""
        self._client(["scancel", "--full", "-u", "root"])
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            res = self._client(["squeue", "-h", "-t", "PENDING,RUNNING,COMPLETING,SUSPENDED,CONFIGURING"])
            if res.returncode != 0 or not res.stdout.strip():
                return
            time.sleep(1)

    def stop(self) -> None:
        """Stop every daemon started here, by pid: slurmd, then slurmctld, then munged."""
        try:
            if "slurmctld" in self.procs and self.procs["slurmctld"].poll() is None:
                self.cancel_all()
        finally:
            for name in reversed(list(self.procs)):
                proc = self.procs[name]
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                    try:
                        proc.wait(timeout=20)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()
