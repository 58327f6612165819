"""The BOON reproduction's building blocks (``python -m experiments.reproduce_boon`` is the command line).

``configurations`` (problems, models, configurations), ``metrics``, ``training`` (the loop and the run
fingerprints), ``report`` (table, plots, documentation blocks), ``campaign`` (claims, workers, ``--status``,
``--verify``) and ``rule`` (the pre-registered rule that chose BOON's default); the hard-regime campaign
(``--campaign hard``): ``hard`` (cells, models, sizes), ``hard_campaign`` (runner, plan, status, report) and
``regions`` (the error split by region and over time).
"""
