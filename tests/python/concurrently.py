"""A test's worker run in several threads at once; shared by the driver's
tests here and the server's in tests/wire (which puts this folder on
sys.path, as for test_dbapi20)."""
import threading


def in_threads(work, n):
    """Calls work(0) .. work(n - 1), each in its own thread, all started
    before any is joined; returns what they raised. (An exception in a
    thread is only printed: the test must assert on this list.)"""
    errors = []

    def guarded(i):
        try:
            work(i)
        except Exception as e:  # noqa: BLE001 -- returned for the test to assert on
            errors.append(e)

    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors
