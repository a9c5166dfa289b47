"""The demo data and the research notebooks' helpers.

- :mod:`demo.generator` (with its vocabulary :mod:`demo.vocab`): the deterministic Yancheng demo dataset that
  ``make serve``, the tests and the benchmarks load (``jianglian demo``);
- :mod:`demo.research`: opening a store for the notebooks, scratch copies for what-if runs, Chinese plots.

This package may import :mod:`graph`, :mod:`embeddings`, :mod:`recommender` and :mod:`workflow`, never
:mod:`web`.
"""
