"""Subcommands of the ``phasejax`` CLI, one module each (see :mod:`phasejax.cli`)."""
