"""phasejax: a JAX testbed for the phase transition of softmax attention at long context.

Conventions (docs/theory.md): beta multiplies the cosine <q,k> of unit vectors (logit = beta <q,k>); a
score is represented by its gap u = 1 - <q,k> = |q-k|^2/2; the critical scale is beta = lambda n^{2/alpha}
with alpha the local exponent of the gap law; entropy is in nats; ``key`` is a PRNG key and the attention
keys are ``keys``.

The package is layered (data flows one way, docs/design.md):

* :mod:`phasejax.laws` where keys lie (key laws, score laws, the nearest-m sampler);
* :mod:`phasejax.observables` the streaming pass and its public accumulator;
* :mod:`phasejax.transition`, :mod:`phasejax.scaling` susceptibilities, peaks and scaling fits;
* :mod:`phasejax.theory` closed forms and limit laws (pure math);
* :mod:`phasejax.estimate`, :mod:`phasejax.schedules`, :mod:`phasejax.phase`, :mod:`phasejax.heat`,
  :mod:`phasejax.learn`, :mod:`phasejax.limits` what is built on them;
* :mod:`phasejax.runtime` ensembles, devices and hosts, checkpoints and result files.

``phasejax.plots`` (matplotlib) and ``phasejax.cli`` (the ``phasejax`` command) are not imported here.
The names below are the curated public API (README, "Python").
"""

from . import estimate as estimate
from . import heat as heat
from . import laws as laws
from . import learn as learn
from . import limits as limits
from . import observables as observables
from . import phase as phase
from . import runtime as runtime
from . import scaling as scaling
from . import schedules as schedules
from . import theory as theory
from . import transition as transition
from ._checks import InputError as InputError
from .estimate import TailFit as TailFit
from .estimate import diagnose_flax as diagnose_flax
from .estimate import estimate_tail as estimate_tail
from .estimate import fit_tail as fit_tail
from .heat import attention_step as attention_step
from .heat import exact_gain as exact_gain
from .heat import measure_gain as measure_gain
from .heat import sample_zonal as sample_zonal
from .laws import AlmostSimplex as AlmostSimplex
from .laws import AngularGaussian as AngularGaussian
from .laws import BetaGapLaw as BetaGapLaw
from .laws import Empirical as Empirical
from .laws import GaussianScores as GaussianScores
from .laws import KeyLaw as KeyLaw
from .laws import Mixture as Mixture
from .laws import PowerLawCap as PowerLawCap
from .laws import Subsphere as Subsphere
from .laws import UniformSphere as UniformSphere
from .laws import gaps_from_keys as gaps_from_keys
from .laws import nearest_gaps as nearest_gaps
from .laws import normalize as normalize
from .learn import AttentionHead as AttentionHead
from .learn import train as train
from .observables import LogitTransform as LogitTransform
from .observables import Observables as Observables
from .observables import SoftCap as SoftCap
from .observables import gap_observables as gap_observables
from .observables import key_observables as key_observables
from .observables import log_weights as log_weights
from .observables import nearest_observables as nearest_observables
from .observables import sampled_observables as sampled_observables
from .observables import weights as weights
from .phase import phase_diagram as phase_diagram
from .runtime import Ensemble as Ensemble
from .runtime import ensemble as ensemble
from .runtime import shard_over_seeds as shard_over_seeds
from .scaling import fit_power_law as fit_power_law
from .scaling import scaling_scan as scaling_scan
from .schedules import schedule_beta as schedule_beta
from .theory import exact_beta_peak as exact_beta_peak
from .theory import exact_expected_max_weight as exact_expected_max_weight
from .theory import finite_n_beta_peak as finite_n_beta_peak
from .theory import lambda_star as lambda_star
from .theory import mean_resultant as mean_resultant
from .theory import poisson_expected_max_weight as poisson_expected_max_weight
from .theory import predict_beta_peak as predict_beta_peak
from .theory import rem_beta_c as rem_beta_c
from .transition import find_peak as find_peak
from .transition import seed_curve as seed_curve
from .transition import susceptibility as susceptibility

__version__ = "0.2.0"
