"""Entry point: python experiments/precision_floor.py [--quick] [--out DIR]."""

from phasejax.experiments.precision_floor import main

if __name__ == "__main__":
    main()
