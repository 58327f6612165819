"""``boon_ext.wall_error_share``: the share of a prediction's squared error that exact Dirichlet walls remove.

Checked against what BOON's own output step does to a random prediction of a target that meets random conditions
(1-D to 3-D, space-time, per-channel and mixed conditions, corners shared by Dirichlet and Neumann or periodic
faces): the nodes the step makes exact are the nodes counted, and with Dirichlet faces only, the RMS error falls by
exactly the returned gain. Then the weighting by each sample's norm, the extremes of floating point, and refusals.
"""

import math

import pytest
import torch
from boon_strategies import call_values, conditions_1d, nd_conditions
from hypothesis import given, settings
from hypothesis import strategies as st

from boon_ext import BoundarySpec, Dirichlet, Neumann, WallShare, enforce_boundary, wall_error_share


def _case(data, n_dim, dtype, time_axis=None):
    channels = data.draw(st.integers(1, 3))
    if n_dim == 1:
        conditions = data.draw(conditions_1d())
    else:
        conditions = data.draw(nd_conditions(n_dim, channels, time_axis=time_axis))
    time_dim = None if time_axis is None else time_axis - n_dim
    spec = BoundarySpec(conditions, n_dim, time_dim, out_channels=channels)
    shape = tuple(data.draw(st.integers(4, 9)) for _ in range(n_dim))
    batch = data.draw(st.integers(1, 3))
    values = call_values(data.draw, spec, batch, channels, dtype=dtype)
    seed = data.draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    # a target that meets the conditions, and a prediction that misses it everywhere, the walls by more
    target = enforce_boundary(torch.randn(batch, channels, *shape, generator=g, dtype=dtype), spec, values)
    scale = data.draw(st.floats(0.01, 100.0))
    prediction = target + scale * torch.randn(target.shape, generator=g, dtype=dtype)
    return conditions, spec, values, target, prediction, time_dim


def _check_against_enforcement(spec, values, target, prediction):
    if not any(r.kind == "dirichlet" for r in spec.rules):
        with pytest.raises(ValueError, match="boundary must hold a Dirichlet condition"):
            wall_error_share(prediction, target, spec)
        return None
    got = wall_error_share(prediction, target, spec, values)  # the target's walls checked against the values
    assert wall_error_share(prediction, target, spec) == got
    enforced = enforce_boundary(prediction, spec, values)
    # the nodes the output step makes exact: equal to the target's, bit for bit (same values, same operations)
    exact = (enforced == target) & (prediction != target)
    err2 = (prediction.double() - target.double()) ** 2
    share = float((err2 * exact).sum() / err2.sum())
    assert got.error_share == pytest.approx(share, rel=1e-9, abs=1e-15)
    assert got.node_share > 0
    if all(r.kind == "dirichlet" for r in spec.rules):
        ratio = float(err2.sum().sqrt() / ((enforced.double() - target.double()) ** 2).sum().sqrt())
        assert got.gain == pytest.approx(ratio, rel=1e-9)
    assert got.gain == pytest.approx(1 / math.sqrt(1 - got.error_share)) or got.error_share == 1.0
    return got


@settings(max_examples=60, deadline=None)
@given(data=st.data(), dtype=st.sampled_from([torch.float32, torch.float64]))
def test_1d_counts_what_the_output_step_makes_exact(data, dtype):
    _, spec, values, target, prediction, _ = _case(data, 1, dtype)
    _check_against_enforcement(spec, values, target, prediction)


@settings(max_examples=60, deadline=None)
@given(data=st.data(), n_dim=st.sampled_from([2, 3]), dtype=st.sampled_from([torch.float32, torch.float64]))
def test_nd_corners_and_channel_subsets_count_as_the_output_step_leaves_them(data, n_dim, dtype):
    _, spec, values, target, prediction, _ = _case(data, n_dim, dtype)
    _check_against_enforcement(spec, values, target, prediction)


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_space_time_walls_hold_at_every_frame(data):
    conditions, spec, values, target, prediction, time_dim = _case(data, 2, torch.float64, time_axis=1)
    got = _check_against_enforcement(spec, values, target, prediction)
    if got is not None:  # the conditions as a list with the time axis: the same answer
        assert wall_error_share(prediction, target, conditions, time_dim=time_dim) == got


def test_node_share_and_gain_on_a_known_field():
    y = torch.zeros(2, 2, 10, 5)
    pred = y.clone()
    pred[:, 0, 0, :] = 3.0  # channel 0's left face along x: 5 nodes per sample
    pred[:, :, 4, :] = 1.0  # an interior row, both channels: 10 nodes per sample
    walls = Dirichlet(left=0.0, dim=-2, channels=[0])
    got = wall_error_share(pred, y, walls)
    assert isinstance(got, WallShare)
    assert got.node_share == pytest.approx(5 / 100)
    assert got.error_share == pytest.approx(9 * 5 / (9 * 5 + 10))
    assert got.gain == pytest.approx(math.sqrt((9 * 5 + 10) / 10))
    # a prediction that is exact: nothing to remove; all the error at the walls: an infinite gain
    assert wall_error_share(y, y, walls) == WallShare(0.0, 0.05, 1.0)
    only_walls = y.clone()
    only_walls[:, 0, 0, :] = 1.0
    assert wall_error_share(only_walls, y, walls).gain == math.inf
    # Neumann faces set their node from the nodes behind it: not counted beside a Dirichlet face
    mixed = wall_error_share(pred, y, [walls, Neumann(right=0.0, dim=-2)])
    assert mixed == got


def test_relative_weights_each_sample_by_its_norm_as_the_campaign_does():
    torch.manual_seed(1)
    y = torch.randn(3, 1, 12) * torch.tensor([1.0, 10.0, 100.0]).view(3, 1, 1)
    y[..., 0] = y[..., -1] = 0.0  # the targets meet the walls
    pred = y + torch.randn(3, 1, 12)
    walls = [Dirichlet(left=0.0, right=0.0)]
    e2 = (pred.double() - y.double()) ** 2  # as the function forms it: in float64
    w = 1 / (y.double() ** 2).sum(dim=(1, 2))
    at_walls = (e2[..., 0] + e2[..., -1]).sum(dim=1)
    share = float((w * at_walls).sum() / (w * e2.sum(dim=(1, 2))).sum())
    got = wall_error_share(pred, y, walls, relative=True)
    assert got.error_share == pytest.approx(share, rel=1e-12)
    assert wall_error_share(pred, y, walls).error_share == pytest.approx(float(at_walls.sum() / e2.sum()), rel=1e-12)
    # the gain is that of the relative RMS error: sqrt(mean over samples of ||e||^2/||y||^2), walls made exact
    exact = pred.clone()
    exact[..., 0], exact[..., -1] = y[..., 0], y[..., -1]

    def rms(u):
        return float((((u.double() - y.double()) ** 2).sum(dim=(1, 2)) * w).mean().sqrt())

    assert got.gain == pytest.approx(rms(pred) / rms(exact), rel=1e-12)
    with pytest.raises(ValueError, match="no all-zero sample"):
        wall_error_share(pred, torch.cat([y[:2], torch.zeros(1, 1, 12)]), walls, relative=True)
    assert got.error_share > 0.01  # the walls carry a real part of the error: the test can tell the weightings apart


def test_extreme_magnitudes_neither_overflow_nor_vanish():
    walls = Dirichlet(left=0.0, right=0.0)
    y = torch.zeros(1, 1, 8, dtype=torch.float64)
    for scale in (1e-170, 1.0, 1e200):
        pred = y.clone()
        pred[..., 0], pred[..., 3] = 2 * scale, scale  # wall error 4 scale^2, interior scale^2
        got = wall_error_share(pred, y, walls)
        assert got.error_share == pytest.approx(0.8) and got.gain == pytest.approx(5 ** 0.5)
    pred = y.clone()
    pred[..., 0], pred[..., 3] = 1.0, 1e-9  # nearly all the error at the wall: a large gain, not inf
    assert wall_error_share(pred, y, walls).gain == pytest.approx(1e9, rel=1e-6)


def test_bad_inputs_are_refused_by_name():
    walls = Dirichlet(left=0.0)
    y = torch.zeros(2, 1, 8)
    with pytest.raises(ValueError, match="target must have the prediction's shape"):
        wall_error_share(y, torch.zeros(2, 1, 9), walls)
    with pytest.raises(TypeError, match="prediction must be a real floating-point tensor"):
        wall_error_share(torch.zeros(2, 1, 8, dtype=torch.long), y, walls)
    with pytest.raises(TypeError, match="target must be a torch.Tensor"):
        wall_error_share(y, [[0.0] * 8] * 2, walls)
    with pytest.raises(ValueError, match="prediction must have shape"):
        wall_error_share(torch.zeros(2, 8), torch.zeros(2, 8), walls)
    bad = y.clone()
    bad[0, 0, 3] = float("nan")
    with pytest.raises(ValueError, match="prediction must be finite"):
        wall_error_share(bad, y, walls)
    with pytest.raises(ValueError, match="target must be finite"):
        wall_error_share(y, bad, walls)
    with pytest.raises(ValueError, match="boundary must hold a Dirichlet condition"):
        wall_error_share(y, y, [Neumann(left=0.0)])
    with pytest.raises(ValueError, match="at least one sample"):
        wall_error_share(torch.zeros(0, 1, 8), torch.zeros(0, 1, 8), walls)
    with pytest.raises(TypeError, match="relative"):
        wall_error_share(y, y, walls, relative="yes")
    with pytest.raises(ValueError, match="target must be on the prediction's device"):
        wall_error_share(y, torch.zeros(2, 1, 8, device="meta"), walls)


def test_a_target_that_misses_its_walls_is_refused_where_the_values_are_known():
    y = torch.ones(2, 1, 8)
    pred = y + 0.1
    with pytest.raises(ValueError, match="target must meet its Dirichlet conditions.*left face of spatial axis 0"):
        wall_error_share(pred, y, Dirichlet(left=0.0, right=1.0))  # constants: always checked
    walls = Dirichlet(faces=["left", "right"])
    assert wall_error_share(pred, y, walls).node_share == 2 / 8  # call-time values not given: not checked
    assert wall_error_share(pred, y, walls, {"left": torch.ones(2), "right": torch.ones(2)}).gain > 1
    with pytest.raises(ValueError, match="right face of spatial axis 0 \\('right'\\)"):
        wall_error_share(pred, y, walls, {"left": torch.ones(2), "right": torch.zeros(2)})
    # float32 round-off of a value is not a miss
    y32 = torch.full((1, 1, 8), 0.1, dtype=torch.float32)
    assert wall_error_share(y32 + 1, y32, Dirichlet(left=0.1)).error_share > 0
