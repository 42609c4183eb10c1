"""A trainable attention head with a learnable inverse temperature, and what theory says it should learn."""

from .model import AttentionHead as AttentionHead
from .model import Batch as Batch
from .model import RegressionTask as RegressionTask
from .model import RetrievalTask as RetrievalTask
from .model import batch_loss as batch_loss
from .model import task_from_name as task_from_name
from .model import zonal_p2 as zonal_p2
from .theory import beta_opt_asymptotic as beta_opt_asymptotic
from .theory import beta_opt_coefficient as beta_opt_coefficient
from .theory import beta_opt_exact as beta_opt_exact
from .theory import beta_opt_large_n as beta_opt_large_n
from .theory import regression_mse_exact as regression_mse_exact
from .theory import regression_mse_large_n as regression_mse_large_n
from .theory import regression_mse_mc as regression_mse_mc
from .train import TrainResult as TrainResult
from .train import train as train
