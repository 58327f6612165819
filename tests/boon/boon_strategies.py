"""Hypothesis strategies shared by the BOON tests: random FNO/TFNO settings and random boundary conditions."""

import torch
from hypothesis import strategies as st

from boon_ext import Dirichlet, Neumann, Periodic

# Tolerances on the relative boundary residual (|residual| / magnitude of the constraint's terms). Enforcement
# is a handful of flops per face node, so its rounding error is a few ulps of those terms; 1e-5 in float32
# (eps 1.2e-7) and 1e-10 in float64 (eps 2.2e-16) leave a margin of about 100x and 10^5x.
TOL = {torch.float32: 1e-5, torch.float64: 1e-10}

finite = st.floats(-10, 10, allow_nan=False, allow_infinity=False)


@st.composite
def face_condition(draw, side, kind, dim=-1, domain=(0.0, 1.0)):
    """One condition on one face, constant or supplied at call time."""
    constant = draw(st.booleans())
    if kind == "dirichlet":
        return Dirichlet(**({side: draw(finite)} if constant else {"faces": [side]}), dim=dim)
    return Neumann(**({side: draw(finite)} if constant else {"faces": [side]}), dim=dim, domain=domain,
                   order=draw(st.sampled_from([1, 2])))


@st.composite
def conditions_1d(draw):
    """Dirichlet, Neumann, periodic, or a mix of types on the two faces of the last axis."""
    choice = draw(st.sampled_from(["periodic", "dirichlet", "neumann", "mixed", "one-sided"]))
    if choice == "periodic":
        return [Periodic()]
    a = draw(st.floats(-2, 2))
    domain = (a, a + draw(st.floats(0.1, 10)))
    if choice in ("dirichlet", "neumann"):
        kinds = (choice, choice)
    elif choice == "mixed":
        kinds = tuple(draw(st.permutations(["dirichlet", "neumann"])))
    else:
        side = draw(st.sampled_from(["left", "right"]))
        return [draw(face_condition(side, draw(st.sampled_from(["dirichlet", "neumann"])), domain=domain))]
    return [draw(face_condition("left", kinds[0], domain=domain)), draw(face_condition("right", kinds[1], domain=domain))]


def call_values(draw, spec, batch, channels, face_shape=(), dtype=torch.float32):
    """Random call-time values for every face of ``spec`` that needs one, in a random accepted shape."""
    values = {}
    for rule in spec.rules:
        if not rule.needs_value:
            continue
        n_sel = channels if rule.channels is None else len(rule.channels)
        shapes = [(batch,), (batch, n_sel)]
        if face_shape:
            shapes.append((batch, n_sel, *face_shape))
            shapes.append((batch, 1, *face_shape))
        shape = draw(st.sampled_from(shapes))
        seed = draw(st.integers(0, 2**31 - 1))
        g = torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)
        values[rule.key] = g * draw(st.floats(0.1, 10))
    return values


@st.composite
def fno_kwargs(draw, n_dim=1, max_width=12):
    """Random FNO settings that the BOON correction supports."""
    factorization = draw(st.sampled_from([None, None, "tucker", "cp"]))
    modes = [draw(st.integers(2, 12)) for _ in range(n_dim)]
    kw = dict(
        n_modes=tuple(modes),
        in_channels=draw(st.integers(1, 2)),
        out_channels=draw(st.integers(1, 3)),
        hidden_channels=draw(st.integers(2, max_width)),
        n_layers=draw(st.integers(1, 4)),
        fno_skip=draw(st.sampled_from(["linear", "identity", "soft-gating", None])),
        channel_mlp_skip=draw(st.sampled_from(["linear", "identity", "soft-gating", None])),
        use_channel_mlp=draw(st.booleans()),
        positional_embedding=draw(st.sampled_from(["grid", None])),
        factorization=factorization,
        rank=draw(st.sampled_from([0.5, 1.0])) if factorization else 1.0,
        separable=draw(st.booleans()) if factorization is None else False,
    )
    if kw["channel_mlp_skip"] in ("identity", "soft-gating") or kw["fno_skip"] in ("soft-gating",):
        pass  # width is preserved inside the blocks, so every skip type is valid
    return kw


def randomize(model, seed, scale=1.0):
    """Give every parameter random values (so the tests do not depend on the initialisation)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            noise = torch.randn(p.shape, generator=g, dtype=torch.float64)
            if p.is_complex():
                noise = torch.complex(noise, torch.randn(p.shape, generator=g, dtype=torch.float64))
            p.copy_((noise * scale * p.abs().mean().clamp_min(0.1)).to(p.dtype))
    return model


@st.composite
def nd_conditions(draw, n_dim, out_channels, time_axis=None):
    """Random conditions on a random subset of faces of the spatial axes, mixed types, some per channel."""
    conditions = []
    axes = [a for a in range(n_dim) if a != time_axis]
    for axis in draw(st.lists(st.sampled_from(axes), unique=True, min_size=1, max_size=len(axes))):
        dim = axis - n_dim
        per_channel = out_channels > 1 and draw(st.booleans())
        groups = [[c] for c in range(out_channels)] if per_channel else [None]
        for channels in groups:
            kind = draw(st.sampled_from(["dirichlet", "neumann", "periodic", "mixed", "one"]))
            if kind == "periodic":
                conditions.append(Periodic(dim=dim, channels=channels))
                continue
            kinds = {"dirichlet": ["dirichlet"] * 2, "neumann": ["neumann"] * 2,
                     "mixed": draw(st.permutations(["dirichlet", "neumann"])),
                     "one": [draw(st.sampled_from(["dirichlet", "neumann"]))]}[kind]
            sides = ["left", "right"] if len(kinds) == 2 else [draw(st.sampled_from(["left", "right"]))]
            for side, k in zip(sides, kinds):
                constant = draw(st.booleans())
                kw = dict(dim=dim, channels=channels)
                if not constant:
                    kw["faces"] = [side]
                    if channels is not None:
                        kw["keys"] = {side: f"{side}{axis}c{channels[0]}"}
                else:
                    kw[side] = draw(st.floats(-3, 3))
                if k == "neumann":
                    kw.update(domain=(0.0, draw(st.floats(0.5, 4.0))))
                conditions.append((Dirichlet if k == "dirichlet" else Neumann)(**kw))
    return conditions
