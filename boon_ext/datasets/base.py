"""Container shared by the BOON test-problem generators, with on-disk caching.

A generator returns a :class:`BoundaryProblem`: inputs, targets, the grid with both end points,
the boundary conditions as plain config values (what the BOON wrappers' ``boundary=`` takes) and
the per-sample boundary values (what their ``forward(..., boundary_values=...)`` takes).
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset

from _physics_constrained.validation import check_bool, check_int, check_interval, check_real

from ..sample_keys import flat_key

__all__ = ["BoundaryProblem", "BoundaryProblemDataset", "cached_problem", "common_settings", "shared_docs"]

_CACHE_FORMAT = 1


class BoundaryProblemDataset(Dataset):
    """Torch dataset of the samples of a :class:`BoundaryProblem`.

    Each item is a dict ``{"x": x_i, "y": y_i, "boundary_values": {face: g_i}}``; neuralop's
    Trainer calls ``model(**sample)``, so the boundary values reach the model's forward. The key
    ``boundary_values`` is left out when the problem has no per-sample boundary values.

    Parameters
    ----------
    problem : BoundaryProblem
        The problem whose samples are served.
    indices : sequence of int
        Sample indices into ``problem``.
    flat_values : bool, default False
        Serve each boundary value as its own tensor entry ``"boundary_values.<face>"`` instead of the nested
        dict: neuralop's ``Trainer`` without a data processor keeps only tensor entries, and the BOON models read
        these back (see :mod:`boon_ext.sample_keys`). With a :class:`~boon_ext.BoundaryDataProcessor` either
        form works.
    """

    def __init__(self, problem: "BoundaryProblem", indices: Sequence[int], flat_values: bool = False):
        idx = torch.as_tensor(list(indices), dtype=torch.long)
        n = problem.n_samples
        if idx.ndim != 1 or (idx.numel() and (int(idx.min()) < -n or int(idx.max()) >= n)):
            raise ValueError(f"indices must be a 1-D sequence of sample indices in [0, {n}), got {list(indices)[:8]}...")
        self.problem = problem
        self.indices = idx
        self.flat_values = check_bool(flat_values, "flat_values")

    def __len__(self) -> int:
        return int(self.indices.numel())

    def __getitem__(self, i: int) -> dict:
        j = int(self.indices[i])
        p = self.problem
        item = {"x": p.x[j], "y": p.y[j]}
        if p.boundary_values and self.flat_values:
            item.update({flat_key(face): v[j] for face, v in p.boundary_values.items()})
        elif p.boundary_values:
            item["boundary_values"] = {face: v[j] for face, v in p.boundary_values.items()}
        return item


@dataclass
class BoundaryProblem:
    """Samples of one boundary-value test problem.

    Parameters
    ----------
    name : str
        Problem name (e.g. ``"heat_neumann"``).
    x : torch.Tensor
        Inputs, float32, ``(S, C, N)``, ``(S, C, N, T)`` for space-time problems, or ``(S, C, N, N, T)`` for
        space-time problems on a square (both spatial axes on ``grid``).
    y : torch.Tensor
        Targets, same layout as ``x``.
    grid : torch.Tensor
        ``(N,)`` float64 spatial nodes including both end points of ``domain``.
    boundary : list of dict
        Boundary conditions as plain config values, e.g.
        ``[{"type": "neumann", "left": 0.0, "domain": [0, 1]}, {"type": "neumann", "faces": ["right"],
        "domain": [0, 1]}]``. Faces given a value here hold it for every sample; faces listed under
        ``"faces"`` take their value per sample from ``boundary_values``. Neumann values are du/dx in
        physical units; space-time problems add ``"dim": -2`` (conditions on the spatial axis).
    boundary_values : dict of str to torch.Tensor
        Per-sample boundary values: face -> ``(S,)`` (single-step), ``(S, 1, T)`` (space-time) or
        ``(S, C, N, T)`` (a face of a square, per frame).
    domain : tuple of float
        ``(a, b)``, the spatial interval.
    times : torch.Tensor or None
        ``(T,)`` output times of a space-time problem (or ``(1,)``, the final time).
    params : dict of str to numpy.ndarray
        Per-sample physical parameters (e.g. frequency, viscosity), for analysis.
    settings : dict
        The generator's arguments, for provenance and the cache key.
    """

    name: str
    x: torch.Tensor
    y: torch.Tensor
    grid: torch.Tensor
    boundary: List[dict]
    boundary_values: Dict[str, torch.Tensor]
    domain: Tuple[float, float]
    times: Optional[torch.Tensor] = None
    params: Dict[str, np.ndarray] = field(default_factory=dict)
    settings: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.x.shape != self.y.shape:
            raise ValueError(f"y must have the shape of x {tuple(self.x.shape)}, got {tuple(self.y.shape)}")
        if self.x.ndim not in (3, 4, 5) or self.x.shape[1] < 1:
            raise ValueError(f"x must have shape (S, C, N), (S, C, N, T) or (S, C, N, N, T), got {tuple(self.x.shape)}")
        if self.x.ndim == 5 and self.x.shape[3] != self.x.shape[2]:
            raise ValueError(f"x must have the same number of nodes on both spatial axes (S, C, N, N, T), got "
                             f"{tuple(self.x.shape)}")
        if self.grid.shape != (self.x.shape[2],):
            raise ValueError(f"grid must have shape ({self.x.shape[2]},), got {tuple(self.grid.shape)}")
        for face, v in self.boundary_values.items():
            if v.shape[0] != self.x.shape[0]:
                raise ValueError(
                    f"boundary_values[{face!r}] must have {self.x.shape[0]} samples, got shape {tuple(v.shape)}"
                )

    @property
    def n_samples(self) -> int:
        """Number of samples ``S``."""
        return int(self.x.shape[0])

    @property
    def n_points(self) -> int:
        """Number of spatial nodes ``N`` (both end points included)."""
        return int(self.x.shape[2])

    @property
    def spacing(self) -> float:
        """Grid spacing ``h = (b - a) / (N - 1)``."""
        a, b = self.domain
        return (b - a) / (self.n_points - 1)

    def __len__(self) -> int:
        return self.n_samples

    def dataset(self, indices: Optional[Sequence[int]] = None) -> BoundaryProblemDataset:
        """Torch dataset of the samples ``indices`` (all samples if None)."""
        if indices is None:
            indices = range(self.n_samples)
        return BoundaryProblemDataset(self, indices)

    def split(self, n_train: int, n_test: Optional[int] = None,
              order_by: Optional[str] = None) -> Tuple[BoundaryProblemDataset, BoundaryProblemDataset]:
        """Training and test datasets: in generation order (iid), or ordered by a physical parameter.

        Parameters
        ----------
        n_train : int
            Training samples.
        n_test : int, optional
            Test samples (default: the rest).
        order_by : str, optional
            None: the first ``n_train`` samples train and the next ``n_test`` test (the samples are drawn
            independently, so this is an iid split). A key of ``params`` (e.g. ``"ic_frequency"``,
            ``"viscosity"``, ``"lid_speed"``): the samples are sorted by that parameter (ties in generation
            order), the ``n_train`` lowest train and the ``n_test`` highest test, a test by extrapolation as in
            the reference code's files; samples in between (when ``n_train + n_test < n_samples``) are unused.

        Returns
        -------
        (BoundaryProblemDataset, BoundaryProblemDataset)

        Raises
        ------
        ValueError
            Sizes that do not fit, an unknown ``order_by``, or a parameter that does not vary (its order would
            be the generation order, i.e. no extrapolation at all).
        """
        n_train = check_int(n_train, "n_train", minimum=1)
        rest = self.n_samples - n_train
        if n_test is None:
            n_test = rest
        n_test = check_int(n_test, "n_test", minimum=1)
        if n_train + n_test > self.n_samples:
            raise ValueError(
                f"n_train + n_test must be at most n_samples={self.n_samples}, got {n_train} + {n_test}"
            )
        if order_by is None:
            return self.dataset(range(n_train)), self.dataset(range(n_train, n_train + n_test))
        order = self.parameter_order(order_by)
        return self.dataset(order[:n_train].tolist()), self.dataset(order[self.n_samples - n_test:].tolist())

    def parameter_order(self, name: str) -> np.ndarray:
        """Sample indices sorted by the per-sample parameter ``params[name]`` (stable: ties keep generation order).

        Parameters
        ----------
        name : str
            A key of ``params`` holding one value per sample.

        Returns
        -------
        numpy.ndarray
            ``(S,)`` int64 indices, lowest parameter first.
        """
        if not isinstance(name, str) or name not in self.params:
            raise ValueError(f"order_by must be one of the per-sample parameters {sorted(self.params)}, got {name!r}")
        value = np.asarray(self.params[name])
        if value.shape != (self.n_samples,):
            raise ValueError(f"order_by must name a parameter with one value per sample ({self.n_samples},), got "
                             f"{name!r} of shape {value.shape}")
        if np.all(value == value.flat[0]):
            raise ValueError(f"order_by must name a parameter that varies between samples, got {name!r}, equal to "
                             f"{value.flat[0]} in every sample")
        return np.argsort(value, kind="stable")

    # ----------------------------------------------------------------- persistence
    def save(self, path) -> None:
        """Write the problem to an ``.npz`` file (atomically: a reader never sees half a file)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {"x": self.x.numpy(), "y": self.y.numpy(), "grid": self.grid.numpy()}
        if self.times is not None:
            arrays["times"] = self.times.numpy()
        for face, v in self.boundary_values.items():
            arrays[f"bv__{face}"] = v.numpy()
        for k, v in self.params.items():
            arrays[f"param__{k}"] = np.asarray(v)
        meta = {
            "format": _CACHE_FORMAT,
            "name": self.name,
            "boundary": self.boundary,
            "domain": list(self.domain),
            "settings": self.settings,
        }
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path) -> "BoundaryProblem":
        """Read a problem written by :meth:`save`.

        Raises
        ------
        ValueError
            The file is not a cache file this package wrote (damaged, another format, an array whose stated
            size differs from the bytes it holds): the message names the file.
        """
        path = Path(path)
        _check_npz(path)
        try:
            return cls._load(path)
        except (OSError, KeyError, TypeError, ValueError, EOFError, UnicodeDecodeError, zipfile.BadZipFile) as e:
            raise ValueError(f"{path} is not a readable problem cache file ({type(e).__name__}: {e})") from e

    @classmethod
    def _load(cls, path) -> "BoundaryProblem":
        with np.load(Path(path), allow_pickle=False) as z:
            meta = json.loads(bytes(z["meta"]).decode())
            if not isinstance(meta, dict):
                raise ValueError(f"its meta record holds a {type(meta).__name__}, expected a mapping")
            if meta.get("format") != _CACHE_FORMAT:
                raise ValueError(f"path must be a cache file of format {_CACHE_FORMAT}, got format "
                                 f"{meta.get('format')} in {path}")
            bv = {k[4:]: torch.from_numpy(z[k]) for k in z.files if k.startswith("bv__")}
            params = {k[7:]: z[k] for k in z.files if k.startswith("param__")}
            return cls(
                name=meta["name"],
                x=torch.from_numpy(z["x"]),
                y=torch.from_numpy(z["y"]),
                grid=torch.from_numpy(z["grid"]),
                boundary=meta["boundary"],
                boundary_values=bv,
                domain=tuple(meta["domain"]),
                times=torch.from_numpy(z["times"]) if "times" in z.files else None,
                params=params,
                settings=meta["settings"],
            )


def _check_npz(path: Path) -> None:
    """Refuse an ``.npz`` whose arrays state more elements than their records hold, before numpy reads them.

    numpy allocates an array of the size stated in its header before reading its bytes, so a small damaged or
    crafted cache file could otherwise ask for any amount of memory; compressed records are refused for the same
    reason (:meth:`BoundaryProblem.save` stores them uncompressed).
    """
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if info.compress_type != zipfile.ZIP_STORED or info.file_size != info.compress_size:
                    raise ValueError(f"its record {info.filename} is compressed (save() stores records as they are)")
                with archive.open(info) as f:
                    version = np.lib.format.read_magic(f)
                    shape, _, dtype = (np.lib.format.read_array_header_1_0(f) if version == (1, 0)
                                       else np.lib.format.read_array_header_2_0(f))
                    header = f.tell()
                if dtype.hasobject:
                    raise ValueError(f"its array {info.filename} holds Python objects")
                stated = int(np.prod(shape, dtype=object)) * dtype.itemsize
                if header + stated != info.file_size:
                    raise ValueError(f"its array {info.filename} states shape {shape} ({stated} bytes), its record "
                                     f"holds {info.file_size - header}")
    except FileNotFoundError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"{path} is not a readable problem cache file: {e}") from e


def cached_problem(name: str, settings: dict, build: Callable[[], BoundaryProblem], cache_dir=None) -> BoundaryProblem:
    """Return ``build()``, reading it from / writing it to ``cache_dir`` when one is given.

    The cache file name hashes ``name`` and ``settings`` (all generator arguments, the seed
    included), so a changed argument never returns stale data.

    Parameters
    ----------
    name : str
        Generator name.
    settings : dict
        JSON-serialisable generator arguments.
    build : callable
        Computes the problem when it is not cached.
    cache_dir : str or os.PathLike or None
        Cache folder (created on demand); None disables caching.

    Returns
    -------
    BoundaryProblem
    """
    if cache_dir is None:
        return build()
    if not isinstance(cache_dir, (str, os.PathLike)):
        raise TypeError(f"cache_dir must be a path (str or os.PathLike) or None, got {type(cache_dir).__name__}")
    key = hashlib.sha1(json.dumps({"name": name, **settings}, sort_keys=True).encode()).hexdigest()[:16]
    path = Path(cache_dir) / f"{name}-{key}.npz"
    if path.exists():
        return BoundaryProblem.load(path)
    problem = build()
    problem.save(path)
    return problem


# ------------------------------------------------------------------ shared arguments
# The parameters every generator (or solver) takes, described once: a line ``{name, ...}`` in a generator's
# docstring stands for their entries (see shared_docs).
_SHARED_PARAMETERS = {
    "n_samples": ("n_samples : int", "Number of samples ``S``."),
    "u0": ("u0 : numpy.ndarray", "``(S, N)`` initial values on ``grid``."),
    "grid": ("grid : numpy.ndarray", "``(N,)`` uniform nodes including both end points."),
    "t_final": ("t_final : float", "Final time."),
    "seed": ("seed : int", "Seed of the random draws; equal arguments give identical data."),
    "cache_dir": ("cache_dir : str or os.PathLike, optional",
                  "Folder to cache the generated data in (see :func:`cached_problem`)."),
}


def shared_docs(func: Callable) -> Callable:
    """Decorator: replace each ``{name, ...}`` line of ``func``'s docstring by the shared parameter entries.

    Parameters
    ----------
    func : callable
        A generator whose docstring lists shared parameters as ``{n_samples}`` or ``{seed, cache_dir}`` lines.

    Returns
    -------
    callable
        ``func``, its docstring completed.
    """
    lines = []
    for line in func.__doc__.splitlines():
        key = line.strip()
        if key.startswith("{") and key.endswith("}"):
            indent = line[: len(line) - len(line.lstrip())]
            for name in key[1:-1].split(","):
                header, text = _SHARED_PARAMETERS[name.strip()]
                lines += [indent + header, indent + "    " + text]
        else:
            lines.append(line)
    func.__doc__ = "\n".join(lines)
    return func


# How the initial-condition field arguments are checked (the covariance of gaussian_random_field).
_IC_CHECKS = {"ic_alpha": dict(positive=True), "ic_tau": dict(nonnegative=True), "ic_sigma": dict(nonnegative=True)}


def common_settings(n_samples, n_points, t_final, domain, seed, *, starts_at_zero: Optional[str] = None,
                    **ic) -> dict:
    """Check the arguments the generators share and return them as entries of their ``settings``.

    Parameters
    ----------
    n_samples : int
        At least 1.
    n_points : int
        At least 4 (both end points and the nodes of the one-sided stencils).
    t_final : float
        Positive.
    domain : (float, float)
        ``(a, b)`` with ``a < b``; returned as a list (JSON).
    seed : int
        Non-negative.
    starts_at_zero : str, optional
        If given, ``domain`` must start at 0; the string says why, for the message.
    **ic : float
        Any of ``ic_alpha`` (positive), ``ic_tau`` and ``ic_sigma`` (non-negative).

    Returns
    -------
    dict
        The checked values, as ``int``/``float``/list.

    Raises
    ------
    TypeError, ValueError
        An argument of the wrong type or value, named in the message.
    """
    settings = dict(
        n_samples=check_int(n_samples, "n_samples", minimum=1),
        n_points=check_int(n_points, "n_points", minimum=4),
        t_final=check_real(t_final, "t_final", positive=True),
        domain=list(check_interval(domain, "domain")),
        seed=check_int(seed, "seed", minimum=0),
    )
    if starts_at_zero is not None and settings["domain"][0] != 0.0:
        raise ValueError(f"domain must start at 0 ({starts_at_zero}), got {tuple(settings['domain'])}")
    for name, value in ic.items():
        settings[name] = check_real(value, name, **_IC_CHECKS[name])
    return settings


def _uniform(rng: np.random.Generator, bounds: Tuple[float, float], n: int) -> np.ndarray:
    lo, hi = bounds
    if lo == hi:
        return np.full(n, lo)
    return rng.uniform(lo, hi, size=n)


def _to_tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
