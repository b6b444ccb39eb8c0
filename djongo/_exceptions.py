"""PEP 249 exceptions of the djongo DB-API driver.

Defined in Python (as mysqlclient does) so the hierarchy reads plainly; the C
extension imports them and maps every error once (see _driver.c, map_error):

  DJ_DOMAIN_SQL   syntax -> ProgrammingError, unsupported -> NotSupportedError,
                  parameters -> ProgrammingError
  DJ_DOMAIN_SERVER (MongoDB's codes, from the engine or a server)
                  11000/11001 duplicate key, 121 document validation
                  -> IntegrityError; 26 namespace not found, 48 exists,
                  27 index not found -> ProgrammingError; others
                  -> OperationalError
  libmongoc's own domains (network, server selection, authentication)
                  -> OperationalError
  DJ_DOMAIN_STORAGE (opening a data directory) -> OperationalError

The server's or compiler's message is kept; `.code` and `.domain` carry the
numbers, `.error_labels` MongoDB's error labels (TransientTransactionError,
UnknownTransactionCommitResult...: src/transport/dj_transport.h,
dj_transport_error_labels), as pymongo's errors carry them.
"""


class Warning(Exception):  # noqa: A001 -- PEP 249's name
    pass


class Error(Exception):
    error_labels = ()  # the C driver sets the labels the server (or engine) gave

    def __init__(self, message="", code=None, domain=None):
        super().__init__(message)
        self.code = code
        self.domain = domain

    def has_error_label(self, label):
        """Whether MongoDB labelled this error so (pymongo's name)."""
        return label in self.error_labels


class InterfaceError(Error):
    pass


class DatabaseError(Error):
    pass


class DataError(DatabaseError):
    pass


class OperationalError(DatabaseError):
    pass


class IntegrityError(DatabaseError):
    pass


class InternalError(DatabaseError):
    pass


class ProgrammingError(DatabaseError):
    pass


class NotSupportedError(DatabaseError):
    pass
