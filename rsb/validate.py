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
Test settings: the checkpoint's recipe (data.test_size, test_crop_pct, test_interpolation) unless overridden;
224 / 0.95 / bicubic for --weights. The table (one row per checkpoint) is printed and written to
<out-dir>/results.csv and results.json (replaced if present); rsb.evaluation.table.read_table reads it back.
Under torchrun each process scores its own share of every set. Errors: one sentence, exit status 2.
"""
import argparse
import sys
from pathlib import Path

INTERPOLATIONS = ("bicubic", "bilinear", "nearest", "lanczos", "box", "hamming")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoints", nargs="*", metavar="CHECKPOINT",
                   help="checkpoint files, globs or run folders (a folder gives its last.pt and best.pt)")
    p.add_argument("--model", help="timm model name for --weights (default resnet50)")
    p.add_argument("--weights", type=Path, help="local timm-format weights (.safetensors, .pth, .pt) to score "
                                                "instead of / besides checkpoints")
    p.add_argument("--num-classes", type=int, default=1000, help="classes of the --weights model (default 1000)")
    p.add_argument("--data", type=Path, help="ImageNet folder: its val/ split (<wnid> class folders) is scored")
    p.add_argument("--imagenet-v2", type=Path, metavar="PATH",
                   help="ImageNet-V2 folder (matched-frequency, threshold0.7 or top-images) or its .tar.gz")
    p.add_argument("--real-labels", type=Path, metavar="REAL_JSON",
                   help="ImageNet-ReaL real.json: also score val with the reassessed labels (needs --data)")
    p.add_argument("--v2-per-class", type=int, help="images per V2 class folder expected by the layout check "
                                                    "(default 10; the sample's own count for the sample)")
    p.add_argument("--img-size", type=int, help="test resolution (default: the checkpoint's data.test_size)")
    p.add_argument("--crop-pct", type=float, help="test crop ratio (default: the checkpoint's data.test_crop_pct)")
    p.add_argument("--interpolation", choices=INTERPOLATIONS,
                   help="resize interpolation (default: the checkpoint's data.test_interpolation)")
    p.add_argument("--batch-size", type=int, help="images per batch per process (default 256 on CUDA, 64 on "
                                                  "CPU); halved automatically on CUDA out-of-memory")
    p.add_argument("--workers", type=int, help="decoding processes per device (default: CPUs/device, max 8)")
    p.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda or cuda:N")
    p.add_argument("--amp", action="store_true",
                   help="score under autocast in the run's dtype (bfloat16 for --weights) where the device computes "
                        "it natively (default: float32, as timm's validate.py, so scores compare with published "
                        "ones)")
    p.add_argument("--ema", action="store_true", help="score the checkpoints' EMA weights (runs with train.ema)")
    p.add_argument("--out-dir", type=Path, default=Path("validation"),
                   help="folder for results.csv and results.json (default: ./validation)")
    p.add_argument("--quiet", action="store_true", help="no progress lines (results and the table still print)")
    return p.parse_args(argv)


def _sources(args):
    """Yield (description, loader) pairs lazily: one model in memory at a time."""
    from rsb.errors import UserError
    from rsb.evaluation import checkpoints
    if not args.checkpoints and args.weights is None:
        raise UserError("give at least one checkpoint (a file, glob or run folder) or --weights FILE.")
    if args.model and args.weights is None:
        raise UserError("--model needs --weights FILE (weights are never downloaded).")
    paths = checkpoints.expand(args.checkpoints) if args.checkpoints else []
    for path in paths:
        yield lambda path=path: checkpoints.from_checkpoint(path, ema=args.ema)
    if args.weights is not None:
        yield lambda: checkpoints.from_weights(args.model or "resnet50", args.weights, args.num_classes)


def _sets_for(args, num_classes: int, log) -> list:
    from rsb.evaluation import sets
    if args.data is None and args.imagenet_v2 is None:
        found = sets.sample_sets(num_classes)
        log(f"no --data or --imagenet-v2 given: scoring the built-in sample data ({found[0].where} and "
            f"{found[1].where})")
        return found
    out = []
    if args.data is not None:
        out.append(sets.val_set(args.data, num_classes, args.real_labels))
    if args.imagenet_v2 is not None:
        out.append(sets.v2_set(args.imagenet_v2, num_classes, args.v2_per_class))
    return out


def _summary_line(row: dict) -> str:
    parts = []
    for key, label in (("val", "val"), ("v2", f"V2 ({row['v2_set']})"), ("real", "ReaL")):
        if row.get(f"{key}_top1") is not None:
            parts.append(f"{label} top-1 {row[f'{key}_top1']:.2f} top-5 {row[f'{key}_top5']:.2f}")
    if row.get("gap") is not None:
        parts.append(f"gap (val - V2) {row['gap']:.2f}")
    return "; ".join(parts)


def run(args) -> int:
    import torch

    from rsb import distributed, precision
    from rsb.evaluation import scoring, table

    from rsb.errors import UserError
    for flag, value in (("--img-size", args.img_size), ("--crop-pct", args.crop_pct),
                        ("--batch-size", args.batch_size), ("--v2-per-class", args.v2_per_class)):
        if value is not None and value <= 0:
            raise UserError(f"{flag} must be positive, got {value}.")
    if args.real_labels is not None and args.data is None:
        raise UserError("--real-labels scores ImageNet-val, so it needs --data too.")
    dist = distributed.init(args.device)
    main = dist.is_main

    def log(msg: str) -> None:
        if main:
            print(msg, flush=True)

    if dist.device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    if args.workers is None:
        from rsb.distributed import default_workers
        args.workers = default_workers()
    batch = args.batch_size or (256 if dist.device.type == "cuda" else 64)
    sets_by_classes, rows = {}, []
    for load in _sources(args):
        item = load()
        settings = item.settings.overridden(args.img_size, args.crop_pct, args.interpolation)
        if item.num_classes not in sets_by_classes:
            sets_by_classes[item.num_classes] = _sets_for(args, item.num_classes, log)
        prec = precision.choose(args.amp, item.amp_dtype or "bfloat16", dist.device)
        amp = prec.dtype
        if args.amp and amp is None:
            log(f"note: {prec.reason}")
        model = scoring.prepare_model(item.model, dist.device, item.channels_last)
        where = f" (epoch {item.meta['epoch']})" if item.meta.get("epoch") is not None else ""
        log(f"{item.source}{where}: {item.meta['model']}, {settings}, "
            f"{prec.name + ' autocast' if amp else 'float32'}, {dist.world_size} process(es)")
        if item.meta.get("epoch_step"):
            log(f"note: {item.source} is a mid-epoch checkpoint (step {item.meta['epoch_step']} of epoch "
                f"{item.meta['epoch'] + 1})")
        values = {k: item.meta.get(k) for k in ("run", "recipe", "model", "epoch", "seed")}
        values.update(checkpoint=str(item.source), img_size=settings.size, crop_pct=settings.crop_pct,
                      interpolation=settings.interpolation)
        for s in sets_by_classes[item.num_classes]:
            res = scoring.score_set(model, s, settings, device=dist.device, amp_dtype=amp, batch_size=batch,
                                    workers=args.workers, rank=dist.rank, world=dist.world_size,
                                    channels_last=item.channels_last, progress=main and not args.quiet, log=log)
            batch = res["batch_size"]  # keep a batch that fit for the following sets
            values.update({f"{s.key}_top1": res["top1"], f"{s.key}_top5": res["top5"],
                           f"{s.key}_images": res["images"]})
            if s.key == "v2":
                values["v2_set"] = s.name
            if "real_top1" in res:
                values.update(real_top1=res["real_top1"], real_top5=res["real_top5"],
                              real_images=res["real_images"])
        row = table.make_row(**values)
        rows.append(row)
        log(f"  {_summary_line(row)}")
        del model, item
    if main:
        print()
        print(table.format_table(rows))
        try:
            csv_path, json_path = table.write_table(rows, args.out_dir)
        except OSError as e:
            raise UserError(f"cannot write the results to {args.out_dir} ({e.strerror or e}).") from None
        print(f"results written to {csv_path} and {json_path}")
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    from rsb import distributed
    from rsb.errors import UserError
    try:
        return run(args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        distributed.cleanup()


if __name__ == "__main__":
    sys.exit(main())
