/*
 * dj_error.h -- one error type for the whole C core.
 *
 * Every fallible function in djongo's C code returns bool (or NULL) and takes
 * a `bson_error_t *error` as its last parameter, the libbson convention:
 * {domain, code, message}. The domain says which layer raised it; the code is
 * that layer's number. For DJ_DOMAIN_SERVER the code *is* MongoDB's server
 * error code (11000, 2, 26, ...), so the embedded engine and a real server
 * report the same numbers and the Python driver maps both once to PEP 249.
 *
 * `error` may be NULL where the caller does not care.
 */
#ifndef DJ_ERROR_H
#define DJ_ERROR_H

#include <bson/bson.h>
#include <stdarg.h>

/* Domains. Kept away from libbson/libmongoc's own (1..40ish) so a mongoc
 * error passed through unchanged is never mistaken for ours. */
enum {
   DJ_DOMAIN_SERVER = 1000, /* code = MongoDB server error code */
   DJ_DOMAIN_SQL = 1001,    /* code = DJ_SQL_* (syntax, unsupported) */
   DJ_DOMAIN_STORAGE = 1002, /* code = errno / LMDB return code */
   DJ_DOMAIN_CRYPT = 1003    /* code = libmongocrypt's status code (src/crypt) */
};

/* MongoDB server error codes we raise, with the names MongoDB gives them
 * (src/mongo/base/error_codes.yml in the server). */
enum {
   DJ_OK = 0,
   DJ_InternalError = 1,
   DJ_BadValue = 2,
   DJ_NoSuchKey = 4,
   DJ_FailedToParse = 9,
   DJ_Unauthorized = 13,
   DJ_TypeMismatch = 14,
   DJ_Overflow = 15,
   DJ_InvalidLength = 16,
   DJ_IllegalOperation = 20,
   DJ_IndexNotFound = 27,
   DJ_PathNotViable = 28,
   DJ_NamespaceNotFound = 26,
   DJ_ConflictingUpdateOperators = 40,
   DJ_CursorNotFound = 43,
   DJ_MaxTimeMSExpired = 50,
   DJ_NamespaceExists = 48,
   DJ_DollarPrefixedFieldName = 52,
   DJ_InvalidIdField = 53,
   DJ_NotSingleValueField = 54,
   DJ_EmptyFieldName = 56,
   DJ_DottedFieldName = 57,
   DJ_CommandNotFound = 59,
   DJ_ImmutableField = 66,
   DJ_CannotCreateIndex = 67,
   DJ_IndexAlreadyExists = 68,
   DJ_InvalidOptions = 72,
   DJ_InvalidNamespace = 73,
   DJ_IndexOptionsConflict = 85,
   DJ_IndexKeySpecsConflict = 86,
   DJ_UnknownReplWriteConcern = 79,
   DJ_UnsatisfiableWriteConcern = 100,
   DJ_OperationFailed = 96,
   DJ_WriteConflict = 112,
   DJ_CommandNotSupported = 115,
   DJ_ExceededMemoryLimit = 146,
   DJ_ViewDepthLimitExceeded = 149,
   DJ_CommandNotSupportedOnView = 166,
   DJ_InvalidIndexSpecificationOption = 197,
   DJ_OptionNotSupportedOnView = 167,
   DJ_ConflictingOperationInProgress = 117,
   DJ_DocumentValidationFailure = 121,
   DJ_NotImplemented = 238,
   DJ_CappedPositionLost = 136,
   DJ_QueryFeatureNotAllowed = 224,
   DJ_TransactionTooOld = 225,
   DJ_NoSuchTransaction = 251,
   DJ_TransactionCommitted = 256,
   DJ_NoQueryExecutionPlans = 291,
   DJ_APIVersionError = 322,
   DJ_APIStrictError = 323,
   DJ_OperationNotSupportedInTransaction = 263,
   DJ_BSONObjectTooLarge = 10334,
   DJ_DuplicateKey = 11000,
   DJ_OutOfDiskSpace = 14031,
   DJ_UnknownField = 40415,
   DJ_Location31253 = 31253, /* inclusion in exclusion projection */
   DJ_Location31254 = 31254, /* exclusion in inclusion projection */
   DJ_Location51270 = 51270  /* $size/… argument errors */
};

/* Sets *error (if error != NULL). Always returns false so callers can write
 * `return dj_error_set (error, ...);`. */
bool dj_error_set (bson_error_t *error, uint32_t domain, uint32_t code, const char *fmt, ...)
   BSON_GNUC_PRINTF (4, 5);

/* Shorthand for the server domain, the one the engine uses everywhere. */
#define dj_err(error, code, ...) dj_error_set ((error), DJ_DOMAIN_SERVER, (code), __VA_ARGS__)

/* MongoDB's codeName for a server code ("DuplicateKey"), or "Location<code>"
 * for codes without a name, as the server itself prints them. The returned
 * string is static, or in `buf` (at least 24 bytes) for the Location form. */
const char *dj_error_code_name (uint32_t code, char *buf);

/* Appends {ok: 0, errmsg, code, codeName} to `reply` (an initialised bson_t). */
void dj_error_append_reply (const bson_error_t *error, bson_t *reply);

/* A value as an error message shows it: its relaxed Extended JSON (1,
 * "a", {"$oid": ...}). Owned by the caller (bson_free). */
char *dj_error_value_json (const bson_value_t *v);

#endif
