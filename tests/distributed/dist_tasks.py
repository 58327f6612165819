"""Tasks the gloo workers run (importable by name in the spawned processes). Each takes ``rank`` and ``world``."""

import os
import tempfile

import torch
import torch.distributed as dist
from torch.distributions import LowRankMultivariateNormal, Normal
from torch.nn.parallel import DistributedDataParallel as DDP

from probconserv_ext import LinearConstraint
from probconserv_ext.collectives import CountingCollectives
from probconserv_ext.distributed import DistributedProbConserv, constraint_slab, gather_slab


def _bounds(rank, cut, n):
    return (0, cut) if rank == 0 else (cut, n)


def _slab_prior(prior, start, stop):
    out = {}
    for key, t in prior.items():
        out[key] = t[..., start:stop, :] if key == "cov_factor" else t[..., start:stop]
    return out


def probconserv_update(rank, world, G, b, mean, prior, noise, method, cut, draws=None, grad_weights=None,
                       as_distribution=False):
    """This rank's slab of the posterior, gathered results and collective checks."""
    n = G.shape[1]
    start, stop = _bounds(rank, cut, n)
    layer = DistributedProbConserv(constraint_slab(LinearConstraint(G, b), start, stop), noise=noise, method=method)
    layer.collectives = counter = CountingCollectives(layer.group)
    mu = None if mean is None else mean[..., start:stop].clone().requires_grad_(grad_weights is not None)
    slab = _slab_prior(prior, start, stop)
    if as_distribution and "variance" in slab:
        post = layer(Normal(mu, slab["variance"].sqrt()))
    elif as_distribution and "cov_factor" in slab:
        post = layer(LowRankMultivariateNormal(mu, slab["cov_factor"], slab["cov_diag"]))
    else:
        post = layer(mu, **slab)
    comm_bytes = counter.bytes  # the update alone
    out = dict(
        mean=post.mean.detach(),
        variance=post.variance.detach(),
        W=None if post.factors is None else post.factors.W,
        residual=post.constraint_residual().detach(),
        gathered_mean=gather_slab(post.mean.detach()),
        comm_bytes=comm_bytes,
    )
    if "samples" in prior and noise == 0:
        out["constrained_members"] = layer.constrain_samples(prior["samples"][..., start:stop],
                                                             cov_diag=prior["cov_diag"][..., start:stop])[0]
    if draws is not None:
        out["updated_draws"] = post.update_samples(draws[..., start:stop])
        gen = torch.Generator().manual_seed(1234 + rank)
        out["rsample"] = gather_slab(post.rsample((3,), generator=gen))
    if grad_weights is not None:
        (post.mean * grad_weights[..., start:stop]).sum().backward()
        out["grad"] = mu.grad
    return out


def probconserv_bad_input(rank, world, G, mean, variance, bad_rank, kind):
    """Invalid input on one rank only: every rank must raise a ValueError (and none hang)."""
    n = G.shape[1]
    start, stop = _bounds(rank, n // 2, n)
    rows = G.shape[0] + (1 if kind == "rows" and rank == bad_rank else 0)
    Gs = torch.cat([G, G[:1]])[:rows] if rows > G.shape[0] else G
    try:
        layer = DistributedProbConserv(constraint_slab(LinearConstraint(Gs, None), start, stop))
    except ValueError as err:
        return str(err)
    mu, var = mean[..., start:stop].clone(), variance[..., start:stop].clone()
    if rank == bad_rank:
        if kind == "nan":
            mu[..., 0] = float("nan")
        elif kind == "negative":
            var[..., 0] = -1.0
        elif kind == "batch":
            mu, var = mu[:1], var[:1]

    try:
        if kind == "dense" and rank == bad_rank:
            layer(mu, covariance=torch.diag_embed(var), b=torch.zeros(G.shape[0]))
        elif kind == "bshape" and rank == bad_rank:  # b that would enlarge the (3, n_p) prediction to (2, 3, n_p)
            layer(mu, variance=var, b=torch.zeros(2, 3, G.shape[0]))
        else:
            layer(mu, variance=var, b=torch.zeros(G.shape[0]))
    except ValueError as err:
        dist.barrier()  # reached by both ranks only if neither is stuck in a collective
        return str(err)
    return None


def boon_model(config, state=None):
    from boon_ext import BOONFNO

    model = BOONFNO(**config).double()
    # .double() leaves neuralop's complex spectral weights in complex64; promote them so that the whole model
    # computes in float64 and gradients can be compared at float64 round-off.
    for p in model.parameters():
        if p.is_complex():
            p.data = p.data.to(torch.complex128)
    if state is not None:
        model.load_state_dict(state)
    return model


def ddp_boon_step(rank, world, config, state, x, values, y, lr):
    """One DDP step on this rank's shard of the global batch: gradients, outputs and the updated weights."""
    from boon_ext import boundary_error

    model = DDP(boon_model(config, state))
    shard = slice(rank, None, world)
    kw = {} if values is None else {"boundary_values": {k: v[shard] for k, v in values.items()}}
    out = model(x[shard], **kw)
    loss = ((out - y[shard]) ** 2).mean()
    loss.backward()
    grads = {k: p.grad.detach().clone() for k, p in model.module.named_parameters()}
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    opt.step()
    out2 = model(x[shard], **kw).detach()
    bc = float(boundary_error(out2, model.module.boundary, kw.get("boundary_values"), relative=True))
    return dict(grads=grads, bc_error=bc, params={k: v.detach().clone() for k, v in model.module.state_dict().items()
                                                  if torch.is_tensor(v)})


def ddp_boon_trainer_checkpoint(rank, world, config, x, values, y, folder):
    """A DDP model trained by neuralop's Trainer for one epoch, saved by neuralop under DDP, loaded back."""
    import warnings

    from neuralop.training import Trainer
    from neuralop.training.training_state import save_training_state

    from boon_ext import BoundaryDataProcessor, boundary_error
    from boon_ext import load_ddp_checkpoint, unwrap_ddp

    def inner_spec(m):
        return unwrap_ddp(m).boundary_spec

    warnings.filterwarnings("ignore")
    from boon_ext import BOONFNO

    torch.manual_seed(0)
    model = DDP(BOONFNO(**config))  # float32, as users train
    data = [dict(x=x[i], y=y[i]) for i in range(x.shape[0])]
    if values is not None:
        for i, item in enumerate(data):
            item["boundary_values"] = {k: v[i] for k, v in values.items()}
    sampler = torch.utils.data.distributed.DistributedSampler(data, num_replicas=world, rank=rank, shuffle=False)
    loader = torch.utils.data.DataLoader(data, batch_size=2, sampler=sampler)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.StepLR(opt, 10)
    loss = lambda out, y, **kw: ((out - y) ** 2).mean()  # noqa: E731
    # neuralop's own use_distributed=True wraps with device_ids=[rank], which DDP refuses for a CPU model: on
    # gloo/CPU the model is wrapped here and the Trainer is given the DDP model.
    processor = BoundaryDataProcessor(None, None, boundary=inner_spec(model))
    trainer = Trainer(model=model, n_epochs=1, device="cpu", use_distributed=False, verbose=False,
                      data_processor=processor)
    trainer.train(loader, {}, opt, sched, training_loss=loss, eval_losses={})
    if rank == 0:
        save_training_state(folder, "model", model)
    dist.barrier()
    loaded = load_ddp_checkpoint(folder, "model")
    inner = unwrap_ddp(model)
    kw = {} if values is None else {"boundary_values": values}
    with torch.no_grad():
        same = torch.equal(loaded(x, **kw), inner(x, **kw))
        bc = float(boundary_error(loaded(x, **kw), loaded.boundary, kw.get("boundary_values"), relative=True))
    return dict(same_output=same, bc_error=bc,
                has_metadata_file=os.path.exists(os.path.join(folder, "model_metadata.pkl")),
                params={k: v.detach().clone() for k, v in inner.state_dict().items() if torch.is_tensor(v)})


def scratch_dir(rank, world):
    """A temporary folder created by rank 0 and shared with the others."""
    path = [tempfile.mkdtemp(prefix="ddp_ckpt_") if rank == 0 else None]
    dist.broadcast_object_list(path, src=0)
    return path[0]
