"""The ``jianglian`` command line: one click group, commands grouped by theme in sibling modules."""
