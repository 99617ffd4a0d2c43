"""The training run: its plan (derived values), parts, engine, trainer, optimizers, schedules, losses."""
