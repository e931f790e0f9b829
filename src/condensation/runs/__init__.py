"""Deprecated: ``condensation.runs`` moved to :mod:`condensation.commands`; kept for one release."""
