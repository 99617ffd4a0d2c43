"""The run folder: atomic files, the checkpoint record, metrics, console output, trackers, plots."""
