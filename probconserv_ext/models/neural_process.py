"""Attentive neural process: a per-point Gaussian prediction conditioned on sparse observations of the solution.

The ProbConserv paper's base model. Given context observations ``(x_c, u_c)`` of one solution (here ``x`` are the
space-time coordinates ``(x, t)``) it predicts ``u`` at target coordinates. Two paths encode the context:

* a deterministic path: each context point ``(x_c, u_c)`` is embedded, and each target attends to the context
  points (multi-head cross-attention, queries and keys from the coordinates only), so a target near an observation
  reads that observation;
* a latent path: the embedded context points are mean-pooled into a Gaussian over a global latent ``z`` (the
  uncertainty about which function of the family was observed).

A decoder maps ``(target coordinate, attended summary, z)`` to a mean and a standard deviation
``softplus(.) + min_std``. :meth:`AttentiveNeuralProcess.predict` averages over ``n_latent`` latent draws: the mean is
the mean of the decoded means, the variance the mean of the decoded variances plus the variance of the decoded means.

References
----------
.. [1] Garnelo, M. et al. "Neural processes", ICML workshop 2018.
.. [2] Kim, H. et al. "Attentive neural processes", ICLR 2019.
.. [3] Hansen, D., Maddix, D. C., Alizadeh, S., Gupta, G., Mahoney, M. W. "Learning physical models that can
   respect conservation laws", ICML 2023.
"""

import math

import torch
from torch import nn
from torch.distributions import Normal, kl_divergence
from torch.nn import functional as F

from ._seeding import check_seed, seeded

__all__ = ["AttentiveNeuralProcess", "fit_neural_process", "sample_observations"]


def _mlp(sizes):
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def _check_int(name, v, lo):
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")
    return v


def _check_generator(generator):
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")


class AttentiveNeuralProcess(nn.Module):
    """Attentive neural process over ``x_dim``-dimensional coordinates with scalar outputs.

    Parameters
    ----------
    x_dim : int
        Coordinate dimension (2 for ``(x, t)``). Coordinates are best scaled to about [0, 1].
    hidden : int
        Width of every layer and of the deterministic summary (the paper uses 128).
    latent : int
        Dimension of the global latent ``z``.
    n_heads : int
        Attention heads; must divide ``hidden``.
    n_layers : int
        Layers of each encoder and of the decoder MLP (>= 2).
    min_std : float
        Added to the decoder's ``softplus`` standard deviation (> 0; the paper uses 1e-3).
    seed : int
        Seed of the initial weights; the caller's global random state is unchanged (seeding inside
        ``torch.random.fork_rng``) and the same seed gives the same model.

    Raises
    ------
    ValueError
        If a size is not a positive integer, ``hidden`` is not a multiple of ``n_heads``, ``min_std`` is not positive
        and finite, or ``seed`` is negative.
    TypeError
        If ``seed`` is not an integer.

    Examples
    --------
    >>> model = AttentiveNeuralProcess(seed=0)
    >>> prior = model.predict(x_context, u_context, x_target, n_latent=100, seed=1)   # Normal, shape (batch, ...)
    >>> post = ProbConserv(conservation_constraint(grid))(prior, b=totals)
    """

    def __init__(self, x_dim=2, hidden=128, latent=128, n_heads=4, n_layers=3, min_std=1e-3, seed=0):
        super().__init__()
        _check_int("x_dim", x_dim, 1)
        _check_int("hidden", hidden, 1)
        _check_int("latent", latent, 1)
        _check_int("n_heads", n_heads, 1)
        _check_int("n_layers", n_layers, 2)
        if hidden % n_heads:
            raise ValueError(f"hidden ({hidden}) must be a multiple of n_heads ({n_heads})")
        if isinstance(min_std, bool) or not (isinstance(min_std, (int, float)) and 0 < min_std < math.inf):
            raise ValueError(f"min_std must be a positive finite float, got {min_std!r}")
        check_seed(seed)
        self.x_dim, self.hidden, self.latent, self.min_std, self.seed = x_dim, hidden, latent, float(min_std), seed
        with seeded(seed):
            self.det_encoder = _mlp([x_dim + 1] + [hidden] * n_layers)
            self.key_encoder = _mlp([x_dim, hidden, hidden])
            self.attention = nn.MultiheadAttention(hidden, n_heads, batch_first=True)
            self.lat_encoder = _mlp([x_dim + 1] + [hidden] * n_layers)
            self.lat_head = _mlp([hidden, hidden, 2 * latent])
            self.decoder = _mlp([x_dim + hidden + latent] + [hidden] * (n_layers - 1) + [2])

    # ------------------------------------------------------------------ input checks
    def _check_inputs(self, x_context, u_context, x_target):
        for name, t in (("x_context", x_context), ("u_context", u_context), ("x_target", x_target)):
            if not isinstance(t, torch.Tensor):
                raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
            if not t.is_floating_point():
                raise TypeError(f"{name} must be a floating tensor, got {t.dtype}")
        if x_context.ndim != 3 or x_context.shape[-1] != self.x_dim or x_context.shape[1] < 1:
            raise ValueError(f"x_context must have shape (batch, n_context >= 1, {self.x_dim}), "
                             f"got {tuple(x_context.shape)}")
        if u_context.shape != x_context.shape[:2]:
            raise ValueError(f"u_context must have shape (batch, n_context) = {tuple(x_context.shape[:2])}, "
                             f"got {tuple(u_context.shape)}")
        if x_target.ndim < 3 or x_target.shape[0] != x_context.shape[0] or x_target.shape[-1] != self.x_dim:
            raise ValueError(f"x_target must have shape (batch, ..., {self.x_dim}) with batch = "
                             f"{x_context.shape[0]}, got {tuple(x_target.shape)}")
        for name, t in (("x_context", x_context), ("u_context", u_context), ("x_target", x_target)):
            if not bool(torch.isfinite(t).all()):
                raise ValueError(f"{name} must be finite (no NaN or inf)")
        # the layers compute in the weights' dtype (e.g. float64 grids fed to a float32 model)
        dtype = self.decoder[0].weight.dtype
        return x_context.to(dtype), u_context.to(dtype), x_target.to(dtype)

    # ------------------------------------------------------------------ the two paths and the decoder
    def latent_distribution(self, x_context, u_context):
        """Gaussian over ``z`` from the mean-pooled context, batch shape ``(batch,)``, event ``(latent,)`` as Normal.

        Parameters
        ----------
        x_context : torch.Tensor, shape (batch, n_context, x_dim)
        u_context : torch.Tensor, shape (batch, n_context)

        Returns
        -------
        torch.distributions.Normal
            ``loc`` and ``scale`` of shape ``(batch, latent)``; the scale lies in (0.1, 1) (a floor keeps the
            KL term of training bounded).
        """
        s = self.lat_encoder(torch.cat([x_context, u_context[..., None]], -1)).mean(1)
        mu, raw = self.lat_head(s).chunk(2, -1)
        return Normal(mu, 0.1 + 0.9 * torch.sigmoid(raw))

    def deterministic_summary(self, x_context, u_context, x_target):
        """Cross-attention of each target coordinate over the embedded context points.

        Parameters
        ----------
        x_context : torch.Tensor, shape (batch, n_context, x_dim)
        u_context : torch.Tensor, shape (batch, n_context)
        x_target : torch.Tensor, shape (batch, n_target, x_dim)

        Returns
        -------
        torch.Tensor, shape (batch, n_target, hidden)
        """
        values = self.det_encoder(torch.cat([x_context, u_context[..., None]], -1))
        out, _ = self.attention(self.key_encoder(x_target), self.key_encoder(x_context), values,
                                need_weights=False)
        return out

    def decode(self, x_target, summary, z):
        """Mean and standard deviation per target for latent draws ``z``.

        Parameters
        ----------
        x_target : torch.Tensor, shape (batch, n_target, x_dim)
        summary : torch.Tensor, shape (batch, n_target, hidden)
        z : torch.Tensor, shape (S, batch, latent)

        Returns
        -------
        (torch.Tensor, torch.Tensor)
            Mean and standard deviation (``softplus + min_std``), each ``(S, batch, n_target)``.
        """
        s = z.shape[0]
        feats = torch.cat([x_target, summary], -1).expand(s, *x_target.shape[:2], -1)
        zz = z[:, :, None, :].expand(-1, -1, x_target.shape[1], -1)
        mean, raw = self.decoder(torch.cat([feats, zz], -1)).unbind(-1)
        return mean, F.softplus(raw) + self.min_std

    def forward(self, x_context, u_context, x_target, n_latent=1, generator=None):
        """Decoded means and standard deviations for ``n_latent`` draws of ``z`` from the context's latent.

        Differentiable (the draws are reparametrised).

        Parameters
        ----------
        x_context : torch.Tensor, shape (batch, n_context, x_dim)
        u_context : torch.Tensor, shape (batch, n_context)
        x_target : torch.Tensor, shape (batch, ..., x_dim)
        n_latent : int
        generator : torch.Generator, optional
            Source of the latent draws; ``None`` uses torch's global generator.

        Returns
        -------
        (torch.Tensor, torch.Tensor)
            Each of shape ``(n_latent, batch, ...)``.

        Raises
        ------
        TypeError, ValueError
            For inputs of the wrong type, shape, or with non-finite values.
        """
        x_context, u_context, x_target = self._check_inputs(x_context, u_context, x_target)
        _check_int("n_latent", n_latent, 1)
        _check_generator(generator)
        lead = x_target.shape[1:-1]
        xt = x_target.reshape(x_target.shape[0], -1, self.x_dim)
        q = self.latent_distribution(x_context, u_context)
        eps = torch.randn((n_latent, *q.loc.shape), generator=generator, dtype=q.loc.dtype, device=q.loc.device)
        z = q.loc + q.scale * eps
        mean, std = self.decode(xt, self.deterministic_summary(x_context, u_context, xt), z)
        return mean.reshape(n_latent, -1, *lead), std.reshape(n_latent, -1, *lead)

    def elbo_loss(self, x_context, u_context, x_target, u_target, generator=None):
        """Negative evidence lower bound per target point (the training loss).

        ``-E_q(z | all)[log p(u_target | z, context)] / n_target + KL(q(z | all) || q(z | context)) / n_target``,
        where ``all`` is the context together with the targets (the targets should include the context points).

        Parameters
        ----------
        x_context, u_context, x_target : torch.Tensor
            As in :meth:`forward`, the targets of shape ``(batch, n_target, x_dim)``.
        u_target : torch.Tensor, shape (batch, n_target)
        generator : torch.Generator, optional

        Returns
        -------
        torch.Tensor, scalar
        """
        x_context, u_context, x_target = self._check_inputs(x_context, u_context, x_target)
        if not isinstance(u_target, torch.Tensor) or x_target.ndim != 3 or u_target.shape != x_target.shape[:2]:
            raise ValueError(f"u_target must be a tensor of shape {tuple(x_target.shape[:2])}, "
                             f"got {getattr(u_target, 'shape', u_target)}")
        if not bool(torch.isfinite(u_target).all()):
            raise ValueError("u_target must be finite (no NaN or inf)")
        u_target = u_target.to(x_target.dtype)
        _check_generator(generator)
        q_all = self.latent_distribution(x_target, u_target)
        q_ctx = self.latent_distribution(x_context, u_context)
        eps = torch.randn(q_all.loc.shape, generator=generator, dtype=q_all.loc.dtype, device=q_all.loc.device)
        z = (q_all.loc + q_all.scale * eps)[None]
        mean, std = self.decode(x_target, self.deterministic_summary(x_context, u_context, x_target), z)
        nll = -Normal(mean[0], std[0]).log_prob(u_target).mean()
        kl = kl_divergence(q_all, q_ctx).sum(-1).mean() / x_target.shape[1]
        return nll + kl

    @torch.no_grad()
    def predict(self, x_context, u_context, x_target, n_latent=100, seed=None, generator=None, dtype=torch.float64,
                chunk=8):
        """Per-point Gaussian prediction, ready for :class:`~probconserv_ext.ProbConserv`.

        The mean is the average of the decoded means over ``n_latent`` latent draws; the variance the average of the
        decoded variances plus the (population) variance of the decoded means.

        Parameters
        ----------
        x_context : torch.Tensor, shape (batch, n_context, x_dim)
        u_context : torch.Tensor, shape (batch, n_context)
        x_target : torch.Tensor, shape (batch, ..., x_dim)
            E.g. ``(batch, n_times, n_x, 2)`` for fields on a space-time grid: the constraint then acts on the last
            dimension of the prediction.
        n_latent : int
            Latent draws (the paper uses 100).
        seed : int, optional
            Seed of a local generator for the draws (exclusive with ``generator``); with neither, torch's global
            generator is used (and advanced).
        generator : torch.Generator, optional
        dtype : torch.dtype
            Dtype of the returned distribution (float64, the layer's compute dtype, by default).
        chunk : int
            Functions decoded at a time (bounds memory: ``chunk * n_latent * n_target * hidden`` floats).

        Returns
        -------
        torch.distributions.Normal
            Batch shape ``(batch, ...)`` (``x_target``'s shape without its last dimension). ``sample`` via the
            distribution (e.g. :func:`probconserv_ext.draw_samples` with a generator).

        Raises
        ------
        TypeError, ValueError
            For bad inputs, both ``seed`` and ``generator``, or a bad ``dtype``.
        """
        self._check_inputs(x_context, u_context, x_target)
        _check_int("n_latent", n_latent, 1)
        _check_int("chunk", chunk, 1)
        _check_generator(generator)
        if seed is not None and generator is not None:
            raise ValueError("pass seed or generator, not both")
        if seed is not None:
            generator = torch.Generator(device=x_context.device).manual_seed(check_seed(seed))
        if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
            raise ValueError(f"dtype must be a floating torch.dtype, got {dtype!r}")
        means, variances = [], []
        for i in range(0, x_context.shape[0], chunk):
            sl = slice(i, i + chunk)
            m, s = self(x_context[sl], u_context[sl], x_target[sl], n_latent, generator)
            m, s = m.to(torch.float64), s.to(torch.float64)
            means.append(m.mean(0))
            variances.append((s**2).mean(0) + m.var(0, unbiased=False))
        return Normal(torch.cat(means).to(dtype), torch.cat(variances).sqrt().to(dtype))


def sample_observations(fields, n_times, n_points, generator):
    """Indices of ``n_times x n_points`` observations per field: random time slices times random nodes.

    Parameters
    ----------
    fields : torch.Tensor, shape (batch, nt, nx)
    n_times, n_points : int
        At most ``nt`` and ``nx``.
    generator : torch.Generator

    Returns
    -------
    (torch.Tensor, torch.Tensor)
        Time and node indices, each ``(batch, n_times * n_points)`` (the tensor product of the chosen slices and
        nodes, drawn without replacement).
    """
    if not isinstance(fields, torch.Tensor) or fields.ndim != 3:
        raise ValueError(f"fields must be a tensor of shape (batch, nt, nx), got {getattr(fields, 'shape', fields)}")
    b, nt, nx = fields.shape
    _check_int("n_times", n_times, 1)
    _check_int("n_points", n_points, 1)
    if n_times > nt or n_points > nx:
        raise ValueError(f"n_times <= nt = {nt} and n_points <= nx = {nx} are needed, got {n_times}, {n_points}")
    ti = torch.rand(b, nt, generator=generator).argsort(-1)[:, :n_times]
    xi = torch.rand(b, nx, generator=generator).argsort(-1)[:, :n_points]
    return (ti[:, :, None].expand(-1, -1, n_points).reshape(b, -1),
            xi[:, None, :].expand(-1, n_times, -1).reshape(b, -1))


def _gather(fields, coords, ti, xi):
    """Values and ``(x, t)`` coordinates at time indices ``ti`` and node indices ``xi``."""
    rows = torch.arange(fields.shape[0])[:, None]
    u = fields[rows, ti, xi]
    x = torch.stack([coords[0][xi], coords[1][ti]], -1)
    return x, u


def fit_neural_process(model, fields, x_grid, t_grid, steps=1000, lr=1e-4, batch_size=16, n_times=10, n_points=10,
                       n_target=256, seed=0, progress=False):
    """Train an :class:`AttentiveNeuralProcess` on fields sampled on a space-time grid.

    Each step takes ``batch_size`` fields, a context of ``n_times x n_points`` observations (random time slices times
    random nodes, the test-time pattern) and targets made of ``n_target`` random grid points plus the context, and
    takes an Adam step on :meth:`AttentiveNeuralProcess.elbo_loss`.

    Parameters
    ----------
    model : AttentiveNeuralProcess
        With ``x_dim = 2``.
    fields : torch.Tensor, shape (n_fields, nt, nx)
        Training solutions, finite.
    x_grid : torch.Tensor, shape (nx,)
        Node coordinates as the model sees them (scaled to about [0, 1]).
    t_grid : torch.Tensor, shape (nt,)
        Time coordinates as the model sees them.
    steps, batch_size, n_times, n_points, n_target : int
    lr : float
    seed : int
        Seed of the local generator of the batches, observations and latent draws: the global random state is
        neither read nor changed, and the same seed and model give the same trained weights.
    progress : bool
        Show a tqdm bar.

    Returns
    -------
    list of float
        Loss per step.

    Raises
    ------
    TypeError
        If ``model`` is not an :class:`AttentiveNeuralProcess` with ``x_dim = 2``.
    ValueError
        For bad sizes or data.
    """
    from tqdm.auto import tqdm

    if not isinstance(model, AttentiveNeuralProcess) or model.x_dim != 2:
        raise TypeError(f"model must be an AttentiveNeuralProcess with x_dim=2, got {type(model).__name__}")
    if not isinstance(fields, torch.Tensor) or fields.ndim != 3 or not fields.is_floating_point():
        raise ValueError(
            f"fields must be a floating tensor of shape (n, nt, nx), got {getattr(fields, 'shape', fields)}")
    if not bool(torch.isfinite(fields).all()):
        raise ValueError("fields must be finite (no NaN or inf)")
    for name, g, size in (("x_grid", x_grid, fields.shape[2]), ("t_grid", t_grid, fields.shape[1])):
        if not isinstance(g, torch.Tensor) or g.shape != (size,):
            raise ValueError(f"{name} must be a tensor of shape ({size},), got {getattr(g, 'shape', g)}")
    for name, v in (("steps", steps), ("batch_size", batch_size), ("n_target", n_target)):
        _check_int(name, v, 1)
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 0 < lr < math.inf:
        raise ValueError(f"lr must be a positive finite float, got {lr!r}")
    check_seed(seed)
    dtype = next(model.parameters()).dtype
    fields = fields.to(dtype)
    coords = (x_grid.to(dtype), t_grid.to(dtype))
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    # cosine decay: a short run (far fewer steps than the paper's 500 epochs) still ends at a small step size
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    n, nt, nx = fields.shape
    losses = []
    model.train()
    bar = tqdm(range(steps), desc="ANP", leave=False, disable=not progress)
    for _ in bar:
        idx = torch.randint(0, n, (min(batch_size, n),), generator=gen)
        batch = fields[idx]
        ti, xi = sample_observations(batch, n_times, n_points, gen)
        xc, uc = _gather(batch, coords, ti, xi)
        tt = torch.randint(0, nt, (len(idx), n_target), generator=gen)
        tx = torch.randint(0, nx, (len(idx), n_target), generator=gen)
        xt, ut = _gather(batch, coords, torch.cat([tt, ti], 1), torch.cat([tx, xi], 1))
        opt.zero_grad()
        loss = model.elbo_loss(xc, uc, xt, ut, generator=gen)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        if len(losses) % 50 == 0:
            bar.set_postfix(loss=f"{sum(losses[-50:]) / 50:.3e}")
    model.eval()
    return losses
