"""Models with stored generated columns (tests/django/generated_tests.py)."""
