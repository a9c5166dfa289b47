"""Ranking of workers for a problem, its evaluation, and the campaign workflow built on the ranking.

Modules (import what you need; this package imports none of them, so importing
:mod:`recommender.errors` does not load the ranking, scikit-learn or the store):

- :mod:`recommender.engine`: :class:`~recommender.engine.Recommender`, the product ranker
  (``docs/interfaces.md``);
- :mod:`recommender.index`, :mod:`recommender.signals`, :mod:`recommender.features`,
  :mod:`recommender.text`, :mod:`recommender.expertise`: the ranking index and its signals;
- :mod:`recommender.fusion`, :mod:`recommender.training`: fusing the signals into one score, and
  choosing the fusion on a graph's own history (``docs/ranking.md``);
- :mod:`recommender.explain`: reasons a coordinator can check;
- :mod:`recommender.evaluate`, :mod:`recommender.metrics`: offline evaluation on benchmark queries;
- :mod:`recommender.selection`, :mod:`recommender.assign`, :mod:`recommender.targets`,
  :mod:`recommender.progress`: two-way selection, campaign assignment, targets and progress
  (``docs/workflow.md``);
- :mod:`recommender.errors`: the exceptions.

This package may import :mod:`graph` and :mod:`embeddings`, never :mod:`web` (nor Flask).
"""
