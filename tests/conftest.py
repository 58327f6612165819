import os

import torch
from hypothesis import HealthCheck, settings

# The tests run many small tensor ops, for which a second intra-op thread costs more in synchronisation than it
# gains (and stalls whenever the machine is shared).
torch.set_num_threads(1)

settings.register_profile(
    "default",
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "thorough",
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
