"""Subcommands of the ``headshots`` CLI, one module each."""
