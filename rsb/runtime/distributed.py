"""Process-group set-up from torchrun's variables or, without torchrun, from Slurm's; rank helpers (the CPU
budget: rsb.runtime.cpus; the stop flag: rsb.runtime.signals)."""
from __future__ import annotations

import datetime
import os
import re
import subprocess
from dataclasses import dataclass

import torch
import torch.distributed as dist

from rsb.errors import UserError


@dataclass(frozen=True)
class DistContext:
    """This process's place in its job, as init() found it: its rank among world_size processes, its rank on
    this node and its device."""
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _slurm_master_addr() -> str:
    nodes = os.environ.get("SLURM_JOB_NODELIST") or os.environ.get("SLURM_NODELIST", "")
    try:
        out = subprocess.run(["scontrol", "show", "hostnames", nodes], capture_output=True, text=True, check=True)
        return out.stdout.split()[0]
    except (OSError, subprocess.CalledProcessError, IndexError):
        return nodes.split(",")[0].split("[")[0] or "127.0.0.1"


def master_port_for_job(job_id: str) -> int:
    """A port every task of one job derives alike, different between concurrent jobs."""
    digits = re.sub(r"\D", "", str(job_id)) or "0"
    return 20000 + int(digits) % 20000


def _under_torchrun() -> bool:
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


def _under_slurm_tasks() -> bool:
    return int(os.environ.get("SLURM_NTASKS", "1")) > 1 and "SLURM_PROCID" in os.environ


def env_rank_world() -> tuple[int, int, int]:
    """(rank, world_size, local_rank) from torchrun, else from Slurm tasks, else a single process."""
    if _under_torchrun():
        return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0))
    if _under_slurm_tasks():
        return int(os.environ["SLURM_PROCID"]), int(os.environ["SLURM_NTASKS"]), int(os.environ.get("SLURM_LOCALID", 0))
    return 0, 1, 0


def slurm_rendezvous() -> dict[str, str]:
    """The env:// rendezvous variables for Slurm tasks started without torchrun: the job's first node and a port
    every task of the job derives alike. Empty under torchrun or without Slurm tasks."""
    if _under_torchrun() or not _under_slurm_tasks():
        return {}
    return {"MASTER_ADDR": _slurm_master_addr(),
            "MASTER_PORT": str(master_port_for_job(os.environ.get("SLURM_JOB_ID", "0")))}


def pick_device(requested: str, local_rank: int) -> torch.device:
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError("--device cuda was asked for but no CUDA GPU is visible; use --device cpu.")
        return torch.device("cuda", local_rank if requested == "cuda" else int(requested.split(":")[1]))
    if requested != "cpu":
        raise UserError(f"--device must be auto, cpu, cuda or cuda:N, got '{requested}'.")
    return torch.device("cpu")


def _attempt_store(world: int, timeout: datetime.timedelta):
    """Under torchrun, the launcher's key-value store outlives a restart (--max-restarts) and still holds the
    previous attempt's peer addresses, which gloo then tries to connect to. Keys prefixed by the attempt number
    keep each attempt apart. None (the default env:// store) outside torchrun."""
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        return None
    store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), world, is_master=False,
                          timeout=timeout)
    return dist.PrefixStore(f"rsb/attempt{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}", store)


def init(requested_device: str = "auto", timeout_s: int = 600) -> DistContext:
    rank, world, local = env_rank_world()
    device = pick_device(requested_device, local)
    if world > 1 and not dist.is_initialized():
        for key, value in slurm_rendezvous().items():
            os.environ.setdefault(key, value)
        if device.type == "cuda":
            torch.cuda.set_device(device)
        # A bounded timeout: if a peer dies, the others fail their next collective instead of hanging forever.
        timeout = datetime.timedelta(seconds=timeout_s)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=rank, world_size=world,
                                timeout=timeout, store=_attempt_store(world, timeout))
    return DistContext(rank, world, local, device)


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    if dist.is_initialized():
        dist.all_reduce(t)
    return t


def cleanup() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
