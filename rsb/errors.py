"""The one exception type for failures a user can cause and fix: the commands print its message and exit 2."""


class UserError(Exception):
    """A problem with the user's input (path, recipe, override, checkpoint, data), stated in one sentence."""
