#!/usr/bin/env python
"""Score checkpoints on ImageNet-val, ImageNet-V2 and ImageNet-ReaL; one results table for all of them.

  python validate.py runs/a2/last.pt --imagenet-v2 /data/imagenetv2-matched-frequency-format-val
  python validate.py runs/a2/last.pt --data /datasets/imagenet --imagenet-v2 imagenetv2-matched-frequency.tar.gz
  python validate.py runs/a2/last.pt --data /datasets/imagenet --real-labels real.json
  python validate.py 'runs/a2-seed*' --data /datasets/imagenet --imagenet-v2 ...   # many runs, one table
  python validate.py --model resnet50 --weights resnet50_a2.safetensors --data /datasets/imagenet
  python validate.py runs/a2-sample/last.pt          # no data flags: the built-in sample's val and V2 splits

Checkpoints: files, globs (quote them) or run folders; a run folder contributes its last.pt and best.pt.
ImageNet-V2: the extracted folder (class folders 0..999) or a published .tar.gz (SHA-256 checked, extracted once
into $RSB_CACHE/imagenetv2 or ~/.cache/rsb/imagenetv2). Labels are int(folder name); the layout is checked first.
Test settings: the checkpoint's recipe (data.test_size, test_crop_pct, test_interpolation; ImageNet mean and
std) unless overridden; for --weights, the timm model's own pretrained config (input_size, crop_pct,
interpolation, mean, std). The table (one row per checkpoint, with param_count and top-1/top-5 errors as in
timm's results files) is printed and added to --results-file (default validation/results.csv) and its .json
twin: rows for the same checkpoint and test settings are replaced, earlier rows kept.
rsb.evaluation.table.read_table reads it back. The library behind this command is rsb.evaluation.run.validate.
Under torchrun each process scores its own share of every set. Errors: one sentence, exit status 2.
"""
import argparse
import sys
from pathlib import Path

from rsb.config.schema import CHOICES
from rsb.errors import UserError, exit_status


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoints", nargs="*", metavar="CHECKPOINT",
                   help="checkpoint files, globs or run folders (a folder gives its last.pt and best.pt)")
    p.add_argument("--model", help="timm model name for --weights (default resnet50); its pretrained config gives "
                                    "the test settings")
    p.add_argument("--weights", type=Path, help="local timm-format weights (.safetensors, .pth, .pt) to score "
                                                "instead of / besides checkpoints")
    p.add_argument("--num-classes", type=int, default=1000, help="classes of the --weights model (default 1000)")
    p.add_argument("--data", type=Path, help="ImageNet data (folder, tar shards or parquet files, layout detected) "
                                             "or a val folder: its val split is scored")
    p.add_argument("--val-labels", type=Path, metavar="FILE",
                   help="ground truth of a flat val folder: ILSVRC2012_validation_ground_truth.txt (the devkit's "
                        "meta.mat beside it) or LOC_val_solution.csv; default: found beside val/")
    p.add_argument("--imagenet-v2", type=Path, metavar="PATH",
                   help="ImageNet-V2 folder (matched-frequency, threshold0.7 or top-images) or its .tar.gz")
    p.add_argument("--real-labels", type=Path, metavar="REAL_JSON",
                   help="ImageNet-ReaL real.json: also score val with the reassessed labels (needs --data)")
    p.add_argument("--v2-per-class", type=int, help="images per V2 class folder expected by the layout check "
                                                    "(default 10; the sample's own count for the sample)")
    p.add_argument("--img-size", type=int, help="test resolution (default: the checkpoint's data.test_size, or the "
                                                "model's pretrained input size for --weights)")
    p.add_argument("--crop-pct", type=float, help="test crop ratio (default: the checkpoint's data.test_crop_pct, "
                                                  "or the pretrained crop_pct)")
    p.add_argument("--interpolation", choices=CHOICES["data.test_interpolation"],
                   help="resize interpolation (default: the checkpoint's data.test_interpolation, or the "
                        "pretrained one)")
    p.add_argument("--mean", type=float, nargs=3, metavar=("R", "G", "B"),
                   help="normalisation mean on the 0..1 scale (default: ImageNet's, or the pretrained one)")
    p.add_argument("--std", type=float, nargs=3, metavar=("R", "G", "B"),
                   help="normalisation std on the 0..1 scale (default: ImageNet's, or the pretrained one)")
    p.add_argument("--batch-size", type=int, help="images per batch per process (default 256 on CUDA, 64 on "
                                                  "CPU); halved automatically on CUDA out-of-memory")
    p.add_argument("--workers", type=int, help="decoding processes per device (default: CPUs/device, max 8)")
    p.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda or cuda:N")
    p.add_argument("--amp", action="store_true",
                   help="score under autocast in the run's dtype (bfloat16 for --weights) where the device computes "
                        "it natively (default: float32, as timm's validate.py, so scores compare with published "
                        "ones)")
    p.add_argument("--ema", action="store_true", help="score the checkpoints' EMA weights (runs with train.ema)")
    p.add_argument("--out-dir", type=Path, help="folder for results.csv and results.json (default: ./validation)")
    p.add_argument("--results-file", type=Path, metavar="PATH",
                   help="the table's file, .csv or .json (the other is written beside it); instead of --out-dir. "
                        "An existing table is added to: rows of the same checkpoint and test settings replaced")
    p.add_argument("--quiet", action="store_true", help="no progress lines (results and the table still print)")
    return p.parse_args(argv)


def _results_file(args) -> Path:
    from rsb.evaluation.run import DEFAULT_RESULTS
    from rsb.evaluation.table import CSV_NAME
    if args.out_dir is not None and args.results_file is not None:
        raise UserError("give --out-dir or --results-file, not both.")
    if args.out_dir is not None:
        return args.out_dir / CSV_NAME
    return args.results_file or DEFAULT_RESULTS


def main(argv=None) -> int:
    args = parse_args(argv)

    def run() -> None:
        from rsb.evaluation.run import validate  # after parsing: --help does not wait for torch
        validate(args.checkpoints, weights=args.weights, model=args.model, num_classes=args.num_classes,
                 ema=args.ema, data=args.data, imagenet_v2=args.imagenet_v2, real_labels=args.real_labels,
                 v2_per_class=args.v2_per_class, val_labels=args.val_labels,
                 img_size=args.img_size, crop_pct=args.crop_pct,
                 interpolation=args.interpolation, mean=args.mean, std=args.std, batch_size=args.batch_size,
                 workers=args.workers, device=args.device, amp=args.amp, results_file=_results_file(args),
                 quiet=args.quiet)
    return exit_status(run)


if __name__ == "__main__":
    sys.exit(main())
