"""Intake drivers for perc-platform."""
