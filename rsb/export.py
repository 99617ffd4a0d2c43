"""Export a run's weights for sharing in timm's Hub format: a folder with config.json and model.safetensors that
`timm.create_model('local-dir:FOLDER', pretrained=True)` loads, and optionally the same pushed to the Hub.

  python -m rsb.export runs/a2 exported/resnet50-a2                   # best.pt if the run has one, else last.pt
  python -m rsb.export runs/a2 exported/resnet50-a2-ema --ema         # the EMA weights (runs with train.ema)
  python -m rsb.export runs/a2 exported/a2-epoch100 --checkpoint epoch_0100.pt
  python -m rsb.export runs/a2 exported/resnet50-a2 --push-to-hub me/resnet50-a2   # after `hf auth login`

config.json's pretrained_cfg holds the run's test settings (data.test_size, test_crop_pct, test_interpolation) and
the normalisation it trained with, so timm's resolve_data_config(model=...) evaluates the weights as the recipe
does. Both the folder and the upload are written by timm (save_for_hf, push_to_hf_hub). Errors: one sentence,
exit status 2.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models import push_to_hf_hub, save_for_hf

from rsb.run import folder as run_folder
from rsb.errors import UserError, exit_status
from rsb.evaluation.checkpoints import Scorable, from_checkpoint


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="the run folder (train.py --output)")
    p.add_argument("out_dir", type=Path, metavar="OUT_DIR", help="folder to write (must not exist, or be empty)")
    p.add_argument("--ema", action="store_true", help="export the EMA weights (runs with train.ema=true)")
    p.add_argument("--checkpoint", metavar="NAME",
                   help=f"checkpoint file in RUN_DIR (default {run_folder.BEST} if present, else {run_folder.LAST})")
    p.add_argument("--push-to-hub", metavar="REPO", help="also upload to this Hugging Face Hub repository "
                                                         "(created if missing; needs a token with write access)")
    return p.parse_args(argv)


def checkpoint_in(run_dir: Path, name: str | None = None) -> Path:
    """The checkpoint to export: `name` in the run folder, else best.pt, else last.pt."""
    if not run_dir.is_dir():
        raise UserError(f"run folder {run_dir} does not exist.")
    names = [name] if name else [run_folder.BEST, run_folder.LAST]
    for candidate in names:
        if (run_dir / candidate).is_file():
            return run_dir / candidate
    raise UserError(f"run folder {run_dir} has no {' or '.join(names)}; give the name of one of its checkpoints "
                    f"with --checkpoint.")


def hub_configs(item: Scorable, ema: bool) -> tuple[dict, dict]:
    """timm's data_config (the preprocessing the weights are evaluated with) and model_config (what else
    config.json says) for an exported checkpoint."""
    s = item.settings
    # rsb.data.batch normalises with timm's ImageNet mean and std; stating them keeps the export self-contained.
    data_config = {"input_size": (3, s.size, s.size), "crop_pct": s.crop_pct, "interpolation": s.interpolation,
                   "mean": IMAGENET_DEFAULT_MEAN, "std": IMAGENET_DEFAULT_STD}
    # The model's default pretrained_cfg names timm's own published weights (e.g. tag a1_in1k); the tag says
    # which recipe these come from instead. timm's loader ignores the extra "rsb" entry (provenance for readers).
    model_config = {"pretrained_cfg": {"tag": item.meta["recipe"]},
                    "rsb": {"recipe": item.meta["recipe"], "checkpoint": item.source.name,
                            "epoch": item.meta["epoch"], "weights": "ema" if ema else "model"}}
    return data_config, model_config


def _refuse_occupied(out_dir: Path) -> None:
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise UserError(f"output folder {out_dir} exists and is not empty; choose a new folder or empty it.")


def export(run_dir: Path, out_dir: Path, ema: bool = False, checkpoint_name: str | None = None,
           push_to: str | None = None) -> Path:
    """Write the run's weights to out_dir as timm's save_for_hf does (and upload them to `push_to`); the
    folder appears whole or not at all. Returns the checkpoint exported."""
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    path = checkpoint_in(run_dir, checkpoint_name)
    _refuse_occupied(out_dir)
    item = from_checkpoint(path, ema=ema)
    data_config, model_config = hub_configs(item, ema)
    try:
        with run_folder.atomic_folder(out_dir) as tmp:  # out_dir is missing or empty (checked above)
            save_for_hf(item.model, tmp, model_config=model_config, data_config=data_config,
                        safe_serialization=True)
            for f in tmp.iterdir():  # safetensors writes owner-only files; an export is for sharing
                f.chmod(0o644)
    except OSError as e:
        raise UserError(f"cannot write {out_dir} ({e.strerror or e}); check the path and free disk space.") from None
    if push_to:
        try:
            push_to_hf_hub(item.model, push_to, commit_message=f"Add rsb {item.meta['recipe']} weights",
                           model_config=model_config, data_config=data_config, safe_serialization=True)
        except OSError as e:  # huggingface_hub's HTTP, missing-token and offline errors are all OSErrors
            reason = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
            raise UserError(f"{out_dir} is written but pushing it to the Hub repository {push_to} failed "
                            f"({reason}); log in with `hf auth login` using a token with write access.") from None
    return path


def main(argv=None) -> int:
    args = parse_args(argv)
    return exit_status(lambda: _export_and_say(args))


def _export_and_say(args: argparse.Namespace) -> None:
    path = export(args.run_dir, args.out_dir, args.ema, args.checkpoint, args.push_to_hub)
    weights = "EMA weights" if args.ema else "weights"
    print(f"exported the {weights} of {path} to {args.out_dir}; load them with "
          f"timm.create_model('local-dir:{args.out_dir}', pretrained=True)")
    if args.push_to_hub:
        print(f"pushed to the Hub repository {args.push_to_hub}; load it with "
              f"timm.create_model('hf-hub:{args.push_to_hub}', pretrained=True)")


if __name__ == "__main__":
    sys.exit(main())
