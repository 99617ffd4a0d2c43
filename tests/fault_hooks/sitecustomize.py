"""Fault injection for tests/test_faults.py, loaded into a training subprocess through PYTHONPATH.

RSB_FAULT_SLOW_SAVE=<marker path>: the next checkpoint write stops half-way, creates the marker file and sleeps,
so the test can kill the process in the middle of a checkpoint write."""
import os

marker = os.environ.get("RSB_FAULT_SLOW_SAVE")
if marker:
    import io
    import time

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
