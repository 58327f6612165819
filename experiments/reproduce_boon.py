"""Reproduce BOON's claims: FNO against BOON variants on the paper's test problems, at the paper's schedule.

Every model on a problem gets the same data, architecture, initial weights (same seed), optimizer,
learning-rate schedule and batch order. Models (``--models``):

- ``fno``: neuralop's FNO;
- ``boon``: BOON-FNO with the kernel correction T2 in every layer and exact output enforcement;
- ``boon_hidden``: as ``boon``, plus each Dirichlet face's prescribed value written into every hidden channel's
  face node after every layer (``BOONFNO(hidden_values=True)``: this package's version of the per-layer T1 of the
  paper's Dirichlet reference code); defined for Dirichlet problems only, reported as "n/a" elsewhere;
- ``boon_output``: exact output enforcement only (``kernel_correction=False``), face nodes overwritten;
- ``boon_lift``: exact output enforcement only, by the smooth lift over 4 nodes (``lift_width=4``; when wrapping
  trained models, ``experiments/wrap_checkpoint_accuracy.py`` over seeds 0-2, it helped on single-step Stokes, was
  neutral on Burgers and cost accuracy on heat and space-time Stokes: ``docs/boon_design.md``).

Full mode follows the paper's reference experiments: 1-D FNO with 16 retained Fourier modes (neuralop's
``n_modes=(31,)``: its last axis keeps ``n // 2 + 1`` rfft modes, so ``(16,)`` keeps 9 and ``(32,)`` 17), width 64,
4 layers; space-time FNO with 12 modes per axis (``n_modes=(24, 23)``: 24 centred along x, 12 rfft along t), width
32; N = 500 intervals (501 nodes; periodic Burgers 129), 500/100 samples (space-time 1000/200), batch 20, Adam lr
1e-3 with weight decay 1e-4, relative L2 loss, Stokes viscosity 0.1, boundary values per sample taken from the
target. Training (``--schedule``):

- ``paper`` (default): 500 epochs, learning rate x0.5 every 50 epochs (12,500 steps on 500 samples);
- ``converge``: the same step decay, stopped once the convergence criterion below holds, but not before
  ``--min-epochs`` (default 300: six halvings of the learning rate, so that a plateau at a large learning rate
  cannot end a run; measured: periodic Burgers' FNO met the criterion at epoch 165, with the learning rate at an
  eighth of its start, and a quarter for most of the 50 epochs before); cap: the max epochs.

Convergence criterion, checked and reported for every run under either schedule: the best validation error
(relative L2 on a held-out validation set, separate from the test set) improved by less than ``--tol`` (default
1%, relative) over the last ``--patience`` epochs (default 50, one learning-rate step).

Writes to ``--out``: ``results.md`` (the table, with the exact command and git commit above it), ``results.json``,
``runs/<problem>_<model>_s<seed>.json`` per finished run, ``runs/<...>.ckpt.pt`` while a run trains (every
10 epochs in full mode, ``--set checkpoint_every=N``; read back weights-only), PNG training curves per problem and
model (``curves_<problem>_<model>.png``: train loss and test error against epoch, every seed) and a solution plot per
problem. ``--resume`` keeps finished runs and continues interrupted ones from their checkpoint; the table is built
from every finished run in ``--out`` with the current settings, so a run split over sessions by ``--problems``,
``--models`` or ``--seeds`` adds up in one folder.

Runs are independent: ``--jobs N`` trains N at once, one process each (``--threads`` torch threads per process),
with the same numbers as one after another. Each run in training holds a claim file (``runs/<name>.claim``), so
separate calls may also share one ``--out``; a claim left by a process that has ended is taken over.

Following and checking a long run: ``--status`` lists every run as finished, in training, interrupted or pending,
with the training time left; ``--verify EPOCHS`` retrains the first epochs of every finished run and checks that
they give the recorded curves bit for bit (same torch build and ``--threads``), i.e. that the committed runs are
what the current code trains; ``--report-only --docs PAGE`` rebuilds the table and writes it, or its summary, into a
page's generated block.

Usage::

    python -m experiments.reproduce_boon --quick                          # < 2 min on 2 CPU cores
    mkdir -p results/boon_full/logs
    nohup python -m experiments.reproduce_boon --threads 1 --jobs 2 --resume --schedule converge \
        --out results/boon_full --problems stokes,burgers_dirichlet,heat,burgers_periodic \
        > results/boon_full/logs/main.log 2>&1 &

The hard-regime campaign (heat reference, space-time Stokes at viscosity 0.005 and 0.1, wave, Burgers with walls
per sample, the lid-driven cavity twice; the FNO given the wall values as input, and the trained FNO wrapped with
output enforcement, beside the BOON variants) is ``--campaign hard`` (``experiments/boon_campaign/hard.py``)::

    python -m experiments.reproduce_boon --campaign hard --quick          # every cell and model, smoke size
    python -m experiments.reproduce_boon --campaign hard --plan           # planned hours against the 40 h budget
    nohup python -m experiments.reproduce_boon --campaign hard --resume --jobs 2 --threads 1 \
        --out results/boon_hard > results/boon_hard/logs/main.log 2>&1 &

The cost of the full run at these settings is measured by ``experiments/estimate_boon_cost.py`` (see
``docs/boon_results.md``); ``--device cuda`` trains on a GPU (metrics are still computed on the CPU).

This file holds the command line and ``run``; the building blocks are the modules of ``experiments.boon_campaign``:
``configurations`` (problems, models, configurations), ``metrics``, ``training`` (the loop and the run
fingerprints), ``report`` (table, plots, documentation blocks), ``campaign`` (claims, workers, ``--status``,
``--verify``) and ``rule`` (the rule that chose the default).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

# The building blocks, one module each; their public names are re-exported here, where tests and the other scripts
# reach them.
from experiments.boon_campaign.campaign import (  # noqa: F401
    _train_in_parallel, campaign_status, claim_run, merge_verify, status_text, train_one, verify_runs,
    verify_text,
)
from experiments.boon_campaign.configurations import (  # noqa: F401
    CONFIGS, MODEL_KWARGS, MODEL_LABELS, MODELS, PROBLEMS, SCHEDULES, _sizes, architecture, build_model,
    check_selection, defined, generate, make_config, make_problem, parse_overrides, training_order,
)
from experiments.boon_campaign.metrics import (  # noqa: F401
    _batch_values, _call, boundary_residual, node_masks, predict, relative_l2,
)
from experiments.boon_campaign.report import (  # noqa: F401
    DOCS_BEGIN, DOCS_END, SUMMARY_BEGIN, SUMMARY_END, check_docs_block, markdown_table, plot_curves,
    plot_solutions, summarize, training_time_line, write_docs_blocks,
)
from experiments.boon_campaign.rule import choose_default, load_costs, markdown as decision_markdown, summary_markdown
from experiments.boon_campaign.training import (  # noqa: F401
    _current, _git_commit, _run_name, best_so_far, convergence, finished_run, resumable_keys, run_key, train,
)
from experiments.launch import parse_device
from experiments.provenance import command_line, machine_description


def _data_check(prob, cfg, cache_dir):
    """Largest difference between the Dirichlet values taken from the targets and the generator's own (0 without
    Dirichlet faces), and the seconds it took to generate (or read from the cache) the problem's data."""
    t0 = time.perf_counter()
    _, diff = make_problem(prob, cfg, cache_dir)
    return dict(target_vs_generator_face_values=diff, data_seconds=time.perf_counter() - t0)


def run(problems=PROBLEMS, models=MODELS, quick=False, out=None, seeds=None, max_epochs=None, schedule="paper",
        cache_dir=None, config=None, plots=True, resume=False, command=None, verbose=True, device="cpu", jobs=1,
        threads_per_job=None, report_only=False, costs=None, docs=None):
    """Train every (problem, model, seed) not finished yet and write the report to ``out``.

    Parameters
    ----------
    problems, models : sequence of str
        Subsets of ``PROBLEMS`` and ``MODELS``.
    quick : bool
        Smoke-sized configuration.
    out : str or Path, optional
        Output folder (default ``outputs/boon_quick`` or ``outputs/boon_full``).
    seeds : sequence of int, optional
        Override the configuration's seeds.
    max_epochs : int, optional
        Override the epoch count (the cap under ``schedule="converge"``).
    schedule : {"paper", "converge"}
        Train every epoch, or stop once the convergence criterion holds.
    cache_dir : str or Path, optional
        Data cache (default ``<out>/data``).
    config : dict, optional
        Override configuration entries (used by the smoke test).
    plots : bool
        Write PNGs.
    resume : bool
        Keep finished runs with the same settings and continue interrupted ones from their checkpoints;
        ``False`` retrains every selected run.
    command : str, optional
        Command line recorded in ``results.md``.
    verbose : bool
        Print progress.
    device : str or torch.device
        Where the models train (data move there batch by batch; metrics are computed on the CPU). Runs are
        resumed whatever the device, but CPU and GPU runs differ in round-off.
    jobs : int
        Runs trained at once, each in its own process (``1``: one after another, in this process). Every run
        is deterministic given its seed and thread count, so the numbers do not depend on ``jobs``.
    threads_per_job : int, optional
        Torch threads of each worker process when ``jobs > 1`` (default: the CPU count divided by ``jobs``).
    report_only : bool
        Train nothing: rebuild the table and the plots from the finished runs in ``out``.
    costs : str or Path, optional
        ``benchmark_boon.json`` written by ``experiments/benchmark_boon.py``: the training-step costs with which
        the report applies the default-selection rule (``experiments/boon_campaign/rule.py``). Without it the
        report lists the verdicts and chooses no default.
    docs : str or Path or sequence of them, optional
        Markdown files whose generated blocks are rewritten, so that a page shows exactly what the finished runs
        give. A block between ``DOCS_BEGIN`` and ``DOCS_END`` (``docs/boon_results.md``) gets the whole report
        (command, commit, table, the rule's verdicts, plots); one between ``SUMMARY_BEGIN`` and ``SUMMARY_END``
        (``docs/guide/results.md``) gets the ratios and verdicts per problem and variant and the outcome
        (:func:`experiments.boon_campaign.rule.summary_markdown`). Each file holds one or both.

    Returns
    -------
    dict
        ``{"mode", "schedule", "config", "runs", "summary", "decision", ...}``, as written to ``results.json``.

    Raises
    ------
    ValueError
        Unknown problem, model or schedule, no seeds, ``jobs`` / ``threads_per_job`` below 1, or a ``costs``
        file that does not time every variant in every configuration, or a ``docs`` file without a block.
    """
    training_costs = load_costs(costs)  # read first: a bad file fails before hours of training, not after
    docs = [] if docs is None else [docs] if isinstance(docs, (str, os.PathLike)) else list(docs)
    for page in docs:
        check_docs_block(page)
    n_jobs = int(jobs)
    if n_jobs < 1:
        raise ValueError(f"jobs must be a positive int, got {jobs!r}")
    if threads_per_job is None:
        threads_per_job = max(1, (os.cpu_count() or 1) // n_jobs)
    if int(threads_per_job) < 1:
        raise ValueError(f"threads_per_job must be a positive int, got {threads_per_job!r}")
    threads_per_job = int(threads_per_job)
    check_selection(problems, models, schedule)
    mode = "quick" if quick else "full"
    cfg = make_config(quick, config, seeds, max_epochs)
    out = Path(out or f"outputs/boon_{mode}")
    runs_dir = out / "runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    cache_dir = Path(cache_dir) if cache_dir is not None else out / "data"
    log = print if verbose else None
    t_start = time.perf_counter()
    data_checks = {}
    pending = []  # (problem, model, seed) still to train
    for seed, m, prob in training_order(cfg["seeds"], models, problems):
        name = _run_name(prob, m, seed)
        path = runs_dir / f"{name}.json"
        if resume and path.exists():
            if finished_run(path, cfg, prob, m, schedule) is not None:
                if log:
                    log(f"{name}: finished earlier, kept")
                continue
            if log:
                log(f"{name}: finished earlier with other settings, retrained")
        if not report_only:
            pending.append((prob, m, seed))
    for prob in dict.fromkeys(p for p, _, _ in pending):
        # Generated (or read from the cache) here, once per problem, so parallel workers only read the cache.
        data_checks[prob] = _data_check(prob, cfg, cache_dir)
    # The code these runs train with: taken now, before hours of training in which the tree may change.
    training_commit = _git_commit()
    jobs = [dict(prob=p, model=m, seed=s, cfg=cfg, schedule=schedule, runs_dir=str(runs_dir),
                 cache_dir=str(cache_dir), device=str(device), resume=resume, verbose=verbose,
                 commit=training_commit)
            for p, m, s in pending]
    if n_jobs == 1 or len(jobs) <= 1:
        for job in jobs:
            train_one(job)
    else:
        _train_in_parallel(jobs, n_jobs, threads_per_job)
    # The report covers every finished run in `out` that has the current settings, whichever call trained it.
    runs = []
    for path in sorted(runs_dir.glob("*.json")):
        r = json.loads(path.read_text())
        if r.get("problem") in PROBLEMS and r.get("model") in MODELS:
            r = _current(r, path, cfg, r["problem"], r["model"], schedule)
            if r is not None:
                runs.append(r)
    all_problems = [p for p in PROBLEMS if any(r["problem"] == p for r in runs)]
    all_models = [m for m in MODELS if any(r["model"] == m for r in runs)]
    # Every reported problem's data are checked, also by a call that trains nothing (--report-only): the table's
    # boundary values come from the targets, and results.json records how far they are from the generator's own.
    for prob in all_problems:
        if prob not in data_checks:
            data_checks[prob] = _data_check(prob, cfg, cache_dir)
    summary = summarize(runs, all_problems, all_models)
    decision = choose_default(summary, training_costs, expected=problems)  # 3 seeds at least, in every mode
    pngs = {}
    if plots:
        for prob in all_problems:
            trained = [r for r in runs if r["problem"] == prob and "not_defined" not in r]
            for m in all_models:
                rs = [r for r in trained if r["model"] == m]
                if rs:
                    pngs[f"{prob}/{m}"] = plot_curves(out, prob, m, rs)
            first = min((r["seed"] for r in trained), default=None)
            if first is not None:
                problem_plot = generate(prob, cfg, cache_dir)  # from the data cache
                n_train, n_val, _ = _sizes(cfg, prob)
                first_runs = [r for r in trained if r["seed"] == first]
                first_runs.sort(key=lambda r: MODELS.index(r["model"]))
                pngs[prob] = plot_solutions(out, prob, problem_plot, n_train + n_val, first_runs)
    machine = machine_description()
    commit = _git_commit()  # the report's code (the runs record the code they trained with)
    command = command or "run(...) called from Python"
    slim = [{k: v for k, v in r.items() if k != "pred_sample0"} for r in runs]
    result = dict(mode=mode, schedule=schedule, command=command, commit=commit, machine=machine,
                  config={k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items()},
                  seconds_this_call=time.perf_counter() - t_start, data_checks=data_checks, runs=slim,
                  summary=summary, decision=decision, costs_file=None if costs is None else str(costs), plots=pngs)
    (out / "results.json").write_text(json.dumps(result, indent=1, default=str))
    criterion = (f"best validation error improved by less than {cfg['tol']:.0%} over the last {cfg['patience']} "
                 f"epochs (under --schedule converge, a run stops once it holds, from epoch {cfg.get('min_epochs', 0)} "
                 "on)")
    header = [
        "",
        f"Command: `{command}`",
        "",
        f"Commit: {commit}. Machine: {machine}.",
        "",
        f"Convergence criterion ('converged' = seeds meeting it at the end): {criterion}.",
        "Relative L2 on the test set; 'FNO / model' is FNO's error divided by the model's, per seed.",
        "",
        training_time_line(runs),
        "",
    ]

    def report(link, top, sub):  # Markdown with headings ``top`` / ``sub``; PNGs linked through ``link(name)``
        return (f"{top} BOON reproduction ({mode} mode, schedule {schedule})\n" + "\n".join(header) + "\n"
                + markdown_table(summary, all_models) + "\n\n" + decision_markdown(decision, MODEL_LABELS, sub)
                + "\n" + "\n".join(f"![{k}]({link(v)})" for k, v in pngs.items()) + "\n")

    (out / "results.md").write_text(report(lambda name: name, "#", "##"))
    for page in docs:  # links relative to the page; the report sits inside a "###" section of it
        rel = os.path.relpath(out.resolve(), Path(page).resolve().parent)
        source = f"[{Path(rel).as_posix()}]({Path(rel, 'results.md').as_posix()})"
        write_docs_blocks(page, dict(
            report=report(lambda name: Path(rel, name).as_posix(), "####", "####"),
            summary=f"Generated by `{command}` at commit {commit} from the finished runs.\n\n"
                    + summary_markdown(decision, summary, MODEL_LABELS, source)))
    return result


def _main_hard(args, argv):
    """``--campaign hard``: the hard-regime campaign (``experiments.boon_campaign.hard_campaign``)."""
    from experiments.boon_campaign import hard, hard_campaign

    torch.set_num_threads(args.threads or 1)
    models = [m for m in args.models.split(",") if m] if args.models != ",".join(MODELS) else list(hard.MODELS)
    cells = None if args.cells is None else [c for c in args.cells.split(",") if c]
    seeds = None if args.seeds is None else [int(s) for s in args.seeds.split(",") if s]
    cfg = hard.make_config(args.quick, seeds, cells)
    hard.check_models(models)
    out = Path(args.out or f"outputs/boon_hard{'_quick' if args.quick else ''}")
    if args.plan:
        print(hard_campaign.plan_text(hard_campaign.plan(cfg, models)))
        return
    if args.status:
        print(hard_campaign.status_text(hard_campaign.status(out, cfg, models), args.jobs))
        return
    command = command_line("reproduce_boon", sys.argv[1:] if argv is None else argv)
    if args.verify is not None:
        commit = _git_commit()
        rows = hard_campaign.verify(out, cfg, models, args.verify, args.cache_dir, args.device,
                                    log=lambda msg: print(msg, flush=True))
        _write_verify(out, rows, command, commit)
        return
    result = hard_campaign.run(out, quick=args.quick, cells=cells, models=models, seeds=seeds, resume=args.resume,
                               device=args.device, jobs=args.jobs, threads_per_job=args.threads or 1,
                               cache_dir=args.cache_dir, plots=not args.no_plots, command=command,
                               report_only=args.report_only, costs=args.costs, docs=args.docs)
    print(hard_campaign.markdown_table(hard_campaign.summarize(
        hard_campaign.finished_runs(out, cfg, models), cfg["cells"], models), models))
    print(hard_campaign.plan_text(result["plan"]))
    print(f"{result['seconds_this_call']:.0f} s this call; wrote {out}")


def _write_verify(out, rows, command, commit):
    """Merge a ``--verify`` check's rows into ``out/verify.json``, print the verdict, and exit 1 if any run differs."""
    path = out / "verify.json"
    previous = json.loads(path.read_text()) if path.exists() else None
    path.write_text(json.dumps(merge_verify(previous, rows, command, commit, machine_description()), indent=1))
    print(verify_text(rows) + f"; wrote {path}")
    if not all(r["identical"] for r in rows):
        sys.exit(1)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--campaign", default="boon", choices=("boon", "hard"),
                        help="boon: the first campaign's 1-D problems (results/boon_full); hard: the hard-regime "
                             "campaign (experiments/boon_campaign/hard.py, results/boon_hard): heat reference, "
                             "space-time Stokes (thin layer, 0.1), wave, Burgers with walls, the cavity twice")
    parser.add_argument("--cells", default=None,
                        help="--campaign hard: comma-separated <problem>/<split> cells (default: the mode's)")
    parser.add_argument("--plan", action="store_true",
                        help="--campaign hard: print the planned hours per cell against the 40 h budget, from the "
                             "measured seconds per epoch (results/datasets/costs.json), and exit")
    parser.add_argument("--quick", action="store_true", help="smoke-sized run (< 2 min on 2 CPU cores)")
    parser.add_argument("--out", default=None, help="output folder (default outputs/boon_quick or outputs/boon_full)")
    parser.add_argument("--problems", default=",".join(PROBLEMS), help=f"comma-separated subset of {PROBLEMS}")
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated subset of {MODELS}")
    parser.add_argument("--seeds", default=None, help="comma-separated seeds (default: the mode's)")
    parser.add_argument("--schedule", default="paper", choices=SCHEDULES,
                        help="paper: all epochs, x0.5 every 50; converge: stop once the criterion holds")
    parser.add_argument("--max-epochs", type=int, default=None, help="epochs (cap under --schedule converge)")
    parser.add_argument("--patience", type=int, default=None, help="window of the convergence criterion, epochs")
    parser.add_argument("--tol", type=float, default=None, help="relative improvement threshold of the criterion")
    parser.add_argument("--min-epochs", type=int, default=None,
                        help="--schedule converge stops no earlier than this (default 300 in full mode)")
    parser.add_argument("--resume", action="store_true", help="keep finished runs, continue interrupted ones")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: 1 with --quick, torch's choice otherwise)")
    parser.add_argument("--cache-dir", default=None, help="data cache folder (default <out>/data)")
    parser.add_argument("--device", default="cpu", help="torch device to train on (default cpu)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="runs trained at once, one process each (default 1); with --threads, threads per run")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                        help="override a configuration entry, e.g. --set n_points.stokes_spacetime=129 "
                             "(recorded in results.json; runs with other settings are not mixed)")
    parser.add_argument("--costs", default=None, metavar="JSON",
                        help="benchmark_boon.json of experiments/benchmark_boon.py: with it the report applies the "
                             "default-selection rule (experiments/boon_campaign/rule.py)")
    parser.add_argument("--docs", action="append", default=None, metavar="MARKDOWN",
                        help="also rewrite this page's generated blocks: the report (docs/boon_results.md) or its "
                             "summary (docs/guide/results.md); with --campaign hard, the hard-regime report's block "
                             "(docs/boon_results.md); may be given more than once")
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument("--status", action="store_true",
                        help="list which runs in --out are finished, in training or to train, with an estimate of "
                             "the training time left (reads run files, claims and checkpoints; writes nothing)")
    parser.add_argument("--verify", type=int, default=None, metavar="EPOCHS",
                        help="retrain the first EPOCHS epochs of every selected finished run in --out and compare "
                             "its curves with the recorded ones (bit for bit with the same torch build and "
                             "--threads); prints a table, updates these runs' rows in <out>/verify.json (one row "
                             "per run, the latest check of each), exits 1 if any differs")
    parser.add_argument("--report-only", action="store_true",
                        help="train nothing; rebuild the table and plots from the finished runs in --out")
    args = parser.parse_args(argv)
    # An option the call does not read is refused, not silently ignored: given (even at its default value) or set
    # to something other than its default.
    tokens = sys.argv[1:] if argv is None else list(argv)

    def given(option):
        dest = option.lstrip("-").replace("-", "_")
        return (getattr(args, dest) != parser.get_default(dest)
                or any(t == option or t.startswith(option + "=") for t in tokens))

    only = {"hard": ("--cells", "--plan"),
            "boon": ("--problems", "--schedule", "--max-epochs", "--patience", "--tol", "--min-epochs", "--set")}
    other = "boon" if args.campaign == "hard" else "hard"
    for option in only[other]:
        if given(option):
            parser.error(f"{option} belongs to --campaign {other}; --campaign {args.campaign} does not read it")
    modes = [o for o in ("--plan", "--status", "--verify", "--report-only") if given(o)]
    if len(modes) > 1:
        parser.error(f"{modes[0]} and {modes[1]} cannot be combined: each is a call of its own")
    if modes and modes[0] != "--report-only":  # these print or check and write no report
        for option in ("--docs", "--costs", "--no-plots", "--resume", "--report-only"):
            if given(option):
                parser.error(f"{option} does nothing with {modes[0]}, which writes no report; drop it")
    if modes and modes[0] != "--verify" and given("--device"):  # they train nothing
        parser.error(f"--device does nothing with {modes[0]}, which trains nothing; drop it")
    try:
        parse_device(args.device)
    except ValueError as err:
        parser.error(str(err))
    if args.campaign == "hard":
        return _main_hard(args, argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    elif args.quick:
        # Small tensors: a second intra-op thread costs more in synchronisation than it gains, and stalls badly
        # when the other core is busy (measured: 281 s with torch's 2 threads next to a busy core, 15 s with 1).
        torch.set_num_threads(1)
    config = parse_overrides(args.set, CONFIGS["quick" if args.quick else "full"])
    if args.patience is not None:
        config["patience"] = args.patience
    if args.tol is not None:
        config["tol"] = args.tol
    if args.min_epochs is not None:
        config["min_epochs"] = args.min_epochs
    seeds = None if args.seeds is None else [int(s) for s in args.seeds.split(",") if s]
    problems, models = [p for p in args.problems.split(",") if p], [m for m in args.models.split(",") if m]
    out = Path(args.out or f"outputs/boon_{'quick' if args.quick else 'full'}")
    if args.status:
        cfg = make_config(args.quick, config, seeds, args.max_epochs)
        rows = campaign_status(out, problems, models, cfg, args.schedule)
        print(status_text(rows, args.jobs))
        return
    command = command_line("reproduce_boon", sys.argv[1:] if argv is None else argv)
    if args.verify is not None:
        cfg = make_config(args.quick, config, seeds, args.max_epochs)
        # The code that retrains the runs is the code at the start: files edited during a long check must not
        # be recorded as what was checked.
        commit = _git_commit()
        rows = verify_runs(out, problems, models, cfg, args.schedule, args.verify, args.cache_dir, args.device,
                           log=lambda msg: print(msg, flush=True))
        _write_verify(out, rows, command, commit)
        return
    result = run(
        problems=problems, models=models, quick=args.quick, out=out, seeds=seeds, max_epochs=args.max_epochs,
        schedule=args.schedule, cache_dir=args.cache_dir, config=config, plots=not args.no_plots, resume=args.resume,
        command=command, device=args.device, jobs=args.jobs, threads_per_job=args.threads,
        report_only=args.report_only, costs=args.costs, docs=args.docs,
    )
    print(markdown_table(result["summary"], [m for m in MODELS if any(r["model"] == m for r in result["runs"])]))
    print(f"{result['seconds_this_call']:.0f} s this call; wrote {out}")


if __name__ == "__main__":
    main()
