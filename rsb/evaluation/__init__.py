"""Scoring checkpoints on ImageNet-val, ImageNet-V2 and ImageNet-ReaL: the evaluator as a library, of which
validate.py is the command line.

One module per job, so each rule lives in one place:
  imagenet_v2.py   the V2 layout check and its label rule (label = int(folder name))
  archive.py       V2 .tar.gz archives: SHA-256 against the published values, extraction once into a cache
  real_labels.py   ReaL labels: reading real.json and matching it to val files by the number in their names
  sets.py          the evaluation sets asked for (val, V2, ReaL, the built-in sample)
  checkpoints.py   what to score (paths, globs, run folders, a timm model with weights) and the model plus test
                   settings of each (the recipe's, or the timm model's pretrained config)
  scoring.py       one set scored: training's loop (rsb.training.engine.score_batches) plus ReaL, progress, halving the
                   batch on CUDA OOM, DDP shares
  table.py         the results table (CSV and JSON) that validate.py writes and the seed sweep reads
  run.py           the evaluator: every source on every set, the batch that fit carried over, the table written
"""
