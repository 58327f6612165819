"""Conservation of mass: a probabilistic model's prediction before and after the ProbConserv layer.

The "easy" GPME case of the ProbConserv paper: diffusion u_t = k u_xx on [0, 2 pi] with u = exp(-k t) sin x
(exact solution from ``probconserv_ext.problems``). No net flux crosses the boundary, so the true total mass is 0
at all times. The black-box probabilistic model is a Gaussian process in (x, t) fitted to noisy sensor readings
that cover only part of the domain; it knows nothing about conservation, and its total mass drifts. The layer
takes the model's per-node mean and variance at each time slice and returns a Gaussian whose mean conserves mass
exactly; the nodes where the model is least certain move the most.

Outputs (in ``--out``, default ``outputs/probconserv_mass``): ``mass.png`` (total mass over time before/after, as
in the article's "Conservation of mass" figure, with the model's 2-sigma band for the total), ``profile.png``
(solution at the last time with 2-sigma bands), ``probconserv_mass.md`` and ``probconserv_mass.json``.

Usage::

    python examples/probconserv_mass.py [--quick] [--out DIR]
"""

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy.linalg import cho_factor, cho_solve  # noqa: E402
from tqdm import tqdm  # noqa: E402

from torch.distributions import Normal  # noqa: E402

from probconserv_ext import compare_methods, conservation_constraint  # noqa: E402
from probconserv_ext.problems import DiffusionProblem  # noqa: E402


def rbf(a, b, ls, amp):
    d = (a[:, None, :] - b[None, :, :]) / ls
    return amp**2 * np.exp(-0.5 * (d**2).sum(-1))


def gp_predict(X, y, Xs, ls, amp, noise, batch=2000):
    """Exact GP regression: posterior mean and marginal variance at Xs."""
    K = rbf(X, X, ls, amp) + noise**2 * np.eye(len(X))
    cf = cho_factor(K, lower=True)
    alpha = cho_solve(cf, y)
    mean, var = [], []
    for s in range(0, len(Xs), batch):
        Ks = rbf(Xs[s : s + batch], X, ls, amp)
        mean.append(Ks @ alpha)
        v = cho_solve(cf, Ks.T)
        var.append(amp**2 - (Ks * v.T).sum(-1))
    return np.concatenate(mean), np.maximum(np.concatenate(var), 0.0)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="coarser grid and fewer time slices")
    p.add_argument("--out", default="outputs/probconserv_mass", help="output directory")
    p.add_argument("--k", type=float, default=1.0, help="diffusivity")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)

    problem = DiffusionProblem()
    nx, nt = (65, 25) if args.quick else (201, 100)
    x, t = problem.grid(nx), problem.times(nt)
    truth = problem.solution(x, t, args.k)  # (nt, nx)
    true_total = problem.total(t, args.k)  # zeros

    # Sensors on 60% of the domain only: the GP extrapolates elsewhere, and its mass drifts.
    rng = np.random.default_rng(args.seed)
    xs = rng.uniform(0.0, 0.6 * 2 * np.pi, size=12)
    ts = np.linspace(t[0], t[-1], 15)
    X = np.array([(a, b) for b in ts for a in xs])
    y = problem.solution(np.sort(xs), ts, args.k)[:, np.argsort(np.argsort(xs))].reshape(-1)
    y = y + 0.02 * rng.standard_normal(y.shape)
    Xs = np.array([(a, b) for b in t for a in x])
    mean = np.empty(len(Xs))
    var = np.empty(len(Xs))
    chunks = np.array_split(np.arange(len(Xs)), 10)
    for idx in tqdm(chunks, desc="GP prediction"):
        mean[idx], var[idx] = gp_predict(X, y, Xs[idx], ls=np.array([1.0, 0.5]), amp=1.0, noise=0.02)
    mean, var = mean.reshape(nt, nx), var.reshape(nt, nx)

    # The layer: one exact conservation row per time slice, b(t) = true total (0 here). The model's prediction is
    # handed over as a distribution (independent nodes); compare_methods applies HardC and ProbConserv to it.
    c = conservation_constraint(torch.as_tensor(x), total=torch.as_tensor(true_total))
    # validate_args=False: the GP's clipped variance may be exactly 0 at a node (the layer accepts zero variances)
    prediction = Normal(torch.as_tensor(mean), torch.as_tensor(var).sqrt(), validate_args=False)
    res = compare_methods(prediction, torch.as_tensor(truth), c, methods=("unconstrained", "hardc", "probconserv"))
    post, hardc = res["probconserv"]["posterior"], res["hardc"]["posterior"]

    w = c.G[0].numpy()
    total_before = mean @ w
    total_sd = np.sqrt(var @ w**2)  # per-node variances: sd of the total under the model's diagonal Gaussian
    total_after = post.mean.numpy() @ w
    total_hardc = hardc.mean.numpy() @ w

    # the per-slice metrics of compare_methods: max over time of |CE|, MSE over all nodes (equal slice sizes)
    metrics = {"grid_nodes": nx, "time_slices": nt, "k": args.k}
    for key, method in (("model", "unconstrained"), ("probconserv", "probconserv"), ("hardc", "hardc")):
        metrics[f"max_abs_CE_{key}"] = float(res[method]["ce_abs"].max())
    for key, method in (("model", "unconstrained"), ("probconserv", "probconserv"), ("hardc", "hardc")):
        metrics[f"mse_{key}"] = float(res[method]["mse"].mean())

    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax.plot(t, true_total, "k-", lw=2, label="true (zero net flux)")
    ax.plot(t, total_before, "C0-", label="model (GP) mean")
    ax.fill_between(t, total_before - 2 * total_sd, total_before + 2 * total_sd, color="C0", alpha=0.2,
                    label="model 2$\\sigma$")
    ax.plot(t, total_hardc, "C2:", lw=2, label="HardC")
    ax.plot(t, total_after, "C3--", lw=2, label="ProbConserv")
    ax.set_xlabel("t")
    ax.set_ylabel(r"total mass $\int u\,dx$")
    ax.set_title(f"Conservation of mass, diffusion k = {args.k:g}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "mass.png", dpi=130)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6.5, 4))
    i = nt - 1
    ax.plot(x, truth[i], "k-", lw=2, label="exact")
    for dist, name, col in ((None, "model (GP)", "C0"), (post, "ProbConserv", "C3")):
        m = mean[i] if dist is None else dist.mean[i].numpy()
        s = np.sqrt(var[i] if dist is None else dist.variance[i].clamp_min(0).numpy())
        ax.plot(x, m, color=col, label=name)
        ax.fill_between(x, m - 2 * s, m + 2 * s, color=col, alpha=0.2)
    ax.axvspan(0, 0.6 * 2 * np.pi, color="0.9", zorder=0, label="sensor coverage")
    ax.set_xlabel("x")
    ax.set_ylabel(f"u(x, t = {t[i]:.2f})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "profile.png", dpi=130)
    plt.close(fig)

    (out / "probconserv_mass.json").write_text(json.dumps(metrics, indent=2))
    table = "| metric | value |\n|---|---:|\n" + "\n".join(f"| {k} | {v:.3g} |" if isinstance(v, float)
                                                       else f"| {k} | {v} |" for k, v in metrics.items())
    (out / "probconserv_mass.md").write_text(table + "\n")
    print(table)
    print(f"wrote {out}/mass.png, profile.png, probconserv_mass.md, probconserv_mass.json")


if __name__ == "__main__":
    main()
