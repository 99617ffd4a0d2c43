"""The training command: `rsb-train`, `python -m rsb.train`, or train.py in a checkout.

  rsb-train --recipe a2 --data /datasets/imagenet          # the A2 procedure on ImageNet
  rsb-train --recipe a2                                    # the same procedure on built-in sample data
  rsb-train --recipe a1 optim.lr=4e-3 sched.epochs=10      # dotted overrides of recipe values
  rsb-train --recipe a3 --print-config                     # the resolved configuration, then exit
  rsb-train --list-recipes                                 # the recipes installed with rsb
  torchrun --nproc_per_node=8 -m rsb.train --recipe a2 --data ...   # data-parallel on 8 GPUs

Flags describe the environment; recipe values change only through overrides.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rsb.command_flags import training_run_flags
from rsb.errors import exit_status

# timm's train.py flags for recipe values, and the override that sets the same thing here. A user who types one
# gets that sentence instead of argparse's bare "unrecognized arguments". Boolean flags map to a full override.
TIMM_FLAGS = {
    "-b": "train.batch_per_device", "--batch-size": "train.batch_per_device", "--epochs": "sched.epochs",
    "--lr": "optim.lr", "--model": "model.name", "--amp": "train.amp=true", "--amp-dtype": "train.amp_dtype",
    "--channels-last": "model.channels_last=true", "--torchcompile": "model.compile=true",
    "--opt": "optim.name", "--opt-eps": "optim.eps", "--weight-decay": "optim.weight_decay",
    "--sched": "sched.name", "--warmup-epochs": "sched.warmup_epochs", "--cooldown-epochs": "sched.cooldown_epochs",
    "--dist-bn": "train.average_bn_stats=true",
    "--warmup-lr": "sched.warmup_lr", "--min-lr": "sched.min_lr", "--seed": "train.seed",
    "--num-classes": "model.num_classes", "--img-size": "data.train_size", "--crop-pct": "data.test_crop_pct",
    "--train-interpolation": "data.train_interpolation", "--drop": "model.drop_rate",
    "--drop-path": "model.drop_path_rate", "--aa": "aug.rand_augment", "--aug-repeats": "aug.repeated_aug",
    "--reprob": "aug.random_erasing", "--mixup": "aug.mixup_alpha", "--cutmix": "aug.cutmix_alpha",
    "--mixup-prob": "aug.mix_prob", "--mixup-switch-prob": "aug.mix_switch_prob", "--smoothing": "loss.label_smoothing",
    "--bce-loss": "loss.name=bce", "--bce-target-thresh": "loss.target_threshold", "--model-ema": "train.ema=true",
    "--model-ema-decay": "train.ema_decay", "--color-jitter": "aug.color_jitter", "--hflip": "aug.hflip",
}
ENVIRONMENT_ALIASES = {"-j": "--workers"}  # timm's spelling of a flag that is an environment flag here
# timm's flags with no equal here, and what rsb has instead.
TIMM_FLAGS_WITHOUT_EQUAL = {
    "--clip-grad": ("in timm it clips the gradient norm a second time, outside the optimizer (dispatch_clip_grad), on "
                    "top of Lamb's own clip (max_grad_norm, 1.0 by default); rsb has no such outside clip for LAMB: "
                    "optim.max_grad_norm sets Lamb's own clip (for adamw and sgd it is the clip before each step)"),
}


def timm_flag_error(argv: list[str]) -> str | None:
    """One sentence for the first timm-style flag in argv, naming the override to use; None when there is none."""
    for i, token in enumerate(argv):
        flag, _, inline = token.partition("=")
        if flag in ENVIRONMENT_ALIASES:
            return f"'{flag}' is timm's spelling; here it is {ENVIRONMENT_ALIASES[flag]}."
        if flag in TIMM_FLAGS_WITHOUT_EQUAL:
            return f"'{flag}' is a timm train.py flag with no equal here: {TIMM_FLAGS_WITHOUT_EQUAL[flag]}."
        if flag not in TIMM_FLAGS:
            continue
        target = TIMM_FLAGS[flag]
        if "=" in target:
            return f"'{flag}' is a timm train.py flag; recipe values change through overrides here: use {target}."
        value = inline or (argv[i + 1] if i + 1 < len(argv) and not argv[i + 1].startswith("-") else "VALUE")
        return (f"'{flag} {value}' is a timm train.py flag; recipe values change through overrides here: use "
                f"{target}={value} (every key and its value: --print-config).")
    return None


def _epilog() -> str:
    from rsb.config.schema import Config, field_types
    sections = ", ".join(name for name in field_types(Config) if name not in ("name", "base"))
    return (f"recipe sections (override any key as section.key=value): {sections}; `--print-config` shows every "
            f"key with its value, `--list-recipes` the installed recipes.")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="rsb-train", description=__doc__, epilog=_epilog(),
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                parents=[training_run_flags()])
    p.add_argument("--output", type=Path, help="run folder (default runs/<recipe>[-sample]); an existing "
                                                "run there is resumed")
    p.add_argument("--resume", type=Path, help="resume from this checkpoint instead of the run folder's last.pt")
    p.add_argument("--resume-changed", action="store_true",
                   help="continue a run whose recipe values differ from these (refused without this flag)")
    p.add_argument("--print-config", action="store_true", help="print the resolved configuration and exit")
    p.add_argument("--list-recipes", action="store_true", help="list the installed recipes and exit")
    p.add_argument("--wandb-project", metavar="NAME",
                   help="log to this Weights & Biases project (sets run.wandb_project; needs wandb)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("overrides", nargs="*", metavar="section.key=value", help="recipe overrides")
    return p.parse_intermixed_args(argv)  # overrides may come before, between and after the flags


def list_recipes() -> str:
    from rsb.config.load import RECIPE_DIR, available_recipes
    names = available_recipes()
    width = max(map(len, names))
    lines = []
    for name in names:
        first = (RECIPE_DIR / f"{name}.yaml").read_text().splitlines()[0].lstrip("# ")
        lines.append(f"{name:{width}s}  {first}")
    return "\n".join(lines) + f"\n(files in {RECIPE_DIR}; a recipe file of your own may start with `base: a2`)\n"


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    habit = timm_flag_error(argv)
    if habit:
        print(f"error: {habit}", file=sys.stderr)
        return 2
    args = parse_args(argv)
    return exit_status(lambda: run(args))


def run(args: argparse.Namespace) -> int:
    if args.list_recipes:
        print(list_recipes(), end="")
        return 0
    from rsb.training import trainer
    from rsb.training.run_config import build_config
    from rsb.training.plan import print_config
    sample = args.data is None
    policy = [f"run.wandb_project={args.wandb_project}"] if args.wandb_project else []
    cfg = build_config(args.recipe, [*args.overrides, *policy], sample)
    if args.print_config:
        print(print_config(cfg, sample, args.device), end="")
        return 0
    name = Path(args.recipe).stem + ("-sample" if sample else "")
    launch = trainer.LaunchOptions(data=args.data, output=args.output or Path("runs") / name,
                                   workers=args.workers, threads=args.threads, device=args.device,
                                   resume=args.resume, resume_changed=args.resume_changed, quiet=args.quiet,
                                   val_labels=args.val_labels)
    summary = trainer.train(cfg, launch)
    if summary.get("final_val_top1") is not None:
        print(f"done: final val top-1 {summary['final_val_top1']:.2f}% "
              f"(best {summary['best_val_top1']:.2f}% at epoch {summary['best_epoch']}); "
              f"outputs in {summary['run_dir']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
