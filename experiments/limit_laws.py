"""Entry point: python experiments/limit_laws.py [--quick] [--out DIR]."""

from phasejax.experiments.limit_laws import main

if __name__ == "__main__":
    main()
