"""Where a run's numbers go besides metrics.csv: TensorBoard (when installed) and Weights & Biases (when
`run.wandb_project` names a project), both per step every `run.log_every` steps and per epoch. Rank 0 only.

A W&B run's id is kept in the run folder (wandb_run_id.txt), so a resumed run continues the same W&B run.
WANDB_MODE=offline (W&B's own variable) writes it under the run folder's wandb/ without any network.
"""
from __future__ import annotations

from pathlib import Path

from rsb.run import folder as run_folder
from rsb.errors import UserError


class Trackers:
    def __init__(self, run_dir: Path, enabled: bool, wandb_project: str = "", config: dict | None = None):
        self.tb = self.wandb = None
        if not enabled:
            return
        run_dir = Path(run_dir)
        try:
            from torch.utils.tensorboard import SummaryWriter
            self.tb = SummaryWriter(str(run_dir / run_folder.TENSORBOARD))
        except ImportError:  # tensorboard is optional
            pass
        if wandb_project:
            self.wandb = _wandb_run(run_dir, wandb_project, config or {})

    def step(self, step: int, values: dict) -> None:
        """Per-step values (train loss, learning rate, throughput) at global optimizer step `step`."""
        if self.tb is not None:
            for k, v in values.items():
                self.tb.add_scalar(f"train/{k}", v, step)
        if self.wandb is not None:
            self.wandb.log({f"train/{k}": v for k, v in values.items()}, step=step)

    def epoch(self, step: int, row: dict) -> None:
        """An epoch's metrics.csv row, logged at the global step the epoch ended on."""
        values = {k: v for k, v in row.items() if k != "epoch" and isinstance(v, (int, float))}
        if self.tb is not None:
            for k, v in values.items():
                self.tb.add_scalar(f"epoch/{k}", v, row["epoch"])
            self.tb.flush()
        if self.wandb is not None:
            self.wandb.log({"epoch": row["epoch"], **{f"epoch/{k}": v for k, v in values.items()}}, step=step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
        if self.wandb is not None:
            self.wandb.finish()


def _wandb_run(run_dir: Path, project: str, config: dict):
    try:
        import wandb
    except ImportError:
        raise UserError(f"run.wandb_project is '{project}' but wandb is not installed; pip install wandb, or "
                        f"set run.wandb_project= to log without it.") from None
    id_file = run_dir / run_folder.WANDB_RUN_ID
    run_id = id_file.read_text().strip() if id_file.is_file() else None  # None: W&B picks one, kept below
    run = wandb.init(project=project, id=run_id, resume="allow", dir=str(run_dir), name=run_dir.name,
                     config=config)
    if run_id is None:
        run_folder.write_text(id_file, run.id + "\n")
    return run
