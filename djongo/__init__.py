"""djongo: Django on MongoDB, with a C core.

This package is Django's plugin surface (the database backend lands here with
the Django-backend issue). The work happens in C: the embedded engine
(src/engine), and, as the architecture fills in, the SQL compiler, the DB-API
driver and the wire-protocol server. See DEVELOPERS.md.
"""

import os
import shutil

__version__ = "2.0.0.dev0"


def engine_tool():
    """Path of the installed ``djongo-engine`` program (runs MongoDB commands
    against a data directory), or None if it is not on PATH."""
    return shutil.which("djongo-engine", path=os.environ.get("PATH"))
