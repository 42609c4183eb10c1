"""Entry point: python experiments/heat_dynamics.py [--quick] [--out DIR]."""

from phasejax.experiments.heat_dynamics import main

if __name__ == "__main__":
    main()
