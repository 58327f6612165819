"""BOON: boundary-corrected neural operators for neuraloperator's FNO and TFNO.

Importing this package registers ``boon_fno``, ``boon_tfno`` and ``boon_wrapper`` (any regular-grid model, its output
made exact) with ``neuralop.models.get_model``.

References
----------
.. [1] Saad, N., Gupta, G., Alizadeh, S., Maddix, D. C. "Guiding continuous operator learning through
       physics-based boundary constraints." ICLR 2023.
"""

from _physics_constrained import distribution_version

from .conditions import BoundaryCondition, BoundarySpec, ConstantKey, Dirichlet, Neumann, Periodic, parse_boundary
from .data_processor import BoundaryDataProcessor
from .checkpoint import (CHECKPOINT_GLOBALS, EarlyCheckpointWarning, UnsafeCheckpointError, load_checkpoint_file,
                         load_ddp_checkpoint, load_state_dict_file, save_ddp_checkpoint, unwrap_ddp)
from .enforcement import boundary_error, enforce_boundary
from .finetune import BoundaryAccuracyWarning, finetune_kernel_correction
from .lift import lift_boundary
from .models import BOONFNO, BOONTFNO
from .wrapper import BOONWrapper
from .wall_inputs import n_wall_channels, wall_channels
from .wall_share import WallShare, wall_error_share
from .sample_keys import flat_key
from .stencil import neumann_stencil, one_sided_derivative
from .config import build_model, load_config
from .losses import TargetLoss

__version__ = distribution_version()

__all__ = [
    "BOONFNO",
    "BOONTFNO",
    "BOONWrapper",
    "BoundaryAccuracyWarning",
    "BoundaryCondition",
    "BoundaryDataProcessor",
    "BoundarySpec",
    "CHECKPOINT_GLOBALS",
    "EarlyCheckpointWarning",
    "ConstantKey",
    "TargetLoss",
    "UnsafeCheckpointError",
    "WallShare",
    "__version__",
    "build_model",
    "Dirichlet",
    "Neumann",
    "Periodic",
    "boundary_error",
    "enforce_boundary",
    "finetune_kernel_correction",
    "flat_key",
    "lift_boundary",
    "load_checkpoint_file",
    "load_config",
    "load_ddp_checkpoint",
    "load_state_dict_file",
    "n_wall_channels",
    "neumann_stencil",
    "one_sided_derivative",
    "parse_boundary",
    "save_ddp_checkpoint",
    "unwrap_ddp",
    "wall_channels",
    "wall_error_share",
]
