"""The checkpoint record: what a checkpoint holds, the one place its layout is written and read.

The trainer writes a record (to_dict, saved by rsb.run.checkpoint_manager); resume, evaluation and export read
one (read, from_dict). The stored keys stay as they have been since format rsb-1, because timm reads two of them:
timm.models.load_checkpoint(model, path) takes "model", and with use_ema=True "state_dict_ema". Files written
before this record (no "format"; EMA weights under "ema"; no schedule, scaler or pixel mean) and bare weights
({"model": ...}) load too; a file of a format this version does not know is refused in one sentence.
Entries added since are stored only when they hold something ("epoch_tally": a mid-epoch checkpoint's running
totals), so a file without them is one of the same format, read with the entry None.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from rsb.errors import UserError
from rsb.run import checkpoint

FORMAT = "rsb-1"
READABLE_FORMATS = (FORMAT,)
# timm's load_state_dict takes "state_dict_ema" or "model_ema" (use_ema, when not None), else "state_dict", else
# "model": our plain weights are what it loads with use_ema=False or without EMA.
EMA_KEY = "state_dict_ema"
OLD_EMA_KEY = "ema"  # checkpoints written before the EMA weights took timm's name
# A record field and the key it is stored under, where the two differ.
_STORED_AS = {"ema": EMA_KEY}
# Fields added after format rsb-1's first files: left out of the stored dict when None.
_STORED_WHEN_SET = {"epoch_tally"}


@dataclass
class CheckpointRecord:
    """A checkpoint's contents. Absent entries (bare weights, older files) are None."""
    model: dict                              # the plain model's state_dict
    optimizer: dict | None = None
    scaler: dict | None = None               # float16's GradScaler only
    ema: dict | None = None                  # the EMA model's state_dict, when the run had train.ema
    schedule: dict | None = None
    pixel_mean: torch.Tensor | None = None   # CIFAR-10's mean image (data.normalize=pixel_mean): scored alone
    epoch: int | None = None                 # completed epochs
    epoch_step: int | None = None            # optimizer steps into the next epoch (a mid-epoch checkpoint)
    epoch_tally: dict | None = None          # that epoch's running totals so far (rsb.training.tally.EpochTally)
    step: int | None = None                  # optimizer steps in all
    best: dict | None = None                 # the best evaluation so far: top1, top5, epoch
    config: dict | None = None               # the resolved config (rsb.config.to_dict)
    derived: dict | None = None              # the run's plan (rsb.training.plan.derived_dict)
    rng: dict | None = None                  # rsb.run.rng_state.capture()
    model_name: str | None = None
    format: str | None = FORMAT
    path: Path | None = None                 # where it was read from (for messages); not stored

    def to_dict(self) -> dict:
        """The dict a checkpoint file stores (rsb.run.checkpoint.save_atomic adds the digest)."""
        return {_STORED_AS.get(name, name): getattr(self, name) for name in _FIELDS
                if name not in _STORED_WHEN_SET or getattr(self, name) is not None}

    @classmethod
    def from_dict(cls, stored: dict, path: str | Path | None = None) -> "CheckpointRecord":
        """The record of a loaded checkpoint dict; a format this version cannot read is a UserError."""
        fmt = stored.get("format")
        if fmt is not None and fmt not in READABLE_FORMATS:
            raise UserError(f"checkpoint {path} has format {fmt!r}, which this version of rsb cannot read (it "
                            f"reads {', '.join(map(repr, READABLE_FORMATS))}); score or resume it with the rsb "
                            f"version that wrote it.")
        values = {name: stored.get(_STORED_AS.get(name, name)) for name in _FIELDS}
        values["ema"] = values["ema"] or stored.get(OLD_EMA_KEY) or None
        return cls(**values, path=Path(path) if path is not None else None)

    @classmethod
    def read(cls, path: str | Path) -> "CheckpointRecord":
        """The record of the checkpoint file at path (loaded safely and digest-checked by rsb.run.checkpoint)."""
        return cls.from_dict(checkpoint.load(path), path)

    def check_resumable(self) -> None:
        """A run continues only from a checkpoint that holds where it was and its optimizer's state."""
        if self.optimizer is None or self.epoch is None or self.step is None:
            raise UserError(f"checkpoint {self.path} holds weights only (no optimizer state or training "
                            f"position), so a run cannot resume from it; resume from a checkpoint train.py wrote, "
                            f"or give a new --output to start a run.")

    def check_same_recipe(self, cfg, resume_changed: bool) -> list[str]:
        """The recipe keys whose values differ between this checkpoint's run and `cfg` (run policy may change); a
        difference is refused unless `resume_changed`. Bare weights (no config) are not compared."""
        from rsb.config.schema import changed_recipe_values
        changed = changed_recipe_values(self.config, cfg) if self.config is not None else []
        if changed and not resume_changed:
            raise UserError(f"{self.path} belongs to a run with other recipe values ({', '.join(changed)}); give a "
                            f"new --output for a new run, or add --resume-changed to continue it with these values.")
        return changed


_FIELDS = [name for name in CheckpointRecord.__dataclass_fields__ if name != "path"]
