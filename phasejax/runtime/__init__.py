"""Running work: seed ensembles, devices and hosts, checkpoints and result files."""

from .checkpoint import CellStore as CellStore
from .checkpoint import config_hash as config_hash
from .devices import SeedRunner as SeedRunner
from .devices import initialize as initialize
from .devices import is_multiprocess as is_multiprocess
from .devices import is_writer as is_writer
from .devices import mesh_info as mesh_info
from .devices import run_seeds as run_seeds
from .devices import seed_mesh as seed_mesh
from .devices import shard_over_seeds as shard_over_seeds
from .ensemble import Ensemble as Ensemble
from .ensemble import choose_sampler as choose_sampler
from .ensemble import ensemble as ensemble
from .ensemble import observe as observe
from .io import atomic_write as atomic_write
from .io import jsonable as jsonable
from .io import load_dataset as load_dataset
from .io import load_json as load_json
from .io import provenance as provenance
from .io import save_dataset as save_dataset
from .io import save_json as save_json
from .signals import Interrupted as Interrupted
from .signals import deferred_signals as deferred_signals
