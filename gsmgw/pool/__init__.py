"""Modem pool: supervision, balancing, dispatch (see dispatcher.py)."""
