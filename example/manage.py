#!/usr/bin/env python3
"""The example site: a small publishing site on djongo (see README.md)."""
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "publishing.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
