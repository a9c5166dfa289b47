"""What a Neo4j server error says about the server's health (issue 16, finding 7: a full disk).

Measured on Neo4j 5.26 with its data directory on a full filesystem (``tests/test_reliability_neo4j_disk_full.py``):

1. Without log preallocation (``db.tx_log.preallocate=false``, the development launcher's setting), the first
   commit that cannot be appended to the transaction log fails with
   ``Neo.DatabaseError.Transaction.TransactionLogError`` ("Could not append transaction ... to log"). The driver
   gets no more than that: "No space left on device" is only in the server's ``debug.log``. Commits small enough
   to fit in the log file's last, already allocated page still succeed before that (and are durable). With
   preallocation (Neo4j's default) the log has room and the store files cannot grow instead: the commit fails
   with ``Neo.DatabaseError.Transaction.TransactionCommitFailed`` ("Could not apply the transaction ... to the
   store after written to log"), and that transaction is in the log, so recovery applies it at the restart.
2. From then on the database has "panicked": every transaction, reads and ``RETURN 1`` included, fails with
   "The database has encountered a critical error, and needs to be restarted" (``TransactionStartFailed``),
   even after space has been freed, until the server is restarted. A restart recovers every committed
   transaction; a failed append is not there, a failed apply is.

:class:`ServerFailures` turns the first into :class:`~graph.errors.StoreFull` (with ``restart_needed``, and
``maybe_saved`` for a failed apply) and the second into the same ``StoreFull`` when this process saw such a
failure, else into
:class:`~graph.errors.StoreNeedsRestart`. Either is a :class:`~graph.errors.StoreUnavailable`: the web layer
answers 503 and ``/readyz`` is not ready. Every other server error stays a plain
:class:`~graph.errors.GraphError`.
"""

from __future__ import annotations

import threading
from typing import Final

from neo4j.exceptions import Neo4jError

from graph.errors import GraphError, StoreFull, StoreNeedsRestart

__all__ = ["APPLY_FAILED", "APPLY_FAILED_TEXT", "LOG_APPEND_FAILED", "PANIC_TEXT", "ServerFailures"]

#: The error of the commit that found the transaction log's disk full (or otherwise unwritable).
LOG_APPEND_FAILED: Final = "Neo.DatabaseError.Transaction.TransactionLogError"
#: The error of a commit written to the log whose store files could not be written (with :data:`APPLY_FAILED_TEXT`).
APPLY_FAILED: Final = "Neo.DatabaseError.Transaction.TransactionCommitFailed"
APPLY_FAILED_TEXT: Final = "after written to log"
#: In the message of every error once the database has panicked (whatever the code: start, commit, unknown).
PANIC_TEXT: Final = "needs to be restarted"


class ServerFailures:
    """Translate one store's Neo4j server errors, remembering a failed log append until a call succeeds.

    Examples
    --------
    >>> failures = ServerFailures("bolt://db:7687")
    >>> def error(code, message):  # what the driver builds from a server's FAILURE message
    ...     return Neo4jError._hydrate_neo4j(code=code, message=message)
    >>> panic = error("Neo.DatabaseError.Transaction.TransactionStartFailed",
    ...               "The database has encountered a critical error, and needs to be restarted.")
    >>> type(failures.translate(panic)).__name__
    'StoreNeedsRestart'
    >>> full = failures.translate(error(LOG_APPEND_FAILED, "Could not append transaction #8 to log."))
    >>> type(full).__name__, full.restart_needed, type(failures.translate(panic)).__name__
    ('StoreFull', True, 'StoreFull')
    >>> failures.succeeded(); type(failures.translate(panic)).__name__
    'StoreNeedsRestart'
    >>> applied = failures.translate(error(APPLY_FAILED, "Could not apply the transaction #103 to the store after "
    ...                                                  "written to log."))
    >>> type(applied).__name__, applied.maybe_saved, type(failures.translate(panic)).__name__
    ('StoreFull', True, 'StoreFull')
    """

    def __init__(self, uri: str = "the Neo4j server") -> None:
        self._uri = uri
        self._disk_failed = False
        self._lock = threading.Lock()

    def translate(self, err: Neo4jError) -> GraphError:
        """The :mod:`graph.errors` exception for ``err`` (to be raised ``from err``)."""
        message = err.message or str(err)
        if err.code == APPLY_FAILED and APPLY_FAILED_TEXT in message:
            with self._lock:
                self._disk_failed = True
            return StoreFull(
                f"Neo4j at {self._uri} logged a transaction but could not write it to its store files (its disk is "
                f"most likely full; the server's debug.log says why); it serves nothing until restarted with room, "
                f"and its recovery will apply that transaction: {message}",
                restart_needed=True, maybe_saved=True,
            )
        if err.code == LOG_APPEND_FAILED:
            with self._lock:
                self._disk_failed = True
            return StoreFull(
                f"Neo4j at {self._uri} could not append a transaction to its log (its disk is most likely full; "
                f"the server's debug.log says why); it serves nothing until restarted with room: {message}",
                restart_needed=True,
            )
        if PANIC_TEXT in message:
            with self._lock:
                disk = self._disk_failed
            if disk:
                return StoreFull(
                    f"Neo4j at {self._uri} stopped after it could not write to its disk (most likely full); "
                    f"free space on its disk and restart it: {message}",
                    restart_needed=True,
                )
            return StoreNeedsRestart(f"Neo4j at {self._uri} stopped after a critical error and must be "
                                     f"restarted (its debug.log says why): {err.code}: {message}")
        return GraphError(f"Neo4j error {err.code}: {message}")

    def succeeded(self) -> None:
        """A call went through: the server serves again (it was restarted), forget a failed write."""
        if self._disk_failed:
            with self._lock:
                self._disk_failed = False
