"""Ensembles of a batch's own models, chosen on validation predictions alone.

- :mod:`benchmark.ensemble.select`: pure functions, which members with which weights
  (greedy forward selection, or equal weights) and the weighted mean of their probabilities;
- :mod:`benchmark.ensemble.members`: the members' runs of one (seed, split) and their logged
  validation and test predictions;
- :mod:`benchmark.ensemble.unit`: the ensemble of one (seed, split) as a run of its own.
"""
