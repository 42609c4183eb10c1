"""One module per claim of the paper, each with ``main(argv=None) -> dict``.

Every ``main`` takes ``--out`` and ``--quick`` (small sizes for CI), prints a table, writes its
figures, and returns ``{"claims": [...], "figures": [...], ...}`` where each claim is a row of
theory against measured value with its standard error (see ``claims.claim``). The scripts in
the repository's ``experiments/`` folder are thin entry points to these modules, and
``phasejax reproduce`` runs them all into one report.
"""

EXPERIMENTS = (
    "scaling_law",
    "limit_laws",
    "entropy_crossovers",
    "local_exponent",
    "heat_step",
    "precision_floor",
    "schedules_phase",
    "learned_temperature",
    "crossover",
)
