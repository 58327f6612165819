"""The reproduction and benchmark scripts of the repository: what produced ``results/`` and ``docs/``.

Not part of the installed package: run them from a clone, at its root, as modules, e.g.
``python -m experiments.reproduce_boon --quick``. ``experiments/README.md`` lists every command, its cost and its
outputs. The BOON campaign's building blocks live in :mod:`experiments.boon_campaign`; :mod:`experiments.provenance`
describes the machine and the commit that every result file records.
"""
