"""phasejax: a JAX testbed for the phase transition of softmax attention at long context.

Conventions: beta multiplies the cosine <q,k> of unit vectors (logit = beta <q,k>); a score
is represented by its gap u = 1 - <q,k> = |q-k|^2/2; entropy is in nats; ``key`` is a PRNG
key and the attention keys are ``keys``. See README.md and THEORY.md.
"""

from . import geometry as geometry
from . import io as io
from . import observables as observables
from ._checks import InputError as InputError
from .geometry import BetaGapLaw as BetaGapLaw
from .geometry import Empirical as Empirical
from .geometry import KeyLaw as KeyLaw
from .geometry import PowerLawCap as PowerLawCap
from .geometry import Subsphere as Subsphere
from .geometry import UniformSphere as UniformSphere
from .geometry import gaps_from_keys as gaps_from_keys
from .geometry import normalize as normalize
from .observables import Observables as Observables
from .observables import gap_observables as gap_observables
from .observables import key_observables as key_observables
from .observables import log_weights as log_weights
from .observables import sampled_observables as sampled_observables
from .observables import weights as weights
from .sweep import Ensemble as Ensemble
from .sweep import ensemble as ensemble

__version__ = "0.1.0"
