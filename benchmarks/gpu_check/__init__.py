"""The GPU check (issue 17): one command on a machine with one CUDA GPU (and about 16 cores) that runs in under
8 minutes, prints one table and appends it, with the date, the GPU, its driver, torch/timm versions, the CPU
capability and the command, to benchmarks/RESULTS.md under "## GPU check".

  python -m benchmarks.gpu_check                       # on the GPU machine, from the repository root, after
                                                       # the README's set-up (pip install -e ".[test]")
  python -m benchmarks.gpu_check --only loader,validate    # some parts again
  python -m benchmarks.gpu_check --cpu-dry-run --results /tmp/gpu_check.md   # the same code at tiny sizes on
                                                       # a CPU (CUDA-only rows "skipped (no CUDA)")

(`python benchmarks/gpu_check` runs the same.) Parts, in this order, each with its own time budget (a part that
fails or runs out of time is reported as failed with its one-line error, and the others still run; the whole run
stops starting parts at 7.5 minutes):

  tests      pytest -m gpu tests/e2e/test_gpu.py: bf16 and float16 training on CUDA through rsb's trainer (float16
             with a GradScaler, bf16 without), channels_last kept through the model, the evaluator's batch
             halving on a real CUDA out-of-memory, a checkpoint saved on the GPU resumed by a CPU-only process.
  jpegs      writes ImageNet-sized JPEGs (500x375, quality 90, photo-like texture; benchmarks/input_pipeline.py's
             generator) into a temporary folder in the ImageNet layout (train/<wnid>/, val/<wnid>/; hard links
             multiply 512 files into the epoch lengths needed). No network.
  synthetic  ResNet-50 training throughput on synthetic uint8 batches (pinned host memory), A2 at 224 and A3 at
             160, batch 256, bf16 autocast, channels_last: rsb's loop (rsb.training.engine.train_one_epoch +
             DeviceBatch + ThresholdedBCE + Lamb via rsb.training.optim + WarmupCosine) against the loop of timm's
             parts, both from benchmarks/train_step.py moved to the GPU. Warm-up steps excluded; rounds alternate
             the two; every timing is between torch.cuda.synchronize() calls; cudnn.benchmark on (as rsb sets it on
             CUDA).
  loader     the same training step fed from the JPEGs: rsb.data.loader.TrainLoader (A2: repeated augmentation 3)
             against timm's create_loader (its PrefetchLoader: copy and normalise on a side stream; no repeated
             augmentation, which timm's loader refuses in one process), workers = usable cores, pinned memory
             for both. images/s over 2 x workers steps after a warm-up of `workers` steps (the workers' first
             batches), and the fraction of that time the GPU waits for data: CUDA events recorded on the compute
             stream before and after each fetch; the GPU idles from when it finished the work queued before the
             fetch until the work queued after it, which the event pairs time exactly. (rsb copies the batch to
             the GPU on the compute stream after the fetch, so its copy counts as step time; timm's prefetcher
             copies the next batch on its side stream inside the fetch, so timm's copy counts as waiting.)
  validate   validate.py's scoring path at 224 (rsb.evaluation.scoring.score_set: eval_loader + DeviceBatch +
             channels_last, validate.py's CUDA batch of 256 and default workers) in float32 and in bf16 (--amp),
             against timm's eval pipeline (create_loader with its prefetcher, channels_last, the accuracy read
             every batch as timm's validate.py does); each figure from the call to the last result, loader start-
             up included, as validate.py scores a set.
  compiled   the synthetic row again with model.compile=true (torch.compile(model), as rsb.training.trainer does;
             one compiled model serves both loops, compiled once per resolution; compile time reported).

--cpu-dry-run runs the same code at tiny sizes on the CPU (resnet10t at 48 / 32 px, batch 8, a few steps, 16 small
JPEGs, workers = usable cores, float32, torch.compile with the "eager" backend); rows that need CUDA read
"skipped (no CUDA)". It writes its table only where --results says (never to benchmarks/RESULTS.md by default).

Modules: plan (parts, rows, sizes, budgets), worker (the process that runs parts), jpegs, measure_train,
measure_loader, measure_eval, measure_tests (the measurements), supervise (the parent's watch over workers),
report (the collector, the table and the block appended to RESULTS.md), __main__ (the command line).
"""
