/* dj_error.c -- see dj_error.h. */
#include "dj_error.h"

#include <stdio.h>

bool
dj_error_set (bson_error_t *error, uint32_t domain, uint32_t code, const char *fmt, ...)
{
   va_list ap;

   if (!error) {
      return false;
   }
   error->domain = domain;
   error->code = code;
   va_start (ap, fmt);
   vsnprintf (error->message, sizeof error->message, fmt, ap);
   va_end (ap);
   return false;
}

/* The one table of names. Sorted by code; looked up linearly (it is tiny and
 * only touched on the error path). */
static const struct {
   uint32_t code;
   const char *name;
} code_names[] = {
   {1, "InternalError"},
   {2, "BadValue"},
   {4, "NoSuchKey"},
   {6, "HostUnreachable"},
   {7, "HostNotFound"},
   {9, "FailedToParse"},
   {13, "Unauthorized"},
   {14, "TypeMismatch"},
   {15, "Overflow"},
   {16, "InvalidLength"},
   {20, "IllegalOperation"},
   {22, "InvalidBSON"},
   {24, "LockTimeout"},
   {26, "NamespaceNotFound"},
   {27, "IndexNotFound"},
   {28, "PathNotViable"},
   {40, "ConflictingUpdateOperators"},
   {43, "CursorNotFound"},
   {47, "NoMatchingDocument"},
   {48, "NamespaceExists"},
   {50, "MaxTimeMSExpired"},
   {52, "DollarPrefixedFieldName"},
   {53, "InvalidIdField"},
   {54, "NotSingleValueField"},
   {56, "EmptyFieldName"},
   {57, "DottedFieldName"},
   {59, "CommandNotFound"},
   {64, "WriteConcernFailed"},
   {66, "ImmutableField"},
   {67, "CannotCreateIndex"},
   {68, "IndexAlreadyExists"},
   {72, "InvalidOptions"},
   {73, "InvalidNamespace"},
   {79, "UnknownReplWriteConcern"},
   {85, "IndexOptionsConflict"},
   {86, "IndexKeySpecsConflict"},
   {89, "NetworkTimeout"},
   {91, "ShutdownInProgress"},
   {96, "OperationFailed"},
   {100, "UnsatisfiableWriteConcern"},
   {112, "WriteConflict"},
   {115, "CommandNotSupported"},
   {117, "ConflictingOperationInProgress"},
   {121, "DocumentValidationFailure"},
   {133, "FailedToSatisfyReadPreference"},
   {134, "ReadConcernMajorityNotAvailableYet"},
   {136, "CappedPositionLost"},
   {166, "CommandNotSupportedOnView"},
   {189, "PrimarySteppedDown"},
   {197, "InvalidIndexSpecificationOption"},
   {202, "NetworkInterfaceExceededTimeLimit"},
   {224, "QueryFeatureNotAllowed"},
   {225, "TransactionTooOld"},
   {234, "RetryChangeStream"},
   {237, "CursorKilled"},
   {238, "NotImplemented"},
   {239, "SnapshotTooOld"},
   {246, "SnapshotUnavailable"},
   {251, "NoSuchTransaction"},
   {256, "TransactionCommitted"},
   {260, "InvalidResumeToken"},
   {262, "ExceededTimeLimit"},
   {263, "OperationNotSupportedInTransaction"},
   {267, "PreparedTransactionInProgress"},
   {280, "ChangeStreamFatalError"},
   {286, "ChangeStreamHistoryLost"},
   {291, "NoQueryExecutionPlans"},
   {9001, "SocketException"},
   {10107, "NotWritablePrimary"},
   {10334, "BSONObjectTooLarge"},
   {11000, "DuplicateKey"},
   {11600, "InterruptedAtShutdown"},
   {11601, "Interrupted"},
   {11602, "InterruptedDueToReplStateChange"},
   {322, "APIVersionError"},
   {323, "APIStrictError"},
   {13435, "NotPrimaryNoSecondaryOk"},
   {13436, "NotPrimaryOrSecondary"},
   {14031, "OutOfDiskSpace"},
   {31082, "SearchNotEnabled"},
};

const char *
dj_error_code_name (uint32_t code, char *buf)
{
   size_t i;

   for (i = 0; i < sizeof code_names / sizeof code_names[0]; i++) {
      if (code_names[i].code == code) {
         return code_names[i].name;
      }
   }
   snprintf (buf, 24, "Location%u", code);
   return buf;
}

void
dj_error_append_reply (const bson_error_t *error, bson_t *reply)
{
   char buf[24];
   uint32_t code = error->domain == DJ_DOMAIN_SERVER ? error->code : DJ_InternalError;

   BSON_APPEND_DOUBLE (reply, "ok", 0.0);
   BSON_APPEND_UTF8 (reply, "errmsg", error->message);
   BSON_APPEND_INT32 (reply, "code", (int32_t) code);
   BSON_APPEND_UTF8 (reply, "codeName", dj_error_code_name (code, buf));
}

char *
dj_error_value_json (const bson_value_t *v)
{
   bson_t one = BSON_INITIALIZER;
   bson_append_value (&one, "v", 1, v);
   char *json = bson_as_relaxed_extended_json (&one, NULL);
   bson_destroy (&one);
   /* the value's own JSON, out of { "v" : ... } */
   size_t len = strlen (json), pre = strlen ("{ \"v\" : ");
   char *out = len > pre + 2 ? bson_strndup (json + pre, len - pre - 2) : bson_strdup (json);
   bson_free (json);
   return out;
}
