"""Typed configuration, by job: rsb.config.schema (one dataclass per recipe section, run policy apart; the fields
that take one of a few names), rsb.config.checks (every check of a value: its type and choice when read, the
cross-field rules) and rsb.config.load (recipe files, `base:` chains, overlays, strict overrides).

Nothing here knows a dataset family: the data.dataset value is checked, and a family's own rules and sample-scale
overlay applied, by rsb.data.families through rsb.training.run_config, the one place a run's config is built.
Derived values (accumulation, effective learning rate, steps per epoch) are computed in rsb.training.plan.
"""
