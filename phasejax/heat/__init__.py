"""One attention step on a token cloud is a backward heat step (docs/theory.md §g)."""

from .measure import GainMeasurement as GainMeasurement
from .measure import compare_displacement as compare_displacement
from .measure import gain_one_cloud as gain_one_cloud
from .measure import measure_gain as measure_gain
from .measure import richardson_weights as richardson_weights
from .step import attention_step as attention_step
from .step import attention_step_halves as attention_step_halves
from .theory import exact_gain as exact_gain
from .theory import exact_map as exact_map
from .theory import first_order_gain as first_order_gain
from .theory import heat_displacement as heat_displacement
from .theory import linear_gain_spectrum as linear_gain_spectrum
from .theory import zonal_map as zonal_map
from .zonal import gegenbauer as gegenbauer
from .zonal import harmonic_dimension as harmonic_dimension
from .zonal import mode_amplitude as mode_amplitude
from .zonal import mode_gain as mode_gain
from .zonal import sample_zonal as sample_zonal
from .zonal import zonal_density_bound as zonal_density_bound
from .zonal import zonal_spectrum as zonal_spectrum
