"""The process: process groups (torchrun, Slurm), device, precision, stop signals, CPU budget."""
