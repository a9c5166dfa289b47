"""Running the product's infrastructure from a source checkout.

- :mod:`ops.neo4j_server`: build and supervise the development/test Neo4j 5.26 server (the Java launcher in
  ``neo4j-launcher/``), used by the tests, ``jianglian neo4j`` and the Makefile from this one place.

Nothing in the library packages imports this package.
"""
