"""Entry point: python experiments/entropy_crossovers.py [--quick] [--out DIR]."""

from phasejax.experiments.entropy_crossovers import main

if __name__ == "__main__":
    main()
