"""The evaluator: every source (checkpoints, a timm model with local weights) on every set asked for (val, V2,
ReaL, or the built-in sample), one results table. validate.py is its command line; plain values in, rows out.

One model is in memory at a time. The batch size that fit one set is kept for the following sets and sources:
after a CUDA out-of-memory halving, the next set would only run out of memory again at the larger size.
"""
from __future__ import annotations

from pathlib import Path

import torch

from rsb.runtime import distributed
from rsb.runtime.cpus import default_workers
from rsb.runtime import precision
from rsb.data.families.registry import family_named
from rsb.errors import UserError
from rsb.evaluation import checkpoints, scoring, sets, table
from rsb.models.factory import param_count_millions

DEFAULT_RESULTS = Path("validation") / table.CSV_NAME


def check_values(*, img_size=None, crop_pct=None, batch_size=None, v2_per_class=None, mean=None, std=None,
                 data=None, real_labels=None) -> None:
    """Refuse values that cannot be meant, before any model is loaded."""
    for flag, value in (("--img-size", img_size), ("--crop-pct", crop_pct), ("--batch-size", batch_size),
                        ("--v2-per-class", v2_per_class)):
        if value is not None and value <= 0:
            raise UserError(f"{flag} must be positive, got {value}.")
    for flag, values in (("--mean", mean), ("--std", std)):
        if values is not None and len(values) != 3:
            raise UserError(f"{flag} takes 3 values (red, green, blue), got {len(values)}.")
    if std is not None and min(std) <= 0:
        raise UserError(f"--std values must be positive, got {' '.join(map(str, std))}.")
    if real_labels is not None and data is None:
        raise UserError("--real-labels scores ImageNet-val, so it needs --data too.")


def validate(checkpoint_specs=(), *, weights=None, model=None, num_classes: int = 1000, ema: bool = False,
             data=None, imagenet_v2=None, real_labels=None, v2_per_class: int | None = None, val_labels=None,
             img_size: int | None = None, crop_pct: float | None = None, interpolation: str | None = None,
             mean=None, std=None, batch_size: int | None = None, workers: int | None = None,
             device: str = "auto", amp: bool = False, results_file=DEFAULT_RESULTS, quiet: bool = False) -> list[dict]:
    """Score every source on every set and add the rows to the table at results_file (merge_rows: a row for
    the same checkpoint and test settings is replaced, others are kept); the rows of this call.

    Test settings are each source's own (a checkpoint's recipe, a timm model's pretrained config), with the
    values given here (not None) replacing them. Under torchrun each process scores its share of every set and
    the first one prints and writes the table."""
    check_values(img_size=img_size, crop_pct=crop_pct, batch_size=batch_size, v2_per_class=v2_per_class,
                 mean=mean, std=std, data=data, real_labels=real_labels)
    loaders = checkpoints.sources(list(checkpoint_specs), weights, model, num_classes, ema)
    earlier = table.existing_rows(results_file)  # a file that is no table stops us here, not after the scoring
    owns_group = not torch.distributed.is_initialized()  # a caller's own process group is left to the caller
    dist = distributed.init(device)
    try:
        log = print_on(dist.is_main)
        rows = _score_all(loaders, dist, log, data=data, imagenet_v2=imagenet_v2, real_labels=real_labels,
                          v2_per_class=v2_per_class, val_labels=val_labels,
                          overrides=dict(size=img_size, crop_pct=crop_pct, interpolation=interpolation, mean=mean,
                                         std=std),
                          batch_size=batch_size, workers=workers, amp=amp, progress=dist.is_main and not quiet)
        if dist.is_main:
            _write(rows, earlier, Path(results_file))
        return rows
    finally:
        if owns_group:
            distributed.cleanup()


def print_on(main: bool):
    def log(msg: str) -> None:
        if main:
            print(msg, flush=True)
    return log


def _score_all(loaders, dist, log, *, data, imagenet_v2, real_labels, v2_per_class, val_labels, overrides, batch_size,
               workers, amp, progress) -> list[dict]:
    if dist.device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    workers = default_workers() if workers is None else workers
    batch = batch_size or (256 if dist.device.type == "cuda" else 64)
    sets_by_classes, test_splits, rows = {}, {}, []
    for load in loaders:
        item = load()
        fam = family_named(item.dataset)
        if not fam.own_test_split and item.num_classes not in sets_by_classes:
            sets_by_classes[item.num_classes] = sets.requested_sets(item.num_classes, data, imagenet_v2,
                                                                    real_labels, v2_per_class, log,
                                                                    val_labels)
        settings = item.settings.overridden(**overrides)
        prec = precision.choose(amp, item.amp_dtype or "bfloat16", dist.device)
        if amp and prec.dtype is None:
            log(f"note: {prec.reason}")
        params = param_count_millions(item.model)
        model = scoring.prepare_model(item.model, dist.device, item.channels_last)
        where = f" (epoch {item.meta['epoch']})" if item.meta.get("epoch") is not None else ""
        log(f"{item.source}{where}: {item.meta['model']} ({params}M parameters), {settings}, "
            f"{prec.name + ' autocast' if prec.dtype else 'float32'}, {dist.world_size} process(es)")
        if item.meta.get("epoch_step"):
            log(f"note: {item.source} is a mid-epoch checkpoint (step {item.meta['epoch_step']} of epoch "
                f"{item.meta['epoch'] + 1})")
        values = {k: item.meta.get(k) for k in ("run", "recipe", "model", "epoch", "seed")}
        values.update(checkpoint=str(item.source), param_count=params, img_size=settings.size,
                      crop_pct=settings.crop_pct, interpolation=settings.interpolation)
        if fam.own_test_split:  # the family's test split (CIFAR-10's, as the paper reports), not validate's sets
            if fam.name not in test_splits:
                test_splits[fam.name] = fam.test_split(data, log)
            res = scoring.score_cifar(model, test_splits[fam.name], item.pixel_mean, device=dist.device,
                                      amp_dtype=prec.dtype, batch_size=batch, rank=dist.rank, world=dist.world_size,
                                      channels_last=item.channels_last)
            values.update(val_top1=res["top1"], val_top5=res["top5"], val_images=res["images"])
        for s in ([] if fam.own_test_split else sets_by_classes[item.num_classes]):
            res = scoring.score_set(model, s, settings, device=dist.device, amp_dtype=prec.dtype, batch_size=batch,
                                    workers=workers, rank=dist.rank, world=dist.world_size,
                                    channels_last=item.channels_last, progress=progress, log=log)
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
        log(f"  {table.summary_line(row)}")
        del model, item
    return rows


def _write(rows: list[dict], earlier: list[dict], results_file: Path) -> None:
    print()
    print(table.format_table(rows))
    merged, replaced = table.merge_rows(earlier, rows)
    try:
        csv_path, json_path = table.write_results(merged, results_file)
    except OSError as e:
        raise UserError(f"cannot write the results to {results_file} ({e.strerror or e}).") from None
    kept = len(merged) - len(rows)
    added = f" ({kept} earlier row(s) kept, {len(replaced)} replaced)" if earlier else ""
    print(f"results written to {csv_path} and {json_path}{added}")
