"""BOON models under DistributedDataParallel on two gloo processes: gradients, exact boundaries, checkpoints."""

import shutil

import dist_tasks
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from boon_ext import BOONFNO, Dirichlet, Neumann, Periodic, boundary_error
from boon_ext import load_ddp_checkpoint, save_ddp_checkpoint, unwrap_ddp

# float64 models: the DDP gradient is the mean of two shard gradients, the single-process one a mean over the
# whole batch; they differ by the order of float64 summation (a few ulps of the largest gradient entry, times
# the depth of the network), far below 1e-9. Boundary residuals are relative to the magnitude of the face terms
# (boundary_error(relative=True)), so a few ulps: 1e-10 in float64, 1e-5 in float32 (as in tests/boon).
GRAD_RTOL = 1e-9
BC_TOL = 1e-10
BC_TOL32 = 1e-5  # float32 model: a few ulps of eps32 = 1.2e-7, with a margin of about 100x


@st.composite
def boon_setups(draw):
    choice = draw(st.sampled_from(["dirichlet", "neumann", "periodic", "mixed"]))
    a = draw(st.floats(-1, 1))
    if choice == "dirichlet":
        cond = [Dirichlet(left=draw(st.floats(-2, 2)), right=draw(st.floats(-2, 2)))]
    elif choice == "neumann":
        cond = [Neumann(faces=["left", "right"], domain=(a, a + draw(st.floats(0.5, 4))))]
    elif choice == "periodic":
        cond = [Periodic()]
    else:
        cond = [Dirichlet(faces=["left"]), Neumann(right=draw(st.floats(-2, 2)), domain=(0.0, 1.0))]
    config = dict(n_modes=(draw(st.integers(2, 6)),), in_channels=1, out_channels=1,
                  hidden_channels=draw(st.integers(2, 8)), n_layers=draw(st.integers(1, 3)),
                  boundary=[c.to_config() for c in cond], kernel_correction=draw(st.booleans()))
    n = draw(st.integers(12, 33))
    batch = 2 * draw(st.integers(1, 3))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    x = torch.randn(batch, 1, n, generator=g, dtype=torch.float64)
    y = torch.randn(batch, 1, n, generator=g, dtype=torch.float64)
    model = BOONFNO(**config).double()
    keys = model.boundary_spec.required_keys
    values = {k: torch.randn(batch, generator=g, dtype=torch.float64) for k in keys} or None
    return dict(config=config, x=x, y=y, values=values)


def _reference_grads(config, state, x, y, values):
    model = dist_tasks.boon_model(config, state)
    out = model(x, **({} if values is None else {"boundary_values": values}))
    ((out - y) ** 2).mean().backward()
    return {k: p.grad for k, p in model.named_parameters()}


@settings(max_examples=10)
@given(s=boon_setups(), seed=st.integers(0, 1000))
def test_ddp_gradients_equal_across_ranks_and_single_process(gloo_pool, s, seed):
    torch.manual_seed(seed)
    state = {k: v for k, v in dist_tasks.boon_model(s["config"]).state_dict().items() if k != "_metadata"}
    out = gloo_pool.run(dist_tasks.ddp_boon_step, state=state, lr=1e-2, **s)
    ref = _reference_grads(s["config"], state, s["x"], s["y"], s["values"])
    g0, g1 = out[0]["grads"], out[1]["grads"]
    assert g0.keys() == ref.keys()
    scale = max(float(v.abs().max()) for v in ref.values()) + 1e-300
    for k in ref:
        assert torch.equal(g0[k], g1[k]), k  # DDP's all-reduce gives every rank the same bits
        assert float((g0[k] - ref[k]).abs().max()) <= GRAD_RTOL * scale, k
    for k in out[0]["params"]:
        assert torch.equal(out[0]["params"][k], out[1]["params"][k]), k  # replicas stay identical after a step
    # After the optimizer step, each rank's outputs on its own shard still meet the conditions exactly.
    assert out[0]["bc_error"] <= BC_TOL and out[1]["bc_error"] <= BC_TOL


@pytest.mark.parametrize("boundary", [
    [Dirichlet(left=0.25, right=-1.0)],
    [Neumann(left=0.0, domain=(0.0, 2.0)), Dirichlet(faces=["right"])],
])
def test_trainer_ddp_checkpoint_roundtrip(gloo_pool, boundary):
    config = dict(n_modes=(6,), in_channels=1, out_channels=1, hidden_channels=8, n_layers=2,
                  boundary=[c.to_config() for c in boundary], kernel_correction=True)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 1, 24, generator=g)
    y = torch.randn(8, 1, 24, generator=g)
    keys = BOONFNO(**config).boundary_spec.required_keys
    values = {k: torch.randn(8, generator=g) for k in keys} or None
    folder = gloo_pool.run(dist_tasks.scratch_dir)[0]
    try:
        out = gloo_pool.run(dist_tasks.ddp_boon_trainer_checkpoint, config=config, x=x, values=values, y=y,
                            folder=folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    for o in out:
        assert not o["has_metadata_file"]  # neuralop writes no metadata file under DDP...
        assert o["same_output"]  # ...yet the checkpoint loads back to the same model, on every rank
        assert o["bc_error"] <= BC_TOL32
    for k in out[0]["params"]:
        assert torch.equal(out[0]["params"][k], out[1]["params"][k]), k


def test_single_process_helpers(tmp_path):
    model = BOONFNO(n_modes=(4,), in_channels=1, out_channels=1, hidden_channels=4, n_layers=1,
                    boundary=[Dirichlet(left=1.0, right=2.0)]).double()
    assert unwrap_ddp(model) is model
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        unwrap_ddp("model")
    save_ddp_checkpoint(model, tmp_path, "m")
    loaded = load_ddp_checkpoint(tmp_path, "m")
    x = torch.randn(2, 1, 16, dtype=torch.float64)
    assert torch.equal(loaded(x), model(x))
    assert float(boundary_error(loaded(x), loaded.boundary)) <= BC_TOL
    (tmp_path / "m_metadata.pkl").unlink()
    assert torch.equal(load_ddp_checkpoint(tmp_path, "m")(x), model(x))  # from the state dict's _metadata
    with pytest.raises(FileNotFoundError, match="no state dict"):
        load_ddp_checkpoint(tmp_path, "other")
    with pytest.raises(TypeError, match="model_kwargs must be a dict"):
        load_ddp_checkpoint(tmp_path, "m", model_kwargs=[1])
