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

from contextlib import contextmanager
from typing import Iterator, List, Optional, Sequence, Tuple

import torch
from torch import nn
from torch.distributions import Normal, kl_divergence
from torch.nn import functional as F

from _physics_constrained.validation import (check_bool, check_compute_dtype, check_finite, check_generator,
                                              check_int, check_real, check_tensor)
from ._seeding import seeded

__all__ = ["AttentiveNeuralProcess", "fit_neural_process", "sample_observations"]


def _mlp(sizes: Sequence[int], dropout: float = 0.0) -> nn.Sequential:
    # no Dropout module at rate 0, so that the default model's state-dict keys stay what they were
    layers: List[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class _SelfAttention(nn.Module):
    """One residual multi-head self-attention layer over a set of embedded points, ``x + attention(x, x, x)``."""

    def __init__(self, hidden: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        self.attention = nn.MultiheadAttention(hidden, n_heads, dropout=dropout, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.attention(x, x, x, need_weights=False)[0]


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
    self_attention : bool
        Add one residual self-attention layer over the embedded context points to each encoder (the attentive
        neural process of Kim et al. [2]_ and of the ProbConserv reference configuration), so that each context
        point's embedding sees the others before the cross-attention and the latent pooling.
    dropout : float
        Dropout rate in [0, 1) after every hidden layer of the encoders and the decoder and inside the attention
        layers (the reference configuration uses 0.1). Active in training; at test time only inside
        :meth:`test_time_dropout` (``predict(..., test_time_dropout=True)``).
    decoder_hidden : int, optional
        Width of the decoder's hidden layers (default ``hidden``; the reference configuration uses 384).
    decoder_layers : int, optional
        Number of the decoder's hidden layers (default ``n_layers - 1``; the reference configuration uses 3).

    Raises
    ------
    TypeError
        If a size or ``seed`` is not an integer, ``min_std`` or ``dropout`` not a real number, or
        ``self_attention`` not a bool.
    ValueError
        If a size is not positive (``n_layers`` smaller than 2), ``hidden`` is not a multiple of ``n_heads``,
        ``min_std`` is not positive and finite, ``dropout`` is outside [0, 1), or ``seed`` is negative.

    Examples
    --------
    >>> model = AttentiveNeuralProcess(seed=0)
    >>> prior = model.predict(x_context, u_context, x_target, n_latent=100, seed=1)   # Normal, shape (batch, ...)
    >>> post = ProbConserv(conservation_constraint(grid))(prior, b=totals)
    """

    def __init__(self, x_dim: int = 2, hidden: int = 128, latent: int = 128, n_heads: int = 4, n_layers: int = 3,
                 min_std: float = 1e-3, seed: int = 0, self_attention: bool = False, dropout: float = 0.0,
                 decoder_hidden: Optional[int] = None, decoder_layers: Optional[int] = None) -> None:
        super().__init__()
        x_dim = check_int(x_dim, "x_dim", minimum=1)
        hidden = check_int(hidden, "hidden", minimum=1)
        latent = check_int(latent, "latent", minimum=1)
        n_heads = check_int(n_heads, "n_heads", minimum=1)
        n_layers = check_int(n_layers, "n_layers", minimum=2)
        if hidden % n_heads:
            raise ValueError(f"hidden must be a multiple of n_heads = {n_heads}, got {hidden}")
        self.min_std = check_real(min_std, "min_std", positive=True)
        self.seed = check_int(seed, "seed", minimum=0)
        self.self_attention = check_bool(self_attention, "self_attention")
        dropout = check_real(dropout, "dropout")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be a rate in [0, 1), got {dropout}")
        self.dropout = dropout
        decoder_hidden = hidden if decoder_hidden is None else check_int(decoder_hidden, "decoder_hidden", minimum=1)
        decoder_layers = (n_layers - 1 if decoder_layers is None
                          else check_int(decoder_layers, "decoder_layers", minimum=1))
        self.x_dim, self.hidden, self.latent = x_dim, hidden, latent
        with seeded(self.seed):
            # the default model's modules are built first and in their historical order: its initial weights (and
            # every recorded run) do not depend on the options below
            self.det_encoder = _mlp([x_dim + 1] + [hidden] * n_layers, dropout)
            self.key_encoder = _mlp([x_dim, hidden, hidden])
            self.attention = nn.MultiheadAttention(hidden, n_heads, dropout=dropout, batch_first=True)
            self.lat_encoder = _mlp([x_dim + 1] + [hidden] * n_layers, dropout)
            self.lat_head = _mlp([hidden, hidden, 2 * latent])
            self.decoder = _mlp([x_dim + hidden + latent] + [decoder_hidden] * decoder_layers + [2], dropout)
            if self.self_attention:
                self.det_self_attention = _SelfAttention(hidden, n_heads, dropout)
                self.lat_self_attention = _SelfAttention(hidden, n_heads, dropout)

    @property
    def min_std(self) -> float:
        """Added to the decoder's standard deviation (a positive, finite float; checked when set)."""
        return self._min_std

    @min_std.setter
    def min_std(self, value: float) -> None:
        self._min_std = check_real(value, "min_std", positive=True)

    # ------------------------------------------------------------------ input checks
    def _check_inputs(self, x_context: torch.Tensor, u_context: torch.Tensor,
                      x_target: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The checked inputs in the weights' dtype."""
        for name, t in (("x_context", x_context), ("u_context", u_context), ("x_target", x_target)):
            check_tensor(t, name, floating=True)
        if x_context.ndim != 3 or x_context.shape[-1] != self.x_dim or x_context.shape[1] < 1 or x_context.shape[0] < 1:
            raise ValueError(f"x_context must have shape (batch >= 1, n_context >= 1, {self.x_dim}), "
                             f"got {tuple(x_context.shape)}")
        if u_context.shape != x_context.shape[:2]:
            raise ValueError(f"u_context must have shape (batch, n_context) = {tuple(x_context.shape[:2])}, "
                             f"got {tuple(u_context.shape)}")
        if (x_target.ndim < 3 or x_target.shape[0] != x_context.shape[0] or x_target.shape[-1] != self.x_dim
                or 0 in x_target.shape[1:-1]):
            raise ValueError(f"x_target must have shape (batch, ..., {self.x_dim}) with batch = "
                             f"{x_context.shape[0]} and at least one target (no empty dimension), "
                             f"got {tuple(x_target.shape)}")
        for name, t in (("x_context", x_context), ("u_context", u_context), ("x_target", x_target)):
            check_finite(t, name)
        # the layers compute in the weights' dtype (e.g. float64 grids fed to a float32 model)
        dtype = self.decoder[0].weight.dtype
        return x_context.to(dtype), u_context.to(dtype), x_target.to(dtype)

    # ------------------------------------------------------------------ the two paths and the decoder
    def latent_distribution(self, x_context: torch.Tensor, u_context: torch.Tensor) -> Normal:
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
        s = self.lat_encoder(torch.cat([x_context, u_context[..., None]], -1))
        if self.self_attention:
            s = self.lat_self_attention(s)
        mu, raw = self.lat_head(s.mean(1)).chunk(2, -1)
        return Normal(mu, 0.1 + 0.9 * torch.sigmoid(raw))

    def deterministic_summary(self, x_context: torch.Tensor, u_context: torch.Tensor,
                              x_target: torch.Tensor) -> torch.Tensor:
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
        if self.self_attention:
            values = self.det_self_attention(values)
        out, _ = self.attention(self.key_encoder(x_target), self.key_encoder(x_context), values,
                                need_weights=False)
        return out

    def decode(self, x_target: torch.Tensor, summary: torch.Tensor,
               z: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
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

    def forward(self, x_context: torch.Tensor, u_context: torch.Tensor, x_target: torch.Tensor, n_latent: int = 1,
                generator: Optional[torch.Generator] = None) -> Tuple[torch.Tensor, torch.Tensor]:
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
        return self._draws(x_context, u_context, x_target, check_int(n_latent, "n_latent", minimum=1),
                           check_generator(generator))

    def _draws(self, x_context: torch.Tensor, u_context: torch.Tensor, x_target: torch.Tensor, n_latent: int,
               generator: Optional[torch.Generator]) -> Tuple[torch.Tensor, torch.Tensor]:
        """:meth:`forward` on checked inputs (in the weights' dtype)."""
        lead = x_target.shape[1:-1]
        xt = x_target.reshape(x_target.shape[0], -1, self.x_dim)
        q = self.latent_distribution(x_context, u_context)
        eps = torch.randn((n_latent, *q.loc.shape), generator=generator, dtype=q.loc.dtype, device=q.loc.device)
        z = q.loc + q.scale * eps
        mean, std = self.decode(xt, self.deterministic_summary(x_context, u_context, xt), z)
        return mean.reshape(n_latent, -1, *lead), std.reshape(n_latent, -1, *lead)

    def elbo_loss(self, x_context: torch.Tensor, u_context: torch.Tensor, x_target: torch.Tensor,
                  u_target: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
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

        Raises
        ------
        TypeError, ValueError
            For inputs of the wrong type, shape, or with non-finite values, or a bad ``generator``.
        """
        x_context, u_context, x_target = self._check_inputs(x_context, u_context, x_target)
        check_tensor(u_target, "u_target", layout="(batch, n_target)")
        if x_target.ndim != 3 or u_target.shape != x_target.shape[:2]:
            raise ValueError(f"u_target must be a tensor of shape {tuple(x_target.shape[:2])}, "
                             f"got shape {tuple(u_target.shape)}")
        u_target = check_finite(u_target, "u_target").to(x_target.dtype)
        check_generator(generator)
        q_all = self.latent_distribution(x_target, u_target)
        q_ctx = self.latent_distribution(x_context, u_context)
        eps = torch.randn(q_all.loc.shape, generator=generator, dtype=q_all.loc.dtype, device=q_all.loc.device)
        z = (q_all.loc + q_all.scale * eps)[None]
        mean, std = self.decode(x_target, self.deterministic_summary(x_context, u_context, x_target), z)
        nll = -Normal(mean[0], std[0]).log_prob(u_target).mean()
        kl = kl_divergence(q_all, q_ctx).sum(-1).mean() / x_target.shape[1]
        return nll + kl

    @contextmanager
    def test_time_dropout(self, generator: Optional[torch.Generator] = None) -> Iterator["AttentiveNeuralProcess"]:
        """Inside this context the model's dropout is active (Monte Carlo dropout at test time).

        The ProbConserv reference code evaluates its neural process this way: each forward pass then draws its own
        dropout masks, so the spread of the decoded means also holds the dropout's. The masks come from torch's
        global generator, as in training; with ``generator`` given they come instead from a seed drawn from it,
        inside ``torch.random.fork_rng``, so the caller's global random state is unchanged and the same generator
        state gives the same masks. The model's training mode is restored on exit.

        Parameters
        ----------
        generator : torch.Generator, optional

        Raises
        ------
        ValueError
            If the model has no dropout (``dropout == 0``): the option would change nothing.
        """
        check_generator(generator)
        if self.dropout == 0:
            raise ValueError("test_time_dropout needs a model built with dropout > 0, got dropout = 0")
        was_training = self.training
        device = self.decoder[0].weight.device
        try:
            self.train()
            if generator is None:
                yield self
            else:
                seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))
                with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                    torch.manual_seed(seed)
                    yield self
        finally:
            self.train(was_training)

    @torch.no_grad()
    def predict(self, x_context: torch.Tensor, u_context: torch.Tensor, x_target: torch.Tensor, n_latent: int = 100,
                seed: Optional[int] = None, generator: Optional[torch.Generator] = None,
                dtype: torch.dtype = torch.float64, chunk: int = 8, test_time_dropout: bool = False) -> Normal:
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
            Dtype of the returned distribution, ``torch.float32`` or ``torch.float64`` (float64, the layer's compute
            dtype, by default).
        chunk : int
            Functions decoded at a time (bounds memory: ``chunk * n_latent * n_target * hidden`` floats).
        test_time_dropout : bool
            Keep dropout on (see :meth:`test_time_dropout`; the reference code's inference). Each latent draw gets
            its own decoder masks; the encoders' masks are shared by the draws of one function. Needs
            ``dropout > 0``.

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
        x_context, u_context, x_target = self._check_inputs(x_context, u_context, x_target)
        n_latent = check_int(n_latent, "n_latent", minimum=1)
        chunk = check_int(chunk, "chunk", minimum=1)
        check_generator(generator)
        if seed is not None and generator is not None:
            raise ValueError("seed or generator must be given, not both: got both")
        if seed is not None:
            generator = torch.Generator(device=x_context.device).manual_seed(check_int(seed, "seed", minimum=0))
        check_compute_dtype(dtype, "dtype")
        if check_bool(test_time_dropout, "test_time_dropout"):
            with self.test_time_dropout(generator):
                return self._moments(x_context, u_context, x_target, n_latent, generator, dtype, chunk)
        was_training = self.training
        try:
            self.eval()   # a model left in training mode would otherwise predict with dropout
            return self._moments(x_context, u_context, x_target, n_latent, generator, dtype, chunk)
        finally:
            self.train(was_training)

    def _moments(self, x_context: torch.Tensor, u_context: torch.Tensor, x_target: torch.Tensor, n_latent: int,
                 generator: Optional[torch.Generator], dtype: torch.dtype, chunk: int) -> Normal:
        """:meth:`predict` on checked inputs, in the current training mode."""
        means, variances = [], []
        for i in range(0, x_context.shape[0], chunk):
            sl = slice(i, i + chunk)
            m, s = self._draws(x_context[sl], u_context[sl], x_target[sl], n_latent, generator)
            m, s = m.to(torch.float64), s.to(torch.float64)
            means.append(m.mean(0))
            variances.append((s**2).mean(0) + m.var(0, unbiased=False))
        return Normal(torch.cat(means).to(dtype), torch.cat(variances).sqrt().to(dtype))


def sample_observations(fields: torch.Tensor, n_times: int, n_points: int,
                        generator: Optional[torch.Generator]) -> Tuple[torch.Tensor, torch.Tensor]:
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

    Raises
    ------
    TypeError, ValueError
        If ``fields`` is not a 3-D tensor, or ``n_times`` or ``n_points`` is not an integer between 1 and ``nt``
        or ``nx``.
    """
    b, nt, nx = check_tensor(fields, "fields", ndim=3, layout="(batch >= 1, nt, nx)").shape
    if b < 1:
        raise ValueError(f"fields must be a tensor of shape (batch >= 1, nt, nx), got shape {tuple(fields.shape)}")
    check_int(n_times, "n_times", minimum=1)
    check_int(n_points, "n_points", minimum=1)
    if n_times > nt or n_points > nx:
        raise ValueError(f"n_times and n_points must be at most nt = {nt} and nx = {nx}, got {n_times}, {n_points}")
    ti = torch.rand(b, nt, generator=generator).argsort(-1)[:, :n_times]
    xi = torch.rand(b, nx, generator=generator).argsort(-1)[:, :n_points]
    return (ti[:, :, None].expand(-1, -1, n_points).reshape(b, -1),
            xi[:, None, :].expand(-1, n_times, -1).reshape(b, -1))


def _gather(fields: torch.Tensor, coords: Tuple[torch.Tensor, torch.Tensor], ti: torch.Tensor,
            xi: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Values and ``(x, t)`` coordinates at time indices ``ti`` and node indices ``xi``."""
    rows = torch.arange(fields.shape[0])[:, None]
    u = fields[rows, ti, xi]
    x = torch.stack([coords[0][xi], coords[1][ti]], -1)
    return x, u


def _context_and_targets(fields: torch.Tensor, coords: Tuple[torch.Tensor, torch.Tensor], ti: torch.Tensor,
                         xi: torch.Tensor, n_target: int, generator: torch.Generator):
    """The context at ``(ti, xi)`` and targets of ``n_target`` random grid points plus the context, per field."""
    b, nt, nx = fields.shape
    xc, uc = _gather(fields, coords, ti, xi)
    tt = torch.randint(0, nt, (b, n_target), generator=generator)
    tx = torch.randint(0, nx, (b, n_target), generator=generator)
    xt, ut = _gather(fields, coords, torch.cat([tt, ti], 1), torch.cat([tx, xi], 1))
    return xc, uc, xt, ut


def fit_neural_process(model: AttentiveNeuralProcess, fields: torch.Tensor, x_grid: torch.Tensor,
                       t_grid: torch.Tensor, steps: int = 1000, lr: float = 1e-4, batch_size: int = 16,
                       n_times: int = 10, n_points: int = 10, n_target: int = 256, seed: int = 0,
                       progress: bool = False, stop_after: Optional[int] = None, schedule: str = "cosine",
                       fixed_observations: bool = False, val_fields: Optional[torch.Tensor] = None,
                       val_every: int = 100, val_history: Optional[List[Tuple[int, float]]] = None) -> List[float]:
    """Train an :class:`AttentiveNeuralProcess` on fields sampled on a space-time grid.

    Each step takes ``batch_size`` fields, a context of ``n_times x n_points`` observations (random time slices times
    random nodes, the test-time pattern) and targets made of ``n_target`` random grid points plus the context, and
    takes an Adam step on :meth:`AttentiveNeuralProcess.elbo_loss`. The batches and draws run on the model's device
    (move the model first, e.g. ``model.to("cuda")``); ``fields`` may stay on the CPU.

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
        Seed of the local generator of the batches, observations, latent draws and dropout masks: the global random
        state is neither read nor changed, and the same seed and model give the same trained weights.
    progress : bool
        Show a tqdm bar.
    stop_after : int, optional
        Take only the first ``stop_after`` steps of the ``steps``-step schedule (the same learning rates, batches
        and draws as the full run's first steps): a recorded run's beginning can be re-trained and compared.
    schedule : {"cosine", "constant"}
        The learning rate: cosine decay to 0 over ``steps`` (a short run still ends at a small step size), or
        constant (the ProbConserv reference's Adam at 1e-4).
    fixed_observations : bool
        Draw each training function's observation pattern once, before training, and reuse it whenever the function
        is drawn (the reference's data sets store fixed observations per function); by default every draw of a
        function gets a new pattern.
    val_fields : torch.Tensor, shape (n_val, nt, nx), optional
        Validation solutions. Every ``val_every`` steps (and after the last) the model's negative ELBO on them is
        computed with dropout off, from fixed observations, targets and latent draws; at the end the weights with the
        lowest validation loss are restored (the best-validation checkpoint).
    val_every : int
        Steps between two validations.
    val_history : list, optional
        If given, ``(step, validation loss)`` pairs are appended to it.

    Returns
    -------
    list of float
        Training loss per step taken.

    Raises
    ------
    TypeError
        If ``model`` is not an :class:`AttentiveNeuralProcess` with ``x_dim = 2``, or an argument is of the wrong
        kind.
    ValueError
        For bad sizes or data, or an unknown ``schedule``.
    """
    from tqdm.auto import tqdm

    if not isinstance(model, AttentiveNeuralProcess) or model.x_dim != 2:
        raise TypeError(f"model must be an AttentiveNeuralProcess with x_dim=2, got {type(model).__name__}")
    check_finite(check_tensor(fields, "fields", ndim=3, layout="(n >= 1, nt, nx)", floating=True), "fields")
    if fields.shape[0] < 1:
        raise ValueError(f"fields must be a tensor of shape (n >= 1, nt, nx), got shape {tuple(fields.shape)}")
    for name, g, size in (("x_grid", x_grid, fields.shape[2]), ("t_grid", t_grid, fields.shape[1])):
        if check_tensor(g, name, layout=f"({size},)").shape != (size,):
            raise ValueError(f"{name} must be a tensor of shape ({size},), got shape {tuple(g.shape)}")
    for name, v in (("steps", steps), ("batch_size", batch_size), ("n_target", n_target),
                    ("val_every", val_every)):
        check_int(v, name, minimum=1)
    for name, v, size in (("n_times", n_times, fields.shape[1]), ("n_points", n_points, fields.shape[2])):
        if check_int(v, name, minimum=1) > size:
            raise ValueError(f"{name} must be at most {size} (the fields' {'nt' if name == 'n_times' else 'nx'}), "
                             f"got {v}")
    if schedule not in ("cosine", "constant"):
        raise ValueError(f"schedule must be 'cosine' or 'constant', got {schedule!r}")
    fixed_observations = check_bool(fixed_observations, "fixed_observations")
    if val_fields is not None:
        check_finite(check_tensor(val_fields, "val_fields", ndim=3, layout="(n_val >= 1, nt, nx)", floating=True),
                     "val_fields")
        if val_fields.shape[0] < 1 or val_fields.shape[1:] != fields.shape[1:]:
            raise ValueError(f"val_fields must be a tensor of shape (n_val >= 1, {fields.shape[1]}, "
                             f"{fields.shape[2]}) (the fields' nt and nx), got shape {tuple(val_fields.shape)}")
    if val_history is not None and not isinstance(val_history, list):
        raise TypeError(f"val_history must be a list or None, got {type(val_history).__name__}")
    progress = check_bool(progress, "progress")
    n_steps = steps if stop_after is None else min(steps, check_int(stop_after, "stop_after", minimum=1))
    lr = check_real(lr, "lr", positive=True)
    seed = check_int(seed, "seed", minimum=0)
    weight = next(model.parameters())
    dtype, device = weight.dtype, weight.device
    fields = fields.detach().to("cpu", dtype)
    coords = (x_grid.detach().to("cpu", dtype), t_grid.detach().to("cpu", dtype))
    gen = torch.Generator().manual_seed(seed)
    # the latent draws need a generator on the model's device; on the CPU it is the one generator, as it always was
    eps_gen = gen if device.type == "cpu" else torch.Generator(device=device).manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps) if schedule == "cosine" else None
    n = fields.shape[0]
    fixed = sample_observations(fields, n_times, n_points, gen) if fixed_observations else None
    validate = None if val_fields is None else _validation(model, val_fields.detach().to("cpu", dtype), coords,
                                                           n_times, n_points, n_target, seed, device)
    best = (float("inf"), None)
    losses: List[float] = []

    def check_validation(step: int) -> None:
        nonlocal best
        loss = validate()
        if val_history is not None:
            val_history.append((step, loss))
        if loss < best[0]:
            best = (loss, {k: v.detach().clone() for k, v in model.state_dict().items()})

    # dropout draws its masks from the global generator: seed a forked copy so the caller's state is left alone
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        model.train()
        bar = tqdm(range(n_steps), desc="ANP", leave=False, disable=not progress)
        for step in bar:
            idx = torch.randint(0, n, (min(batch_size, n),), generator=gen)
            batch = fields[idx]
            ti, xi = (fixed[0][idx], fixed[1][idx]) if fixed else sample_observations(batch, n_times, n_points, gen)
            xc, uc, xt, ut = _context_and_targets(batch, coords, ti, xi, n_target, gen)
            opt.zero_grad()
            loss = model.elbo_loss(xc.to(device), uc.to(device), xt.to(device), ut.to(device), generator=eps_gen)
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            losses.append(loss.item())
            if len(losses) % 50 == 0:
                bar.set_postfix(loss=f"{sum(losses[-50:]) / 50:.3e}")
            if validate is not None and ((step + 1) % val_every == 0 or step + 1 == n_steps):
                check_validation(step + 1)
                model.train()
    if best[1] is not None:
        model.load_state_dict(best[1])
    model.eval()
    return losses


def _validation(model: AttentiveNeuralProcess, fields: torch.Tensor, coords: Tuple[torch.Tensor, torch.Tensor],
                n_times: int, n_points: int, n_target: int, seed: int, device: torch.device):
    """A function giving the model's negative ELBO on ``fields`` from draws fixed once (dropout off, no gradient)."""
    gen = torch.Generator().manual_seed(seed + 1)
    b = fields.shape[0]
    ti, xi = sample_observations(fields, n_times, n_points, gen)
    xc, uc, xt, ut = _context_and_targets(fields, coords, ti, xi, n_target, gen)
    xc, uc, xt, ut = (t.to(device) for t in (xc, uc, xt, ut))
    chunk = 256

    @torch.no_grad()
    def validate() -> float:
        model.eval()
        total = 0.0
        for i in range(0, b, chunk):
            sl = slice(i, i + chunk)
            g = torch.Generator(device=device).manual_seed(seed + 2 + i)
            total += float(model.elbo_loss(xc[sl], uc[sl], xt[sl], ut[sl], generator=g)) * xc[sl].shape[0]
        return total / b

    return validate
