"""The campaign workflow built on the ranking: two-way selection, assignment, targets and progress.

Modules (import what you need; this package imports none of them):

- :mod:`workflow.selection`: matches and their two-way selection (``docs/workflow.md``);
- :mod:`workflow.assign`: a campaign's assignment of workers to problems under capacities;
- :mod:`workflow.targets`, :mod:`workflow.progress`: the programme's targets and the progress against them;
- :mod:`workflow.errors`: the exceptions.

The rules it shares with the ranking (ids, the time zone, a problem's status, a worker's capacity) live in
:mod:`graph.rules`. This package may import :mod:`recommender`, :mod:`graph` and :mod:`embeddings`, never
:mod:`web` (nor Flask).
"""
