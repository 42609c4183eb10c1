"""phasejax: a JAX testbed for the phase transition of softmax attention at long context.

Conventions: beta multiplies the cosine <q,k> of unit vectors (logit = beta <q,k>); a score
is represented by its gap u = 1 - <q,k> = |q-k|^2/2; the critical scale is
beta = lambda n^{2/alpha} with alpha the local exponent of the gap law; entropy is in nats;
``key`` is a PRNG key and the attention keys are ``keys``. See README.md and THEORY.md.

Namespaces: :mod:`phasejax.geometry` (key laws), :mod:`phasejax.observables`,
:mod:`phasejax.sweep`, :mod:`phasejax.transition`, :mod:`phasejax.scaling`,
:mod:`phasejax.theory`, :mod:`phasejax.limits`, :mod:`phasejax.extreme`, :mod:`phasejax.heat`,
:mod:`phasejax.estimate`, :mod:`phasejax.schedules`, :mod:`phasejax.phase`, :mod:`phasejax.scores`,
:mod:`phasejax.learn`, :mod:`phasejax.distributed`, :mod:`phasejax.io`. The most used names are
re-exported here.
"""

from . import checkpoint as checkpoint
from . import distributed as distributed
from . import estimate as estimate
from . import extreme as extreme
from . import geometry as geometry
from . import heat as heat
from . import io as io
from . import laws_extra as laws_extra
from . import learn as learn
from . import limits as limits
from . import observables as observables
from . import phase as phase
from . import scaling as scaling
from . import schedules as schedules
from . import scores as scores
from . import sweep as sweep
from . import theory as theory
from . import transition as transition
from ._checks import InputError as InputError
from .distributed import shard_over_seeds as shard_over_seeds
from .estimate import diagnose_flax as diagnose_flax
from .estimate import estimate_tail as estimate_tail
from .estimate import fit_tail as fit_tail
from .extreme import nearest_gaps as nearest_gaps
from .extreme import nearest_observables as nearest_observables
from .geometry import BetaGapLaw as BetaGapLaw
from .geometry import Empirical as Empirical
from .geometry import KeyLaw as KeyLaw
from .geometry import PowerLawCap as PowerLawCap
from .geometry import Subsphere as Subsphere
from .geometry import UniformSphere as UniformSphere
from .geometry import gaps_from_keys as gaps_from_keys
from .geometry import normalize as normalize
from .heat import attention_step as attention_step
from .heat import exact_gain as exact_gain
from .heat import measure_gain as measure_gain
from .heat import sample_zonal as sample_zonal
from .laws_extra import AngularGaussian as AngularGaussian
from .laws_extra import Mixture as Mixture
from .learn import AttentionHead as AttentionHead
from .learn import train as train
from .observables import Observables as Observables
from .observables import gap_observables as gap_observables
from .observables import key_observables as key_observables
from .observables import log_weights as log_weights
from .observables import sampled_observables as sampled_observables
from .observables import weights as weights
from .phase import phase_diagram as phase_diagram
from .phase import predict_beta_peak as predict_beta_peak
from .scaling import fit_power_law as fit_power_law
from .scaling import scaling_scan as scaling_scan
from .schedules import schedule_beta as schedule_beta
from .scores import AlmostSimplex as AlmostSimplex
from .scores import GaussianScores as GaussianScores
from .scores import finite_n_beta_peak as finite_n_beta_peak
from .scores import rem_beta_c as rem_beta_c
from .sweep import Ensemble as Ensemble
from .sweep import ensemble as ensemble
from .theory import exact_beta_peak as exact_beta_peak
from .theory import exact_expected_max_weight as exact_expected_max_weight
from .theory import lambda_star as lambda_star
from .theory import mean_resultant as mean_resultant
from .theory import poisson_expected_max_weight as poisson_expected_max_weight
from .transition import find_peak as find_peak
from .transition import seed_curve as seed_curve
from .transition import susceptibility as susceptibility

__version__ = "0.1.0"
