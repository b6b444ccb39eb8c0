"""python -m djongo.server --dbpath DIR [--port 27017] [--bind 127.0.0.1] ...

Runs djongo-server (the C program installed with the package) with the
same arguments: the embedded engine served over MongoDB's wire protocol.
"""
import os
import shutil
import sys


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    exe = shutil.which("djongo-server") or os.path.join(os.path.dirname(sys.executable), "djongo-server")
    if not os.path.exists(exe):
        sys.exit("djongo.server: the djongo-server program is not installed (pip install djongo)")
    os.execv(exe, [exe, *argv])


if __name__ == "__main__":
    main()
