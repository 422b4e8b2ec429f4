"""The one exception type for user mistakes: `sml` prints it as one line and exits 2."""


class UserError(Exception):
    """A mistake the user can fix (a bad flag, a missing file, a refused bundle); never a bug of ours."""
