"""Retrying a transaction MongoDB says may succeed if run again.

A transaction can fail for reasons that are not the code's: a write
conflict with another transaction (on the embedded engine and on MongoDB),
a primary stepping down, a network error. MongoDB labels those errors
TransientTransactionError: the whole transaction was rolled back and may be
run again from its start. A commit whose outcome is unknown
(UnknownTransactionCommitResult) is sent again by the driver itself
(src/transport: the transaction is applied at most once), and reported only
if it still fails. Django's exceptions keep the driver's in ``__cause__``,
whose ``error_labels`` has them; ``has_error_label(exc, label)`` looks there.
https://www.mongodb.com/docs/manual/core/transactions-in-applications/

    from djongo.transaction import retry_atomic

    @retry_atomic(attempts=5)
    def transfer(a, b, amount):
        ...                                    # runs in transaction.atomic()

    retry_atomic(move_stock, attempts=5)(item, 3)                 # or wrapped where called

The block must be the outermost atomic() (a transient error loses the whole
transaction, which an inner block cannot run again: there it is raised
as is), and must do nothing outside the database it cannot do twice.
"""
import functools

from django.db import DEFAULT_DB_ALIAS, connections, transaction

TRANSIENT = "TransientTransactionError"
UNKNOWN_COMMIT = "UnknownTransactionCommitResult"


def has_error_label(exc, label):
    """Whether `exc` (a Django or driver exception) or what caused it
    carries MongoDB's error label `label`."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if label in getattr(exc, "error_labels", ()):
            return True
        exc = exc.__cause__  # Django raises its own "from" the driver's
    return False


def retry_atomic(func=None, *, attempts=3, using=None, savepoint=True, durable=False):
    """`func` made to run in ``transaction.atomic(using)``, again (up to
    `attempts` runs in all) while it fails with an error labelled
    TransientTransactionError; the last error is raised. A decorator:
    ``@retry_atomic`` or ``@retry_atomic(attempts=5, using="other")``; or
    ``retry_atomic(func, attempts=5)(*args)``."""
    if attempts < 1:
        raise ValueError("attempts must be at least 1")

    def decorate(f):
        @functools.wraps(f)
        def run(*args, **kwargs):
            alias = using or DEFAULT_DB_ALIAS
            for attempt in range(1, attempts + 1):
                try:
                    with transaction.atomic(using=alias, savepoint=savepoint, durable=durable):
                        return f(*args, **kwargs)
                except Exception as e:
                    if (attempt == attempts or connections[alias].in_atomic_block
                            or not has_error_label(e, TRANSIENT)):
                        raise
        return run

    return decorate if func is None else decorate(func)
