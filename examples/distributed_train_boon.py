"""Data-parallel training of a BOON-FNO with DistributedDataParallel, launched by torchrun.

    torchrun --nproc_per_node 2 examples/distributed_train_boon.py --quick            # plain DDP loop, gloo on CPU
    torchrun --nproc_per_node 2 examples/distributed_train_boon.py --quick --trainer  # through neuralop's Trainer
    python examples/distributed_train_boon.py --quick                                 # one process, same code

Every rank generates the same heat-equation data (insulated left end, prescribed flux at the right; Crank-Nicolson
solver in the package), trains on its shard (``DistributedSampler``), and DDP averages the gradients, so all
replicas stay identical. The BOON correction is computed from each replica's weights, so the Neumann conditions
hold exactly on every rank. The checkpoint is written as neuralop writes it under DDP (``save_training_state``:
state dict only, no metadata file) and loaded back on every rank with ``boon_ext.load_ddp_checkpoint``.

Backend: NCCL with one GPU per rank when CUDA is available (``--backend nccl``), gloo on CPU otherwise. Outputs
(``--out``, default ``outputs/distributed_boon``): ``results.md``, ``results.json``, ``boundary.png``.
"""

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
from neuralop.losses import LpLoss  # noqa: E402
from neuralop.training import Trainer  # noqa: E402
from neuralop.training.training_state import save_training_state  # noqa: E402
from torch.nn.parallel import DistributedDataParallel as DDP  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402
from torch.utils.data.distributed import DistributedSampler  # noqa: E402
from tqdm import tqdm  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from experiments.launch import init_distributed  # noqa: E402
from boon_ext import BOONFNO, BoundaryDataProcessor, boundary_error, load_ddp_checkpoint  # noqa: E402
from boon_ext.datasets import BoundaryProblemDataset, heat_neumann  # noqa: E402

warnings.filterwarnings("ignore", category=UserWarning)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small data and few epochs (under a minute)")
    parser.add_argument("--trainer", action="store_true", help="train with neuralop's Trainer instead of a DDP loop")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--backend", choices=["auto", "gloo", "nccl"], default="auto")
    parser.add_argument("--out", default="outputs/distributed_boon")
    args = parser.parse_args()
    rank, world, device, backend = init_distributed(args.backend)
    lead = rank == 0
    out_dir = Path(args.out)
    if lead:
        out_dir.mkdir(parents=True, exist_ok=True)

    n_train, n_test, n_points = (64, 16, 65) if args.quick else (400, 100, 257)
    epochs = args.epochs or (40 if args.quick else 100)
    problem = heat_neumann(n_train + n_test, n_points=n_points, t_final=0.2, diffusivity=0.1,
                           flux_amplitude=(0.5, 2.0), seed=0)
    train_set = BoundaryProblemDataset(problem, range(n_train))
    test_set = BoundaryProblemDataset(problem, range(n_train, n_train + n_test))
    # Each rank sees 1/world of the data per epoch; batch 16 per rank keeps the global batch at 16 * world.
    sampler = DistributedSampler(train_set, num_replicas=world, rank=rank, shuffle=True, seed=0)
    test_sampler = DistributedSampler(test_set, num_replicas=world, rank=rank, shuffle=False)
    train_loader = DataLoader(train_set, batch_size=16, sampler=sampler)
    test_loader = DataLoader(test_set, batch_size=16, sampler=test_sampler)

    torch.manual_seed(0)  # the same initial weights everywhere (DDP also broadcasts rank 0's at wrapping)
    model = BOONFNO(n_modes=(16,), in_channels=1, out_channels=1, hidden_channels=32, n_layers=4,
                    boundary=problem.boundary, kernel_correction=True).to(device)
    ddp = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
    processor = BoundaryDataProcessor(None, None, boundary=model.boundary_spec).to(device)
    opt = torch.optim.Adam(ddp.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=max(1, epochs // 3), gamma=0.5)
    loss_fn = LpLoss(d=1, p=2)

    t0 = time.perf_counter()
    if args.trainer:
        # neuralop's own use_distributed=True wraps the model as DDP(model, device_ids=[rank]), which DDP refuses
        # for a CPU model; passing the DDP-wrapped model works with gloo and NCCL alike.
        trainer = Trainer(model=ddp, n_epochs=epochs, device=device, data_processor=processor,
                          use_distributed=False, verbose=lead)
        trainer.train(train_loader, {"test": test_loader}, opt, sched, training_loss=loss_fn,
                      eval_losses={"l2": loss_fn})
    else:
        bar = tqdm(range(epochs), desc=f"DDP x{world} ({backend})", unit="epoch", disable=not lead)
        for epoch in bar:
            sampler.set_epoch(epoch)  # a different shuffle each epoch, the same on every rank
            ddp.train()
            for batch in train_loader:
                sample = processor.preprocess(batch)
                loss = loss_fn(ddp(**sample), sample["y"])
                opt.zero_grad()
                loss.backward()
                opt.step()
            sched.step()
            bar.set_postfix(loss=f"{loss.item():.4f}")
    train_seconds = time.perf_counter() - t0

    # Checkpoint exactly as neuralop's Trainer writes it under DDP (state dict only), then load it on every rank.
    ckpt = out_dir / "checkpoint"
    if lead:
        save_training_state(ckpt, "model", ddp)
    dist.barrier()
    loaded = load_ddp_checkpoint(ckpt, "model", map_location=device).to(device).eval()

    rel, bc, sample_plot = [], [], None
    with torch.no_grad():
        for batch in test_loader:
            x, y = batch["x"].to(device), batch["y"].to(device)
            values = {k: v.to(device) for k, v in batch.get("boundary_values", {}).items()}
            pred = loaded(x, boundary_values=values)
            same = torch.equal(pred, ddp.module.eval()(x, boundary_values=values))
            rel.append((pred - y).flatten(1).norm(dim=1) / y.flatten(1).norm(dim=1))
            bc.append(float(boundary_error(pred, loaded.boundary, values, relative=True)))
            if sample_plot is None:
                sample_plot = (x[0, 0].cpu(), y[0, 0].cpu(), pred[0, 0].cpu())
    # Per-rank figures, then the global ones (every rank evaluated its shard of the test set).
    stats = torch.tensor([torch.cat(rel).sum().item(), torch.cat(rel).numel(), max(bc), float(not same)],
                         dtype=torch.float64, device=device)
    per_rank = [torch.zeros_like(stats) for _ in range(world)]
    dist.all_gather(per_rank, stats)
    per_rank = [p.cpu().tolist() for p in per_rank]
    if lead:
        results = dict(
            world_size=world, backend=backend, device=str(device),
            trainer="neuralop Trainer" if args.trainer else "DDP loop",
            epochs=epochs, n_train=n_train, n_test=n_test, n_points=n_points, train_seconds=train_seconds,
            test_rel_l2=sum(p[0] for p in per_rank) / sum(p[1] for p in per_rank),
            boundary_error_per_rank=[p[2] for p in per_rank],
            checkpoint_matches_trained_model_per_rank=[p[3] == 0 for p in per_rank],
            metadata_file_written=(ckpt / "model_metadata.pkl").exists(),
        )
        (out_dir / "results.json").write_text(json.dumps(results, indent=2))
        rows = "\n".join(f"| {k} | {v} |" for k, v in results.items())
        (out_dir / "results.md").write_text(f"| quantity | value |\n|---|---|\n{rows}\n")
        print((out_dir / "results.md").read_text())
        x0, y0, p0 = sample_plot
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
        grid = problem.grid.float()
        ends = ((axes[0], slice(0, 8), "left end (insulated)"), (axes[1], slice(-8, None), "right end (flux)"))
        for ax, sl, title in ends:
            ax.plot(grid[sl], y0[sl], "k-", label="reference")
            ax.plot(grid[sl], p0[sl], "o--", label=f"BOON-FNO, DDP x{world}")
            ax.set_title(title)
            ax.set_xlabel("x")
        axes[0].legend()
        fig.tight_layout()
        fig.savefig(out_dir / "boundary.png", dpi=120)
        print(f"wrote {out_dir}/results.md, results.json, boundary.png")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
