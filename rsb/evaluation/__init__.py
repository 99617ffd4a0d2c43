"""Scoring checkpoints on ImageNet-val, ImageNet-V2 and ImageNet-ReaL (the machinery behind validate.py).

One module per job, so each rule lives in one place:
  imagenet_v2.py   the V2 layout check and its label rule (label = int(folder name))
  archive.py       V2 .tar.gz archives: SHA-256 against the published values, extraction once into a cache
  real_labels.py   ReaL labels: reading real.json and matching it to val files by the number in their names
  sets.py          the evaluation sets a command line asks for (val, V2, ReaL, the built-in sample)
  checkpoints.py   which files to score (paths, globs, run folders) and the model plus test settings of each
  scoring.py       the batched scoring loop (channels_last, autocast, halving the batch on CUDA OOM, DDP shares)
  table.py         the results table (CSV and JSON) that validate.py writes and the seed sweep reads
"""
