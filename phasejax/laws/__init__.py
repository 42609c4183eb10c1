"""Key laws: where the n keys of a context lie on S^{d-1} relative to the query, as equinox Modules."""

from .base import BetaGapLaw as BetaGapLaw
from .base import KeyLaw as KeyLaw
from .base import gaps_from_keys as gaps_from_keys
from .base import normalize as normalize
from .base import orthonormal_complement as orthonormal_complement
from .empirical import Empirical as Empirical
from .empirical import load_npy as load_npy
from .extra import AngularGaussian as AngularGaussian
from .extra import BetaCap as BetaCap
from .extra import FarCap as FarCap
from .extra import LocalWarp as LocalWarp
from .extra import Mixture as Mixture
from .nearest import gap_quantile as gap_quantile
from .nearest import nearest_gaps as nearest_gaps
from .registry import law_from_name as law_from_name
from .scores import AlmostSimplex as AlmostSimplex
from .scores import GaussianScores as GaussianScores
from .sphere import PowerLawCap as PowerLawCap
from .sphere import Subsphere as Subsphere
from .sphere import UniformSphere as UniformSphere
