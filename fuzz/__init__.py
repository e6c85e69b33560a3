"""Fuzz harnesses (atheris)."""
