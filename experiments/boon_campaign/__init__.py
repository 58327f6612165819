"""The BOON reproduction's building blocks (``python -m experiments.reproduce_boon`` is the command line).

``configurations`` (problems, models, configurations), ``metrics``, ``training`` (the loop and the run
fingerprints), ``report`` (table, plots, documentation blocks), ``campaign`` (claims, workers, ``--status``,
``--verify``) and ``rule`` (the pre-registered rule that chose BOON's default).
"""
