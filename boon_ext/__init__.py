"""BOON: boundary-corrected neural operators for neuraloperator's FNO and TFNO.

Importing this package registers ``boon_fno`` and ``boon_tfno`` with ``neuralop.models.get_model``.

References
----------
.. [1] Saad, N., Gupta, G., Alizadeh, S., Maddix, D. C. "Guiding continuous operator learning through
       physics-based boundary constraints." ICLR 2023.
"""

from .conditions import BoundaryCondition, BoundarySpec, Dirichlet, Neumann, Periodic, parse_boundary
from .data_processor import BoundaryDataProcessor
from .distributed import load_ddp_checkpoint, save_ddp_checkpoint, unwrap_ddp
from .enforcement import boundary_error, enforce_boundary
from .models import BOONFNO, BOONTFNO

__all__ = [
    "BOONFNO",
    "BOONTFNO",
    "BoundaryCondition",
    "BoundaryDataProcessor",
    "BoundarySpec",
    "Dirichlet",
    "Neumann",
    "Periodic",
    "boundary_error",
    "enforce_boundary",
    "load_ddp_checkpoint",
    "parse_boundary",
    "save_ddp_checkpoint",
    "unwrap_ddp",
]
