"""Entry point: python experiments/local_exponent.py [--quick] [--out DIR]."""

from phasejax.experiments.local_exponent import main

if __name__ == "__main__":
    main()
