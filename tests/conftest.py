import os

import torch
from hypothesis import HealthCheck, settings

# Torch on a 2-core CI machine: more threads than cores only adds contention.
torch.set_num_threads(min(2, os.cpu_count() or 1))

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
