"""phasejax: a JAX testbed for the phase transition of softmax attention at long context."""
