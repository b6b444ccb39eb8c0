"""djongo: Django on MongoDB, with a C core.

This package is Django's plugin surface: the database backend (ENGINE
'djongo': base.py and the files beside it), the DB-API driver's Python half
(driver.py), model and form fields (models/, forms.py). The work happens in
C: the SQL compiler, the DB-API driver, the embedded engine and the
wire-protocol server (src/). See DEVELOPERS.md.
"""

import os
import shutil

__version__ = "2.0.0.dev0"


def engine_tool():
    """Path of the installed ``djongo-engine`` program (runs MongoDB commands
    against a data directory), or None if it is not on PATH."""
    return shutil.which("djongo-engine", path=os.environ.get("PATH"))


def concerns(using=None, **kwargs):
    """A context manager: the read preference, read concern and write
    concern of what the block runs on database alias `using`
    (djongo/concern.py)."""
    from djongo.concern import concerns as block

    return block(using, **kwargs)


_settings_check_registered = False


def register_settings_check():
    """`manage.py check` reports mistakes in a djongo DATABASES entry
    (djongo.E01x, validation.settings_errors) -- the connection refuses
    them too, when it is first made. With --database, the backend's own
    validation reports them instead. Called where Django is in play
    (djongo.base, djongo.models), so the driver alone never imports Django."""
    global _settings_check_registered
    if _settings_check_registered:
        return
    _settings_check_registered = True
    from django.core import checks

    @checks.register(checks.Tags.compatibility)
    def djongo_settings(app_configs=None, databases=None, **kwargs):
        from django.conf import settings

        from djongo.validation import settings_errors

        errors = []
        for alias, entry in getattr(settings, "DATABASES", {}).items():
            if entry.get("ENGINE") == "djongo" and alias not in (databases or ()):
                errors += settings_errors(alias, entry)
        return errors
