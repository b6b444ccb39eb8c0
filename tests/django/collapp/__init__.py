"""Models with db_collation (tests/django/collation_tests.py)."""
