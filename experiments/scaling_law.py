"""Entry point: python experiments/scaling_law.py [--quick] [--out DIR]."""

from phasejax.experiments.scaling_law import main

if __name__ == "__main__":
    main()
