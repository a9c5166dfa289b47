"""Ranking of workers for a problem, its explanation and its evaluation.

Modules (import what you need; this package imports none of them, so importing
:mod:`recommender.errors` does not load the ranking, scikit-learn or the store):

- :mod:`recommender.engine`: :class:`~recommender.engine.Recommender`, the product ranker
  (``docs/interfaces.md``), with :mod:`recommender.config` (its settings), :mod:`recommender.pipeline`
  (one recommendation as named stages), :mod:`recommender.query` (a query analysed once) and
  :mod:`recommender.lifecycle` (building, mapping and refreshing the index);
- :mod:`recommender.index`, :mod:`recommender.walk`, :mod:`recommender.dates`, :mod:`recommender.signals`,
  :mod:`recommender.features`, :mod:`recommender.text`, :mod:`recommender.expertise`: the ranking index and
  its signals;
- :mod:`recommender.fusion`, :mod:`recommender.training`: fusing the signals into one score, and
  choosing the fusion on a graph's own history (``docs/ranking.md``);
- :mod:`recommender.explain`: reasons a coordinator can check;
- :mod:`recommender.evaluate`, :mod:`recommender.metrics`: offline evaluation on benchmark queries;
- :mod:`recommender.errors`: the exceptions.

This package may import :mod:`graph` and :mod:`embeddings`, never :mod:`workflow` or :mod:`web` (nor Flask).
The campaign workflow built on the ranking is :mod:`workflow`.
"""
