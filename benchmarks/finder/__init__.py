"""Learning-rate finder benchmarks: which suggestion rule (and which stop rule) trains well, measured by training at
every rule's suggestion per dataset, recipe and seed, and sweeping around the kept one.

- `rules`: the study behind ftcore.lr_find.suggest.DEFAULT_RULE (benchmarks/results/lr-rules-*.txt).

    python -m benchmarks.finder.rules --help
"""
