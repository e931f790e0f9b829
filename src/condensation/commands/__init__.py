"""Runs: from a validated config to arrays, a summary and figures on disk."""
