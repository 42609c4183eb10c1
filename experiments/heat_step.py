"""Entry point: python experiments/heat_step.py [--quick] [--out DIR]."""

from phasejax.experiments.heat_step import main

if __name__ == "__main__":
    main()
