"""The one exception type for failures a user can cause and fix: the commands print its message and exit 2."""
from __future__ import annotations

import sys


class UserError(Exception):
    """A problem with the user's input (path, recipe, override, checkpoint, data), stated in one sentence."""


def exit_status(command) -> int:
    """Run a command's body (a callable returning its exit status, None for 0): a UserError becomes its one
    sentence on stderr and exit status 2, as every rsb command ends on bad input."""
    try:
        return command() or 0
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
