"""Entry point: python experiments/crossover.py [--quick] [--dense] [--out DIR]."""

from phasejax.experiments.crossover import main

if __name__ == "__main__":
    main()
