"""Figures (functions that draw on a given Axes) and the HTML report."""
