"""Entry point: python experiments/learned_temperature.py [--quick] [--out DIR]."""

from phasejax.experiments.learned_temperature import main

if __name__ == "__main__":
    main()
