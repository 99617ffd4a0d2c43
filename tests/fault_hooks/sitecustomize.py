"""Fault injection for tests/e2e/test_faults.py and tests/e2e/test_slurm.py, loaded into a training subprocess (or Slurm
job) through PYTHONPATH.

RSB_FAULT_SLOW_SAVE=<marker path>: the next checkpoint write stops half-way, creates the marker file and sleeps,
so the test can kill the process in the middle of a checkpoint write."""
import os
import time

marker = os.environ.get("RSB_FAULT_SLOW_SAVE")
if marker:
    import io

    import torch

    real_save = torch.save

    def slow_save(obj, f, *args, **kwargs):
        if not hasattr(f, "write") or os.path.exists(marker):
            return real_save(obj, f, *args, **kwargs)
        buf = io.BytesIO()
        real_save(obj, buf, *args, **kwargs)
        data = buf.getvalue()
        f.write(data[: len(data) // 2])
        f.flush()
        open(marker, "w").close()
        time.sleep(60)
        f.write(data[len(data) // 2:])

    torch.save = slow_save

# RSB_FAULT_SLOW_STEP_S=<seconds>: every backward pass first sleeps that long, in a Slurm job's first allocation
# only (not once requeued: SLURM_RESTART_COUNT), so a test can have a job still training when its time-limit
# warning comes, and finish quickly on the next allocation.
slow_step = os.environ.get("RSB_FAULT_SLOW_STEP_S")
if slow_step and os.environ.get("SLURM_RESTART_COUNT", "0") == "0":
    import torch.autograd

    real_backward = torch.autograd.backward

    def slow_backward(*args, **kwargs):
        time.sleep(float(slow_step))
        return real_backward(*args, **kwargs)

    torch.autograd.backward = slow_backward
