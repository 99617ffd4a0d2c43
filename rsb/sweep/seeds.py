"""Seed lists on the command line ("1-100", "1,5,9", "1-10,20,30-32") and the run folder of each seed."""
from __future__ import annotations

import re

from rsb.errors import UserError

MAX_SEEDS = 100_000  # a typo such as "1-1000000000" must not build a billion-entry list
_PART = re.compile(r"^(\d+)(?:-(\d+))?$")


def parse_seeds(text: str) -> list[int]:
    """Sorted unique seeds from comma-separated numbers and inclusive ranges; anything else is a UserError."""
    seeds: set[int] = set()
    parts = [p.strip() for p in str(text).split(",")]
    if not any(parts):
        raise UserError("--seeds is empty; give numbers and ranges such as 1-100 or 1,5,9.")
    for part in parts:
        m = _PART.match(part)
        if not m:
            raise UserError(f"--seeds: cannot read '{part}' in '{text}'; use non-negative numbers and ranges "
                            f"such as 1-100 or 1-10,20,30-32.")
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else lo
        if hi < lo:
            raise UserError(f"--seeds: the range '{part}' runs backwards; write {hi}-{lo}.")
        if hi - lo + 1 + len(seeds) > MAX_SEEDS:
            raise UserError(f"--seeds '{text}' names more than {MAX_SEEDS} seeds.")
        seeds.update(range(lo, hi + 1))
    return sorted(seeds)


def format_seeds(seeds) -> str:
    """The compact form of a seed list: [1, 2, 3, 7] -> "1-3,7"."""
    seeds = sorted(set(seeds))
    out, i = [], 0
    while i < len(seeds):
        j = i
        while j + 1 < len(seeds) and seeds[j + 1] == seeds[j] + 1:
            j += 1
        out.append(str(seeds[i]) if i == j else f"{seeds[i]}-{seeds[j]}")
        i = j + 1
    return ",".join(out)


def run_dir_name(seed: int) -> str:
    """Keyed by the seed, never by a job id, so a relaunch finds the same folder and resumes it."""
    return f"seed_{seed:04d}"
