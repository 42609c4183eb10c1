"""Entry point: python experiments/schedules_phase.py [--quick | --full] [--out DIR]."""

from phasejax.experiments.schedules_phase import main

if __name__ == "__main__":
    main()
