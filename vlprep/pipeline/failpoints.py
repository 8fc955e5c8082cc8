"""Moved to :mod:`vlprep.failpoints` (the store uses them too); importable from here."""

from vlprep.failpoints import ENV, failpoint

__all__ = ["ENV", "failpoint"]
