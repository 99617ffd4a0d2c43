"""The benchmark scripts (each runs as `python benchmarks/<name>.py`) and the GPU check (`python -m
benchmarks.gpu_check`). A regular package, so that `-m` from the repository root finds this folder before any
other top-level `benchmarks` on the path."""
