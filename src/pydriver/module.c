/*
 * module.c -- djongo._driver: the C half of the DB-API driver.
 *
 * One type, Connection(host, db): SQL in, rows out. It runs each statement
 * through the plan cache (SQL text -> plan, shared by every connection of
 * the process), the executor (src/exec) and a transport (src/transport:
 * embedded engine or libmongoc), and turns the result documents into tuples
 * here, in SELECT order, without intermediate dicts. Cursors, paramstyle and
 * the PEP 249 surface are Python (djongo/driver.py), as in mysqlclient.
 *
 * Locking rule: a connection is used by one thread at a time. A second
 * thread entering while the first is inside execute() gets ProgrammingError
 * at once (a non-blocking per-connection lock), never a corrupted session.
 * The GIL is released around compiling and running a statement: that code
 * touches no Python object (parameters are converted to BSON before, rows
 * to Python after).
 *
 * Ownership: a Connection owns its transport and executor; the plan cache
 * is process-wide (module state, created at import, its own mutex).
 *
 * Types, Python -> BSON (parameters): None, bool, int (int32 when it fits,
 * else int64; beyond int64: DataError), float, str, bytes/bytearray/
 * memoryview (binary), decimal.Decimal (Decimal128, exact to 34 digits),
 * datetime.datetime (UTC: an aware value is converted, a naive one is taken
 * as UTC; a BSON date, or -- a statement's parameter -- with microseconds
 * below the millisecond an exact datetime, which the compiler stores as the
 * date and a remainder: dj_compile.h; in a command's document, the BSON
 * date floored to the millisecond), datetime.date (midnight UTC), datetime.time
 * (ISO text, "HH:MM:SS[.ffffff]", which sorts as time does), uuid.UUID
 * (binary subtype 4), bson.ObjectId (ObjectId), dict (document), list and
 * tuple (array), djongo._values.Undefined (BSON undefined: a JSON column's
 * JSON null, kept apart from SQL NULL), djongo._values.Encrypted (binary
 * subtype 6: an encrypted value). BSON -> Python: the reverse, dates
 * as naive UTC datetimes, undefined as None.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <datetime.h>
#include <pythread.h>

#include "dj_bson_array.h"
#include "dj_bson_walk.h"
#include "dj_buf.h"
#include "dj_compile.h"
#include "dj_date.h"
#include "pydriver-private.h"

/* module state: set once at import (the GIL guards it), then read-only */
static dj_plan_cache_t *g_plans; /* owned by the module, never freed (lives as long as the process) */
PyObject *Exc_Error, *Exc_DataError, *Exc_OperationalError, *Exc_IntegrityError, *Exc_ProgrammingError,
   *Exc_NotSupportedError, *Exc_InternalError, *Exc_InterfaceError;
PyObject *Decimal_type, *UUID_type, *ObjectId_type, *Int64_type, *Undefined_type, *Encrypted_type;

/* ---- errors: mapped once ---- */

/* Raises the PEP 249 exception for a C error, its error_labels (a tuple of
 * str) MongoDB's error labels from @p labels (a BSON array of strings,
 * borrowed; NULL: none). Returns NULL. */
static PyObject *
map_error_labels (const bson_error_t *e, const bson_t *labels)
{
   PyObject *cls = Exc_OperationalError;
   if (e->domain == DJ_DOMAIN_SQL) {
      cls = e->code == DJ_SQL_UNSUPPORTED ? Exc_NotSupportedError
            : e->code == DJ_SQL_VALUE     ? Exc_DataError
            : e->code == DJ_SQL_NO_COLUMN ? Exc_OperationalError
                                          : Exc_ProgrammingError;
   } else if (e->domain == DJ_DOMAIN_SERVER) {
      switch (e->code) {
      case DJ_DuplicateKey: case 11001: case DJ_DocumentValidationFailure:
         cls = Exc_IntegrityError;
         break;
      case DJ_NamespaceNotFound: case DJ_NamespaceExists: case DJ_IndexNotFound: case DJ_InvalidNamespace:
      case DJ_FailedToParse: case DJ_BadValue: case DJ_TypeMismatch:
         cls = Exc_ProgrammingError;
         break;
      case DJ_Overflow:
      case 16755: case 13026: case 13027: /* a geometry a geo index cannot take (storage/geo_index.c) */
         cls = Exc_DataError;
         break;
      case DJ_InternalError:
         cls = Exc_InternalError;
         break;
      default:
         cls = Exc_OperationalError;
      }
   }
   PyObject *args = Py_BuildValue ("(sII)", e->message, e->code, e->domain);
   PyObject *exc = args ? PyObject_CallObject (cls, args) : NULL;
   Py_XDECREF (args);
   bson_iter_t it;
   if (exc && labels && bson_iter_init (&it, labels)) {
      PyObject *list = PyList_New (0);
      while (list && bson_iter_next (&it)) {
         PyObject *one = BSON_ITER_HOLDS_UTF8 (&it) ? PyUnicode_FromString (bson_iter_utf8 (&it, NULL)) : NULL;
         if (one && PyList_Append (list, one) < 0) {
            Py_CLEAR (list);
         }
         Py_XDECREF (one);
      }
      PyObject *tuple = list ? PyList_AsTuple (list) : NULL;
      Py_XDECREF (list);
      if (!tuple || PyObject_SetAttrString (exc, "error_labels", tuple) < 0) {
         Py_CLEAR (exc);
      }
      Py_XDECREF (tuple);
   }
   if (exc) {
      PyErr_SetObject (cls, exc);
      Py_DECREF (exc);
   }
   return NULL;
}

/* Raises the PEP 249 exception for a C error (no error labels). Returns NULL. */
PyObject *
map_error (const bson_error_t *e)
{
   return map_error_labels (e, NULL);
}

/* map_error() for what a connection ran: with the error labels its
 * transport kept, unless the error is the SQL compiler's (the transport
 * never saw that statement). */
#define map_conn_error(self, e) \
   map_error_labels ((e), (e)->domain != DJ_DOMAIN_SQL ? dj_transport_error_labels ((self)->transport) : NULL)

/* ---- Python -> BSON ---- */


static bool append_datetime (bson_t *b, const char *key, PyObject *v, bool exact);

/* A sequence as a BSON array. exact_dt: its datetimes with microseconds
 * below the millisecond become exact datetimes (dj_compile.h) -- only SQL
 * parameters, which the compiler turns into a date and its remainder; a
 * document sent as it is (a command, a nested value) holds BSON dates. */
bool
append_seq (bson_t *b, const char *key, PyObject *seq, int depth, bool exact_dt)
{
   bson_t child;
   PyObject *fast = PySequence_Fast (seq, "expected a sequence");
   if (!fast) {
      return false;
   }
   bson_append_array_begin (b, key, -1, &child);
   Py_ssize_t n = PySequence_Fast_GET_SIZE (fast);
   bool ok = true;
   for (Py_ssize_t i = 0; ok && i < n; i++) {
      char k[16];
      dj_bson_array_key ((uint32_t) i, k);
      PyObject *item = PySequence_Fast_GET_ITEM (fast, i);
      ok = exact_dt ? append_param (&child, k, item) : append_py (&child, k, item, depth + 1);
   }
   bson_append_array_end (b, &child);
   Py_DECREF (fast);
   return ok;
}


static bool
append_datetime (bson_t *b, const char *key, PyObject *v, bool exact)
{
   PyObject *utc = v;
   Py_INCREF (utc);
   PyObject *tz = PyObject_GetAttrString (v, "tzinfo");
   if (!tz) {
      Py_DECREF (utc);
      return false;
   }
   if (tz != Py_None) {
      /* aware: to UTC, then naive */
      PyObject *r = PyObject_CallMethod (v, "astimezone", "O", PyDateTime_TimeZone_UTC);
      Py_DECREF (utc);
      utc = r;
   }
   Py_DECREF (tz);
   if (!utc) {
      return false;
   }
   int64_t days = dj_days_from_civil (PyDateTime_GET_YEAR (utc), PyDateTime_GET_MONTH (utc), PyDateTime_GET_DAY (utc));
   int64_t us = (days * 86400 + (int64_t) PyDateTime_DATE_GET_HOUR (utc) * 3600 +
                 (int64_t) PyDateTime_DATE_GET_MINUTE (utc) * 60 + (int64_t) PyDateTime_DATE_GET_SECOND (utc)) *
                   1000000 +
                PyDateTime_DATE_GET_MICROSECOND (utc);
   Py_DECREF (utc);
   /* exact: a BSON date, or an exact datetime when there are microseconds
    * below the millisecond (dj_compile.h: the compiler stores and compares
    * those); else the BSON date, floored to the millisecond as stored */
   if (exact) {
      return dj_exact_dt_append (b, key, us);
   }
   int64_t ms;
   int32_t rem;
   dj_exact_dt_split (us, &ms, &rem);
   return bson_append_date_time (b, key, -1, ms);
}

bool
append_param (bson_t *b, const char *key, PyObject *v)
{
   return PyDateTime_Check (v) ? append_datetime (b, key, v, true) : append_py (b, key, v, 1);
}

/* A Python int as a 64-bit one; false with DataError past that range. */
bool
py_int64 (PyObject *v, long long *x)
{
   int overflow;
   *x = PyLong_AsLongLongAndOverflow (v, &overflow);
   if (overflow) {
      PyErr_SetString (Exc_DataError, "integer out of the 64-bit range MongoDB stores");
      return false;
   }
   return !(*x == -1 && PyErr_Occurred ());
}

bool
append_py (bson_t *b, const char *key, PyObject *v, int depth)
{
   if (depth > 100) {
      PyErr_SetString (Exc_DataError, "parameter nested deeper than 100 levels");
      return false;
   }
   if (v == Py_None) {
      return bson_append_null (b, key, -1);
   }
   if (PyBool_Check (v)) {
      return bson_append_bool (b, key, -1, v == Py_True);
   }
   if (PyLong_Check (v)) {
      long long x;
      if (!py_int64 (v, &x)) {
         return false;
      }
      /* bson.Int64 (pymongo's) asks for a 64-bit integer whatever its size
       * (a plain int, most parameters, is not one: no isinstance() asked) */
      bool wide = !PyLong_CheckExact (v) && Int64_type && PyObject_IsInstance (v, Int64_type) == 1;
      return !wide && x >= INT32_MIN && x <= INT32_MAX ? bson_append_int32 (b, key, -1, (int32_t) x)
                                                       : bson_append_int64 (b, key, -1, (int64_t) x);
   }
   if (PyFloat_Check (v)) {
      return bson_append_double (b, key, -1, PyFloat_AS_DOUBLE (v));
   }
   if (PyUnicode_Check (v)) {
      Py_ssize_t n;
      const char *s = PyUnicode_AsUTF8AndSize (v, &n);
      if (!s) {
         return false; /* lone surrogates: not UTF-8 */
      }
      return bson_append_utf8 (b, key, -1, s, (int) n);
   }
   if (PyBytes_Check (v) || PyByteArray_Check (v) || PyMemoryView_Check (v)) {
      /* djongo._values.Encrypted, a bytes subclass: binary subtype 6 */
      bson_subtype_t st = PyObject_IsInstance (v, Encrypted_type) == 1 ? BSON_SUBTYPE_ENCRYPTED : BSON_SUBTYPE_BINARY;
      Py_buffer buf;
      if (PyObject_GetBuffer (v, &buf, PyBUF_SIMPLE) < 0) {
         return false;
      }
      bool ok = buf.len <= INT32_MAX && bson_append_binary (b, key, -1, st, buf.buf, (uint32_t) buf.len);
      PyBuffer_Release (&buf);
      if (!ok) {
         PyErr_SetString (Exc_DataError, "binary value too large");
      }
      return ok;
   }
   if (PyDateTime_Check (v)) {
      return append_datetime (b, key, v, false);
   }
   if (PyDate_Check (v)) {
      int64_t days = dj_days_from_civil (PyDateTime_GET_YEAR (v), PyDateTime_GET_MONTH (v), PyDateTime_GET_DAY (v));
      return bson_append_date_time (b, key, -1, days * 86400000);
   }
   if (PyTime_Check (v)) {
      PyObject *s = PyObject_CallMethod (v, "isoformat", NULL);
      if (!s) {
         return false;
      }
      bool ok = append_py (b, key, s, depth + 1);
      Py_DECREF (s);
      return ok;
   }
   if (PyObject_IsInstance (v, Undefined_type) == 1) {
      return bson_append_undefined (b, key, -1);
   }
   if (PyObject_IsInstance (v, Decimal_type) == 1) {
      PyObject *s = PyObject_Str (v);
      bson_decimal128_t d;
      bool ok = s && bson_decimal128_from_string (PyUnicode_AsUTF8 (s), &d);
      Py_XDECREF (s);
      if (!ok) {
         if (!PyErr_Occurred ()) {
            PyErr_SetString (Exc_DataError, "Decimal beyond what Decimal128 holds");
         }
         return false;
      }
      return bson_append_decimal128 (b, key, -1, &d);
   }
   if (PyObject_IsInstance (v, UUID_type) == 1) {
      PyObject *raw = PyObject_GetAttrString (v, "bytes");
      bool ok = raw && PyBytes_Check (raw) && PyBytes_GET_SIZE (raw) == 16 &&
                bson_append_binary (b, key, -1, BSON_SUBTYPE_UUID, (const uint8_t *) PyBytes_AS_STRING (raw), 16);
      Py_XDECREF (raw);
      return ok;
   }
   if (ObjectId_type && PyObject_IsInstance (v, ObjectId_type) == 1) {
      PyObject *raw = PyObject_GetAttrString (v, "binary");
      bool ok = raw && PyBytes_Check (raw) && PyBytes_GET_SIZE (raw) == 12;
      if (ok) {
         bson_oid_t oid;
         bson_oid_init_from_data (&oid, (const uint8_t *) PyBytes_AS_STRING (raw));
         ok = bson_append_oid (b, key, -1, &oid);
      }
      Py_XDECREF (raw);
      return ok;
   }
   if (PyDict_Check (v)) {
      bson_t child;
      PyObject *k, *val;
      Py_ssize_t pos = 0;
      bool ok = true;
      bson_append_document_begin (b, key, -1, &child);
      while (ok && PyDict_Next (v, &pos, &k, &val)) {
         Py_ssize_t kn = 0;
         const char *ks = PyUnicode_Check (k) ? PyUnicode_AsUTF8AndSize (k, &kn) : NULL;
         if (!ks) {
            if (!PyErr_Occurred ()) {
               PyErr_SetString (Exc_DataError, "document keys must be strings");
            }
            ok = false;
            break;
         }
         if (strlen (ks) != (size_t) kn) {
            /* BSON field names are C strings: "role\0junk" would be stored as "role" */
            PyErr_Format (Exc_DataError, "document key %R contains a NUL character, which BSON field names cannot hold", k);
            ok = false;
            break;
         }
         ok = append_py (&child, ks, val, depth + 1);
      }
      bson_append_document_end (b, &child);
      return ok;
   }
   if (PyList_Check (v) || PyTuple_Check (v)) {
      return append_seq (b, key, v, depth, false);
   }
   PyErr_Format (Exc_ProgrammingError, "cannot bind a parameter of type %s", Py_TYPE (v)->tp_name);
   return false;
}

/* ---- BSON -> Python ---- */


static PyObject *value_to_py (const bson_value_t *bv, int depth);

/* A document's or array's bytes as a dict or list. */
static PyObject *
doc_bytes_to_py (const uint8_t *data, uint32_t len, bool array, int depth)
{
   dj_bwalk_t w;
   if (!dj_bwalk_init (&w, data, len)) {
      return PyErr_Format (Exc_InternalError, "malformed document in a result");
   }
   PyObject *out = array ? PyList_New (0) : PyDict_New ();
   while (out && dj_bwalk_next (&w)) {
      bson_value_t bv;
      dj_bwalk_value (&w, &bv);
      PyObject *v = value_to_py (&bv, depth + 1);
      int rc = -1;
      if (v) {
         rc = array ? PyList_Append (out, v) : PyDict_SetItemString (out, w.key, v);
         Py_DECREF (v);
      }
      if (rc < 0) {
         Py_CLEAR (out);
      }
   }
   return out;
}

static PyObject *
doc_to_py (const bson_iter_t *it, bool array, int depth)
{
   uint32_t len = 0;
   const uint8_t *data = NULL;
   if (array) {
      bson_iter_array (it, &len, &data);
   } else {
      bson_iter_document (it, &len, &data);
   }
   if (!data) {
      return PyErr_Format (Exc_InternalError, "malformed document in a result");
   }
   return doc_bytes_to_py (data, len, array, depth);
}


/* A naive UTC datetime of @p ms since the epoch and @p us more (0..999). */
static PyObject *
datetime_from_ms (int64_t ms, int32_t us)
{
   int64_t days = ms >= 0 ? ms / 86400000 : -((-ms + 86399999) / 86400000);
   int64_t rem = ms - days * 86400000, y;
   unsigned mo, d;
   dj_civil_from_days (days, &y, &mo, &d);
   if (y < 1 || y > 9999) {
      return PyErr_Format (Exc_DataError, "date out of Python's range (year %lld)", (long long) y);
   }
   return PyDateTime_FromDateAndTime ((int) y, (int) mo, (int) d, (int) (rem / 3600000), (int) (rem / 60000 % 60),
                                      (int) (rem / 1000 % 60), (int) (rem % 1000) * 1000 + us);
}

static PyObject *
value_to_py (const bson_value_t *bv, int depth)
{
   if (depth > 200) {
      return PyErr_Format (Exc_InternalError, "result nested too deeply");
   }
   switch (bv->value_type) {
   case BSON_TYPE_INT32: return PyLong_FromLong (bv->value.v_int32);
   case BSON_TYPE_INT64: return PyLong_FromLongLong (bv->value.v_int64);
   case BSON_TYPE_DOUBLE: return PyFloat_FromDouble (bv->value.v_double);
   case BSON_TYPE_BOOL: return PyBool_FromLong (bv->value.v_bool);
   case BSON_TYPE_NULL:
   case BSON_TYPE_UNDEFINED: Py_RETURN_NONE;
   case BSON_TYPE_UTF8: return PyUnicode_DecodeUTF8 (bv->value.v_utf8.str, bv->value.v_utf8.len, "strict");
   case BSON_TYPE_DATE_TIME:
      return datetime_from_ms (bv->value.v_datetime, 0);
   case BSON_TYPE_DECIMAL128: {
      char s[BSON_DECIMAL128_STRING];
      bson_decimal128_to_string (&bv->value.v_decimal128, s);
      return PyObject_CallFunction (Decimal_type, "s", s);
   }
   case BSON_TYPE_OID: {
      const bson_oid_t *oid = &bv->value.v_oid;
      if (ObjectId_type) {
         return PyObject_CallFunction (ObjectId_type, "y#", (const char *) oid->bytes, (Py_ssize_t) 12);
      }
      char hex[25];
      bson_oid_to_string (oid, hex);
      return PyUnicode_FromString (hex);
   }
   case BSON_TYPE_BINARY: {
      bson_subtype_t st = bv->value.v_binary.subtype;
      uint32_t n = bv->value.v_binary.data_len;
      const uint8_t *data = bv->value.v_binary.data;
      int64_t us;
      if (dj_exact_dt_value (bv, &us)) {
         /* an exact datetime (dj_compile.h): the date, then its microseconds */
         int64_t ms;
         int32_t rem;
         dj_exact_dt_split (us, &ms, &rem);
         return datetime_from_ms (ms, rem);
      }
      if (st == BSON_SUBTYPE_UUID && n == 16) {
         PyObject *kw = Py_BuildValue ("{s:y#}", "bytes", (const char *) data, (Py_ssize_t) 16);
         PyObject *empty = PyTuple_New (0), *u = NULL;
         if (kw && empty) {
            u = PyObject_Call (UUID_type, empty, kw);
         }
         Py_XDECREF (kw);
         Py_XDECREF (empty);
         return u;
      }
      if (st == BSON_SUBTYPE_ENCRYPTED) {
         return PyObject_CallFunction (Encrypted_type, "y#", (const char *) data, (Py_ssize_t) n);
      }
      return PyBytes_FromStringAndSize ((const char *) data, n);
   }
   case BSON_TYPE_DOCUMENT:
   case BSON_TYPE_ARRAY:
      return doc_bytes_to_py (bv->value.v_doc.data, bv->value.v_doc.data_len, bv->value_type == BSON_TYPE_ARRAY,
                              depth);
   default: {
      /* other BSON types (regex, timestamp, ...) as their Extended JSON text */
      bson_t one = BSON_INITIALIZER;
      bson_append_value (&one, "v", 1, bv);
      char *s = bson_as_relaxed_extended_json (&one, NULL);
      PyObject *r = PyUnicode_FromString (s ? s : "");
      bson_free (s);
      bson_destroy (&one);
      return r;
   }
   }
}

PyObject *
to_py (const bson_iter_t *it, int depth)
{
   return value_to_py (bson_iter_value ((bson_iter_t *) it), depth);
}

/* A server's connection options (a dict, or None) as the BSON document
 * dj_transport_open_with() reads: *out initialised (empty for None); false
 * with a Python error set for anything but a dict of str keys. */
static bool
options_to_bson (PyObject *options, bson_t *out)
{
   bson_init (out);
   if (!options || options == Py_None) {
      return true;
   }
   if (!PyDict_Check (options)) {
      PyErr_SetString (Exc_InterfaceError, "options must be a dict of MongoDB connection options");
      return false;
   }
   PyObject *key, *value;
   Py_ssize_t pos = 0;
   while (PyDict_Next (options, &pos, &key, &value)) {
      const char *k = PyUnicode_Check (key) ? PyUnicode_AsUTF8 (key) : NULL;
      if (!k) {
         PyErr_Clear ();
         PyErr_SetString (Exc_InterfaceError, "connection option names must be strings");
         return false;
      }
      if (!append_py (out, k, value, 0)) {
         return false;
      }
   }
   return true;
}

/* ---- Connection ---- */

/* ConnectionObject: pydriver-private.h */

static int
Connection_init (ConnectionObject *self, PyObject *args, PyObject *kwds)
{
   static char *kwlist[] = {"host", "db", "autocommit", "tables", "ttl_monitor_secs", "options", NULL};
   const char *host, *db;
   int autocommit = 0, tables = DJ_TABLES_PLAIN, ttl_monitor_secs = 0;
   PyObject *options = NULL;
   bson_error_t error;
   if (!PyArg_ParseTupleAndKeywords (args, kwds, "ss|piiO", kwlist, &host, &db, &autocommit, &tables, &ttl_monitor_secs,
                                     &options)) {
      return -1;
   }
   if (tables < DJ_TABLES_PLAIN || tables > DJ_TABLES_STRICT) {
      PyErr_SetString (PyExc_ValueError, "tables must be 0 (plain), 1 (implicit) or 2 (strict)");
      return -1;
   }
   self->autocommit = autocommit;
   if (self->exec) {
      PyErr_SetString (Exc_InterfaceError, "connection already initialised");
      return -1;
   }
   if (!*db || strchr (db, '.') || strchr (db, '$') || strchr (db, '/') || strchr (db, ' ')) {
      PyErr_Format (Exc_ProgrammingError, "invalid database name \"%s\"", db);
      return -1;
   }
   bson_t opts;
   if (!options_to_bson (options, &opts)) {
      bson_destroy (&opts);
      return -1;
   }
   dj_transport_t *t;
   Py_BEGIN_ALLOW_THREADS
   t = dj_transport_open_with (host, &opts, 0, ttl_monitor_secs, &error);
   Py_END_ALLOW_THREADS
   bson_destroy (&opts);
   if (!t) {
      map_error (&error);
      return -1;
   }
   self->transport = t;
   self->exec = dj_exec_new (dj_transport_run_compiled, dj_transport_txn, t, db);
   dj_exec_set_outside_run (self->exec, dj_transport_run_outside);
   dj_exec_set_tables_mode (self->exec, (dj_tables_mode_t) tables);
   dj_exec_set_engine_ops (self->exec, !strcmp (dj_transport_kind (t), "embedded"));
   dj_exec_set_row_docs (self->exec, true); /* the tuples are made from the documents (Connection_execute) */
   dj_bound_cache_destroy (self->bound);
   self->bound = dj_bound_cache_new ();
   self->lock = PyThread_allocate_lock ();
   if (!self->lock) {
      PyErr_NoMemory ();
      return -1;
   }
   return 0;
}

static void
Connection_close_internal (ConnectionObject *self)
{
   dj_crypt_destroy (self->crypt); /* before the transport it reads keys through */
   self->crypt = NULL;
   dj_exec_destroy (self->exec);
   self->exec = NULL;
   dj_bound_cache_destroy (self->bound);
   self->bound = NULL;
   dj_transport_t *t = self->transport;
   self->transport = NULL;
   /* without the GIL: the last handle on a data directory joins its TTL
    * monitor, whose pass in progress may wait for the write lock; closing
    * a server's talks to it (abortTransaction, endSessions), which a
    * server in this process's Python threads (a test's simulated one)
    * must be able to answer */
   Py_BEGIN_ALLOW_THREADS
   dj_transport_close (t);
   Py_END_ALLOW_THREADS
}

static void
Connection_dealloc (ConnectionObject *self)
{
   Connection_close_internal (self);
   Py_CLEAR (self->last_commands);
   Py_CLEAR (self->descriptions);
   if (self->lock) {
      PyThread_free_lock (self->lock);
   }
   Py_TYPE (self)->tp_free ((PyObject *) self);
}

static PyObject *
Connection_close (ConnectionObject *self, PyObject *Py_UNUSED (ignored))
{
   if (self->lock && !PyThread_acquire_lock (self->lock, NOWAIT_LOCK)) {
      PyErr_SetString (Exc_ProgrammingError, "this connection is in use from another thread");
      return NULL;
   }
   Connection_close_internal (self);
   if (self->lock) {
      PyThread_release_lock (self->lock);
   }
   Py_RETURN_NONE;
}

/* A statement's way in: the connection must be open and not running
 * something for another thread (then the caller holds self->lock and
 * releases it when done). Raises and returns false otherwise. */
bool
conn_enter (ConnectionObject *self)
{
   if (!self->exec) {
      PyErr_SetString (Exc_InterfaceError, "the connection is closed");
      return false;
   }
   if (!PyThread_acquire_lock (self->lock, NOWAIT_LOCK)) {
      PyErr_SetString (Exc_ProgrammingError, "this connection is in use from another thread");
      return false;
   }
   return true;
}

/* A method's arguments (a PyArg_ParseTuple format), then the connection
 * (conn_enter): how execute() and command() begin. (insertmany() cannot:
 * it reads the caller's sequence, which may run Python code that uses this
 * connection, before it takes the connection.) */
bool
conn_enter_args (ConnectionObject *self, PyObject *args, const char *format, ...)
{
   va_list ap;
   va_start (ap, format);
   int parsed = PyArg_VaParse (args, format, ap);
   va_end (ap);
   return parsed && conn_enter (self);
}

/* A statement's MongoDB commands as a tuple of relaxed Extended JSON
 * strings (new reference), or NULL with a Python error. */
static PyObject *
commands_json (const dj_mql_t *m)
{
   PyObject *cmds = PyTuple_New (m->ncommands);
   for (int i = 0; cmds && i < m->ncommands; i++) {
      char *json = bson_as_relaxed_extended_json (m->commands[i], NULL);
      PyObject *str = json ? PyUnicode_FromString (json) : NULL;
      bson_free (json);
      if (!str) {
         Py_CLEAR (cmds);
         break;
      }
      PyTuple_SET_ITEM (cmds, i, str);
   }
   return cmds;
}

/* With autocommit off, the first statement outside a transaction begins
 * PEP 249's implicit one, whatever it is -- a read too, so that every read
 * of the transaction sees its snapshot and its own writes (a read before
 * the first write that ran outside would let two read-modify-writes lose
 * an update). A statement that writes (a write, DDL, a SAVEPOINT -- which
 * must nest in that transaction: its RELEASE must not end it -- or a
 * SELECT ... FOR UPDATE) begins it holding the write lock; a plain read
 * begins it deferred (dj_transport.h: a snapshot until its first write).
 * Transaction statements other than SAVEPOINT begin nothing. */
static bool
begin_implicit (ConnectionObject *self, bool writes, bson_error_t *error)
{
   if (self->autocommit || dj_exec_txn (self->exec, DJ_TXN_ACTIVE, NULL, NULL)) {
      return true;
   }
   return dj_exec_txn (self->exec, writes ? DJ_TXN_BEGIN : DJ_TXN_BEGIN_DEFERRED, NULL, error);
}

/* Runs a bound statement (without the GIL), in PEP 249's implicit
 * transaction when autocommit is off (begin_implicit). */
static bool
run_statement (ConnectionObject *self, dj_mql_t *m, dj_result_t *r, bson_error_t *error)
{
   if (m->kind != DJ_MQL_TXN || m->stmt == DJ_STMT_SAVEPOINT) {
      bool writes = m->kind != DJ_MQL_ROWS || m->for_update;
      if (!begin_implicit (self, writes, error)) {
         return false;
      }
   }
   if (!self->refs_asked) {
      /* whether INSERTs check their FOREIGN KEYs in the insert itself: asked
       * at the first statement (on a server, the primary's hello), which
       * selects the server anyway */
      dj_exec_set_insert_references (self->exec, dj_transport_djongo_engine (self->transport));
      dj_exec_set_deferred_references (self->exec, dj_transport_djongo_has (self->transport, "deferredReferences"));
      dj_exec_set_djongo_max (self->exec, dj_transport_djongo_has (self->transport, "djongoMax"));
      self->refs_asked = true;
   }
   return dj_exec_run (self->exec, m, r, error);
}


/* translate(sql, params, db) -> tuple of the MongoDB commands (relaxed
 * Extended JSON) the statement compiles to, without running it (sqlmigrate,
 * djongo-sql translate). Auto-increment ids and fed _ids are filled in only
 * when a statement runs. */
static PyObject *
driver_translate (PyObject *Py_UNUSED (module), PyObject *args)
{
   const char *sql, *db;
   Py_ssize_t sql_len;
   PyObject *params, *result = NULL;
   if (!PyArg_ParseTuple (args, "s#Os", &sql, &sql_len, &params, &db)) {
      return NULL;
   }
   bson_t holder = BSON_INITIALIZER;
   bson_value_t *values = NULL;
   int n = 0;
   size_t unescaped_len = 0;
   char *unescaped = NULL;
   if (bind_params (params, &holder, &values, &n)) {
      bson_error_t error;
      dj_mql_t m;
      unescaped = params != Py_None ? dj_sql_unescape_percents (sql, (size_t) sql_len, &unescaped_len) : NULL;
      dj_plan_t *plan = dj_plan_cache_get (g_plans, unescaped ? unescaped : sql,
                                           unescaped ? unescaped_len : (size_t) sql_len, &error);
      bool ok = plan && dj_plan_bind (plan, db, values, n, &m, &error);
      dj_plan_release (plan);
      if (!ok) {
         map_error (&error);
      } else {
         result = commands_json (&m);
         dj_mql_cleanup (&m);
      }
   }
   bson_free (unescaped);
   bson_free (values);
   bson_destroy (&holder);
   return result;
}

/* check_server_options(host, options) -> None, or what is wrong with a
 * server HOST's connection options (libmongoc's URI rules), without
 * connecting: the settings check (djongo/validation.py) says it. */
static PyObject *
driver_check_server_options (PyObject *Py_UNUSED (module), PyObject *args)
{
   const char *host;
   PyObject *options;
   if (!PyArg_ParseTuple (args, "sO", &host, &options)) {
      return NULL;
   }
   bson_t opts;
   if (!options_to_bson (options, &opts)) {
      bson_destroy (&opts);
      return NULL;
   }
   bson_error_t error;
   bool ok = dj_transport_check (host, &opts, &error);
   bson_destroy (&opts);
   if (ok) {
      Py_RETURN_NONE;
   }
   return PyUnicode_FromString (error.message);
}

static PyMethodDef driver_functions[] = {
   {"translate", driver_translate, METH_VARARGS,
    "translate(sql, params, db) -> the MongoDB commands (Extended JSON) the statement compiles to"},
   {"check_server_options", driver_check_server_options, METH_VARARGS,
    "check_server_options(host, options) -> None, or what is wrong with a server's connection options"},
   {NULL, NULL, 0, NULL}};

/* insertmany(sql, seq_of_params) -> (rowcount, lastrowid) for an INSERT
 * of one VALUES row without RETURNING: the rows are bound one by one and
 * sent as multi-row inserts (up to DJ_INSERTMANY_ROWS rows or 8 MiB each),
 * so ids are taken once per batch and each batch is one atomic unit.
 * Returns None, having run nothing, when the statement is not such an
 * INSERT (the caller then runs it row by row). */
#define DJ_INSERTMANY_ROWS 10000
#define DJ_INSERTMANY_BYTES (8 * 1024 * 1024)

static PyObject *
Connection_insertmany (ConnectionObject *self, PyObject *args)
{
   const char *sql;
   Py_ssize_t sql_len;
   PyObject *seq;
   if (!PyArg_ParseTuple (args, "s#O", &sql, &sql_len, &seq)) {
      return NULL;
   }
   PyObject *fast = PySequence_Fast (seq, "executemany() takes a sequence of parameter sequences");
   if (!fast) {
      return NULL;
   }
   if (!conn_enter (self)) {
      Py_DECREF (fast);
      return NULL;
   }
   PyObject *result = NULL;
   bson_error_t error;
   size_t unescaped_len = 0;
   char *unescaped = dj_sql_unescape_percents (sql, (size_t) sql_len, &unescaped_len);
   dj_plan_t *plan = dj_plan_cache_get (g_plans, unescaped ? unescaped : sql,
                                        unescaped ? unescaped_len : (size_t) sql_len, &error);
   Py_ssize_t nrows = PySequence_Fast_GET_SIZE (fast), i = 0;
   int64_t rowcount = 0, lastrowid = 0;
   bool has_last = false, ok = plan != NULL;
   if (!ok) {
      map_error (&error);
   }
   while (ok && i < nrows) {
      dj_mql_t first;
      bool have_first = false;
      bson_t docs = BSON_INITIALIZER;
      uint32_t k = 0;
      for (; ok && i < nrows && k < DJ_INSERTMANY_ROWS && docs.len < DJ_INSERTMANY_BYTES; i++) {
         bson_t holder = BSON_INITIALIZER;
         bson_value_t *values = NULL;
         int n = 0;
         dj_mql_t m;
         ok = bind_params (PySequence_Fast_GET_ITEM (fast, i), &holder, &values, &n);
         dj_catalog_t catalog = dj_exec_catalog (self->exec);
         if (ok && !(ok = dj_plan_bind_catalog (plan, dj_exec_db (self->exec), &catalog, values, n, &m, &error))) {
            map_error (&error);
         }
         bson_free (values);
         bson_destroy (&holder);
         if (!ok) {
            break;
         }
         if (!have_first && rowcount == 0 && k == 0 &&
             !(m.kind == DJ_MQL_WRITE && m.stmt == DJ_STMT_INSERT && m.ncommands == 1 && m.ncolumns == 0)) {
            dj_mql_cleanup (&m); /* not an INSERT we can batch: the caller loops */
            bson_destroy (&docs);
            Py_INCREF (Py_None);
            result = Py_None;
            goto done;
         }
         bson_iter_t it, d;
         if (bson_iter_init_find (&it, m.commands[0], "documents") && bson_iter_recurse (&it, &d)) {
            while (bson_iter_next (&d)) {
               char kb[16];
               const char *key;
               bson_uint32_to_string (k++, &key, kb, sizeof kb);
               bson_append_value (&docs, key, -1, bson_iter_value (&d));
            }
         }
         if (!have_first) {
            first = m; /* keeps its plan-derived fields; its documents are replaced below */
            have_first = true;
         } else {
            dj_mql_cleanup (&m);
         }
      }
      if (ok && have_first) {
         bson_t *cmd = bson_new ();
         bson_iter_t it;
         bson_iter_init (&it, first.commands[0]);
         while (bson_iter_next (&it)) {
            if (BSON_ITER_IS_KEY (&it, "documents")) {
               bson_append_array (cmd, "documents", -1, &docs);
            } else {
               bson_append_iter (cmd, NULL, 0, &it);
            }
         }
         bson_destroy (first.commands[0]);
         first.commands[0] = cmd;
         dj_result_t r;
         Py_BEGIN_ALLOW_THREADS
         ok = run_statement (self, &first, &r, &error);
         Py_END_ALLOW_THREADS
         if (ok) {
            rowcount += r.rowcount > 0 ? r.rowcount : 0;
            if (r.has_lastrowid) {
               lastrowid = r.lastrowid;
               has_last = true;
            }
            dj_result_cleanup (&r);
         } else {
            map_conn_error (self, &error);
         }
      }
      if (have_first) {
         dj_mql_cleanup (&first);
      }
      bson_destroy (&docs);
   }
   if (ok) {
      result = has_last ? Py_BuildValue ("(LL)", (long long) rowcount, (long long) lastrowid)
                        : Py_BuildValue ("(LO)", (long long) rowcount, Py_None);
   }
done:
   dj_plan_release (plan);
   bson_free (unescaped);
   Py_DECREF (fast);
   PyThread_release_lock (self->lock);
   return result;
}

/* A str of the n UTF-8 bytes at s (new reference; NULL with a Python
 * error). Text cells are ASCII as a rule (names, titles, keys): those are
 * copied into a new ASCII str as they are, without the decoder's layers
 * (PyUnicode_DecodeUTF8 gives the same str, with more calls per cell);
 * anything else is decoded, strictly. */
static PyObject *
text_to_py (const char *s, Py_ssize_t n)
{
   /* the high bits of every byte, read a word at a time: for the last
    * bytes of a text, and for a short one, words that overlap */
   uint64_t high = 0, w;
   uint32_t h4 = 0, t4 = 0;
   if (n >= 8) {
      for (Py_ssize_t i = 0; i + 8 <= n; i += 8) {
         memcpy (&w, s + i, 8);
         high |= w;
      }
      memcpy (&w, s + n - 8, 8);
      high |= w;
   } else if (n >= 4) {
      memcpy (&h4, s, 4);
      memcpy (&t4, s + n - 4, 4);
      high = h4 | t4;
   } else {
      for (Py_ssize_t i = 0; i < n; i++) {
         high |= (unsigned char) s[i];
      }
   }
   if (n < 2 || (high & UINT64_C (0x8080808080808080))) {
      /* (one character: the decoder hands out Python's shared one) */
      return PyUnicode_DecodeUTF8 (s, n, "strict");
   }
   PyObject *u = PyUnicode_New (n, 127);
   if (!u) {
      return NULL;
   }
   dj_copy_short (PyUnicode_1BYTE_DATA (u), (const uint8_t *) s, (size_t) n); /* (short, as a rule) */
   return u;
}

/* A cell's value (the `len` bytes at val, of BSON `type`) as a Python
 * object (new reference; NULL with a Python error). The cells of most rows
 * -- keys, numbers, text, NULL -- are made straight from their bytes (the
 * walk checked their sizes), and are atoms; the rest as values, *tracked
 * set when one is an object the collector tracks (a container). */
static inline PyObject *
cell_value (uint8_t type, const uint8_t *val, uint32_t len, bool *tracked)
{
   bson_value_t bv;
   PyObject *v;
   switch (type) {
   case BSON_TYPE_INT32: return PyLong_FromLong ((int32_t) dj_bwalk_u32 (val));
   case BSON_TYPE_INT64:
      return PyLong_FromLongLong ((int64_t) ((uint64_t) dj_bwalk_u32 (val) | (uint64_t) dj_bwalk_u32 (val + 4) << 32));
   case BSON_TYPE_UTF8: return text_to_py ((const char *) val + 4, (Py_ssize_t) dj_bwalk_u32 (val) - 1);
   case BSON_TYPE_NULL: return Py_NewRef (Py_None);
   default:
      dj_bson_value_read (type, val, len, &bv);
      v = value_to_py (&bv, 0);
      *tracked = *tracked || (v && PyObject_GC_IsTracked (v));
      return v;
   }
}

/* A row's tuple being filled from a document's cells (dj_exec_row_cells). */
typedef struct {
   PyObject *t;  /* borrowed: the row's tuple */
   bool failed;  /* a value could not be converted (Python error set) */
   bool tracked; /* some cell is an object the collector tracks */
} cells_t;

static void
cell_to_py (void *ctx, int i, uint8_t type, const uint8_t *val, uint32_t len)
{
   cells_t *c = ctx;
   if (c->failed || i >= PyTuple_GET_SIZE (c->t) || PyTuple_GET_ITEM (c->t, i)) {
      return;
   }
   PyObject *v = cell_value (type, val, len, &c->tracked);
   if (!v) {
      c->failed = true;
      return;
   }
   PyTuple_SET_ITEM (c->t, i, v);
}

/* The tuple of m's columns from result document doc (new reference; NULL
 * with a Python error). `cells` (room for m's columns) is the caller's;
 * *in_order: the rows so far had the columns' layout (dj_exec_row_in_order),
 * cleared at the first that has not -- a statement's rows come from one
 * projection, so the rest are read by the general path at once. */
static PyObject *
doc_row (const dj_mql_t *m, const uint8_t *data, uint32_t len, dj_exec_cell_t *cells, bool *in_order)
{
   bson_t doc;
   PyObject *t = PyTuple_New (m->ncolumns);
   if (!t) {
      return NULL;
   }
   cells_t c = {.t = t};
   if (*in_order && dj_exec_row_in_order (m, data, len, cells)) {
      for (Py_ssize_t i = 0, n = m->ncolumns; i < n; i++) {
         PyObject *v = cell_value (cells[i].type, cells[i].val, cells[i].len, &c.tracked);
         if (!v) {
            Py_DECREF (t); /* (its cells not yet set are NULL: the tuple's dealloc skips them) */
            return NULL;
         }
         PyTuple_SET_ITEM (t, i, v);
      }
   } else {
      *in_order = false;
      if (bson_init_static (&doc, data, len)) {
         dj_exec_row_cells (m, &doc, cell_to_py, &c);
      } /* (else every cell None, as for a document without the columns) */
      for (Py_ssize_t i = 0; !c.failed && i < m->ncolumns; i++) {
         if (!PyTuple_GET_ITEM (t, i)) {
            PyTuple_SET_ITEM (t, i, Py_NewRef (Py_None)); /* (every column gives a cell: never left empty) */
         }
      }
      if (c.failed) {
         Py_CLEAR (t);
         return NULL;
      }
   }
   /* A row of atoms (numbers, text, None: untracked objects) can be in no
    * reference cycle: it leaves the collector's young generation now, as
    * the collector itself would take it out at its next pass
    * (_PyTuple_MaybeUntrack), rather than be visited by that pass first
    * -- the ORM keeps the rows alive while it builds a query's objects,
    * during which its allocations run a collection or two. */
   if (!c.tracked) {
      PyObject_GC_UnTrack (t);
   }
   return t;
}

/* Appends row t (stolen) to the list rows, filling its first `cap`
 * slots made empty by PyList_New; false with a Python error. */
static bool
rows_put (PyObject *rows, Py_ssize_t *n, Py_ssize_t cap, PyObject *t)
{
   if (!t) {
      return false;
   }
   if (*n < cap) {
      PyList_SET_ITEM (rows, (*n)++, t);
      return true;
   }
   int rc = PyList_Append (rows, t);
   Py_DECREF (t);
   (*n)++;
   return rc == 0;
}

/* The rows of result r of statement m as a list of tuples (new
 * reference; NULL with a Python error). */
static PyObject *
result_rows (const dj_mql_t *m, const dj_result_t *r)
{
   dj_bwalk_t ri, ci;
   if (!dj_bwalk_init (&ri, bson_get_data (r->rows), r->rows->len)) {
      return PyList_New (0);
   }
   /* a row per element, rowcount of them as a rule: the list is made at
    * that size (no element is under 7 bytes) and filled in place, and
    * cut to the rows there were should some element give none */
   Py_ssize_t cap = r->rowcount > 0 && r->rowcount <= r->rows->len / 7 ? (Py_ssize_t) r->rowcount : 0, n = 0;
   PyObject *rows = PyList_New (cap);
   /* the cells of a result document's columns, found in one walk
    * (dj_exec_row_in_order): room for a few on the stack, more (owned
    * here, freed below) for a wide select list */
   dj_exec_cell_t few[32], *cells = m->ncolumns <= 32 ? few : bson_malloc (sizeof *cells * (size_t) m->ncolumns);
   bool in_order = r->docs && dj_exec_row_keys (m, cells);
   while (rows && dj_bwalk_next (&ri)) {
      if (r->docs && ri.type == BSON_TYPE_DOCUMENT) {
         /* a result document: its cells read once, into the tuple */
         if (!rows_put (rows, &n, cap, doc_row (m, ri.val, ri.val_len, cells, &in_order))) {
            Py_CLEAR (rows);
         }
         continue;
      }
      if ((ri.type != BSON_TYPE_ARRAY && ri.type != BSON_TYPE_DOCUMENT) || !dj_bwalk_init (&ci, ri.val, ri.val_len)) {
         continue;
      }
      /* SELECT *: as many cells as the document has */
      Py_ssize_t ncells = 0;
      dj_bwalk_t cnt = ci;
      while (dj_bwalk_next (&cnt)) {
         ncells++;
      }
      PyObject *t = PyTuple_New (ncells);
      for (Py_ssize_t c = 0; t && c < ncells && dj_bwalk_next (&ci); c++) {
         bson_value_t bv;
         dj_bwalk_value (&ci, &bv);
         PyObject *v = value_to_py (&bv, 0);
         if (!v) {
            Py_CLEAR (t);
            break;
         }
         PyTuple_SET_ITEM (t, c, v);
      }
      if (!rows_put (rows, &n, cap, t)) {
         Py_CLEAR (rows);
      }
   }
   if (cells != few) {
      bson_free (cells);
   }
   if (rows && n < cap) {
      /* (the slots left empty go with the list: its dealloc skips them) */
      Py_SETREF (rows, PyList_GetSlice (rows, 0, n));
   }
   return rows;
}

/* execute(sql, params) -> (description, rows, rowcount, lastrowid, txn, untyped)
 *   description: PEP 249's cursor.description (describe.c: kept per SQL
 *     text), or None for statements without rows
 *   rows: list of tuples; txn: None, or "BEGIN"|"COMMIT"|... for transaction statements
 *   untyped: whether some column's type_code is None (no declared type:
 *     the caller names it from the rows) */
static PyObject *
Connection_execute (ConnectionObject *self, PyObject *args)
{
   const char *sql;
   Py_ssize_t sql_len;
   PyObject *params;
   if (!conn_enter_args (self, args, "s#O", &sql, &sql_len, &params)) {
      return NULL;
   }
   PyObject *result = NULL;
   bson_t holder = BSON_INITIALIZER;
   bson_value_t *values = NULL;
   int n = 0;
   /* parameters -> BSON, with the GIL */
   if (!bind_params (params, &holder, &values, &n)) {
      goto done;
   }
   bson_error_t error;
   dj_mql_t m;
   dj_result_t r;
   bool ok, bound = false, ran = false;
   size_t unescaped_len = 0;
   /* with parameters, quoted %% means % (dj_sql_unescape_percents) */
   char *unescaped = params != Py_None ? dj_sql_unescape_percents (sql, (size_t) sql_len, &unescaped_len) : NULL;
   if (unescaped) {
      sql = unescaped;
      sql_len = (Py_ssize_t) unescaped_len;
   }
   Py_BEGIN_ALLOW_THREADS
   dj_plan_t *plan = dj_plan_cache_get (g_plans, sql, (size_t) sql_len, &error);
   ok = plan != NULL;
   if (ok) {
      dj_catalog_t catalog = dj_exec_catalog (self->exec);
      ok = bound = dj_plan_bind_kept (self->bound, plan, dj_exec_tables_generation (self->exec), dj_exec_db (self->exec),
                                      &catalog, values, n, &m, &error);
      dj_plan_release (plan);
   }
   if (ok) {
      ok = ran = run_statement (self, &m, &r, &error);
   }
   Py_END_ALLOW_THREADS
   if (self->trace && bound) {
      /* what the statement ran (auto ids and fed _ids filled in), for the
       * djongo logger and connection.queries */
      PyObject *cmds = commands_json (&m);
      Py_XSETREF (self->last_commands, cmds);
      if (!cmds) {
         PyErr_Clear (); /* tracing never fails a statement */
      }
   }
   if (!ok) {
      map_conn_error (self, &error);
      goto cleanup;
   }
   if (m.kind == DJ_MQL_TXN) {
      static const char *const names[] = {[DJ_STMT_BEGIN] = "BEGIN", [DJ_STMT_COMMIT] = "COMMIT",
                                          [DJ_STMT_ROLLBACK] = "ROLLBACK", [DJ_STMT_SAVEPOINT] = "SAVEPOINT",
                                          [DJ_STMT_RELEASE] = "RELEASE", [DJ_STMT_ROLLBACK_TO] = "ROLLBACK TO"};
      result = Py_BuildValue ("(OOnOzO)", Py_None, Py_None, (Py_ssize_t) -1, Py_None, names[m.stmt], Py_False);
      goto cleanup;
   }
   /* rows -> tuples */
   PyObject *desc = Py_None, *rows = PyList_New (0);
   Py_INCREF (Py_None);
   bool has_rows = m.kind == DJ_MQL_ROWS || m.ncolumns > 0, untyped = false;
   if (rows && has_rows) {
      Py_DECREF (Py_None);
      desc = describe_statement (self, PyTuple_GET_ITEM (args, 0), params != Py_None, &m, &untyped);
      if (desc) {
         Py_SETREF (rows, result_rows (&m, &r));
      }
   }
   if (desc && rows) {
      PyObject *lastrowid = r.has_lastrowid ? PyLong_FromLongLong (r.lastrowid) : (Py_INCREF (Py_None), Py_None);
      result = Py_BuildValue ("(OOLOOO)", desc, rows, (long long) r.rowcount, lastrowid, Py_None,
                              untyped ? Py_True : Py_False);
      Py_XDECREF (lastrowid);
   }
   Py_XDECREF (desc);
   Py_XDECREF (rows);
cleanup:
   if (ran) {
      dj_result_cleanup (&r);
   }
   if (bound) {
      dj_mql_cleanup (&m);
   }
   bson_free (unescaped);
done:
   bson_free (values);
   bson_destroy (&holder);
   PyThread_release_lock (self->lock);
   return result;
}

/* command(db, cmd: dict, outside=False) -> reply dict: one MongoDB command,
 * in the open transaction if any (outside: never, and beginning none --
 * dj_transport_run_outside), for what SQL does not say (introspection,
 * creating and dropping test databases). A reply with ok: 0 raises, mapped
 * as SQL errors are. */
static PyObject *
Connection_command (ConnectionObject *self, PyObject *args)
{
   const char *db;
   PyObject *cmd;
   int outside = 0;
   if (!conn_enter_args (self, args, "sO!|p", &db, &PyDict_Type, &cmd, &outside)) {
      return NULL;
   }
   PyObject *result = NULL;
   bson_t holder = BSON_INITIALIZER, doc, reply, wrap = BSON_INITIALIZER;
   bson_iter_t it;
   uint32_t len;
   const uint8_t *data;
   bson_error_t error;
   if (append_py (&holder, "c", cmd, 0) && bson_iter_init_find (&it, &holder, "c")) {
      bson_iter_document (&it, &len, &data);
      bson_init_static (&doc, data, len);
      bool ok;
      Py_BEGIN_ALLOW_THREADS
      /* a command is a statement too: with autocommit off it runs in the
       * implicit transaction, begun deferred (whether it writes is the
       * engine's to find out; its first write takes the lock) */
      ok = outside || begin_implicit (self, false, &error);
      if (ok) {
         ok = outside ? dj_transport_run_outside (self->transport, db, &doc, &reply, &error)
                      : dj_transport_run (self->transport, db, &doc, &reply, &error);
      } else {
         bson_init (&reply);
      }
      Py_END_ALLOW_THREADS
      if (!ok) {
         map_conn_error (self, &error);
      } else {
         BSON_APPEND_DOCUMENT (&wrap, "r", &reply);
         if (bson_iter_init_find (&it, &wrap, "r")) {
            result = doc_to_py (&it, false, 0);
         }
      }
      bson_destroy (&reply);
   }
   bson_destroy (&wrap);
   bson_destroy (&holder);
   PyThread_release_lock (self->lock);
   return result;
}

/* commit() / rollback(): the transaction, if one is open (else nothing). */
static PyObject *
Connection_txn (ConnectionObject *self, dj_txn_op_t op)
{
   bson_error_t error;
   bool ok;
   if (!conn_enter (self)) {
      return NULL;
   }
   Py_BEGIN_ALLOW_THREADS
   ok = dj_exec_txn (self->exec, op, NULL, &error);
   Py_END_ALLOW_THREADS
   PyThread_release_lock (self->lock);
   if (!ok) {
      map_conn_error (self, &error);
      return NULL;
   }
   Py_RETURN_NONE;
}

/* djongo_has(name): whether the server is djongo's and has that extension
 * (hello's djongo document: src/server/handshake.c); always true on the
 * embedded engine. */
static PyObject *
Connection_djongo_has (ConnectionObject *self, PyObject *args)
{
   const char *name;
   bool yes;
   if (!conn_enter_args (self, args, "s", &name)) {
      return NULL;
   }
   Py_BEGIN_ALLOW_THREADS
   yes = dj_transport_djongo_has (self->transport, name); /* (a server selection, the first time) */
   Py_END_ALLOW_THREADS
   PyThread_release_lock (self->lock);
   return PyBool_FromLong (yes);
}

static PyObject *
Connection_commit (ConnectionObject *self, PyObject *Py_UNUSED (ignored))
{
   return Connection_txn (self, DJ_TXN_COMMIT);
}

static PyObject *
Connection_rollback (ConnectionObject *self, PyObject *Py_UNUSED (ignored))
{
   return Connection_txn (self, DJ_TXN_ROLLBACK);
}

static PyObject *
Connection_get_in_transaction (ConnectionObject *self, void *Py_UNUSED (closure))
{
   return PyBool_FromLong (self->exec && dj_exec_txn (self->exec, DJ_TXN_ACTIVE, NULL, NULL));
}

static PyObject *
Connection_get_autocommit (ConnectionObject *self, void *Py_UNUSED (closure))
{
   return PyBool_FromLong (self->autocommit);
}

/* Turning autocommit on commits an open transaction (as sqlite3 does). */
static int
Connection_set_autocommit (ConnectionObject *self, PyObject *value, void *Py_UNUSED (closure))
{
   int on = value ? PyObject_IsTrue (value) : -1;
   if (on < 0) {
      if (!PyErr_Occurred ()) {
         PyErr_SetString (PyExc_TypeError, "autocommit cannot be deleted");
      }
      return -1;
   }
   if (on && !self->autocommit && self->exec) {
      PyObject *r = Connection_txn (self, DJ_TXN_COMMIT);
      if (!r) {
         return -1;
      }
      Py_DECREF (r);
   }
   self->autocommit = on;
   return 0;
}

static PyObject *
Connection_get_trace (ConnectionObject *self, void *Py_UNUSED (closure))
{
   return PyBool_FromLong (self->trace);
}

static int
Connection_set_trace (ConnectionObject *self, PyObject *value, void *Py_UNUSED (closure))
{
   int on = value ? PyObject_IsTrue (value) : 0;
   if (on < 0) {
      return -1;
   }
   self->trace = on;
   return 0;
}

static PyObject *
Connection_get_fk_checks (ConnectionObject *self, void *Py_UNUSED (closure))
{
   return PyBool_FromLong (!self->fk_off);
}

/* Taken like a statement (conn_enter): the session must not be running
 * one for another thread while its setting changes. */
static int
Connection_set_fk_checks (ConnectionObject *self, PyObject *value, void *Py_UNUSED (closure))
{
   int on = value ? PyObject_IsTrue (value) : 1;
   if (on < 0 || !conn_enter (self)) {
      return -1;
   }
   self->fk_off = !on;
   dj_exec_set_fk_checks (self->exec, on);
   PyThread_release_lock (self->lock);
   return 0;
}

static PyObject *
Connection_get_last_commands (ConnectionObject *self, void *Py_UNUSED (closure))
{
   PyObject *r = self->last_commands ? self->last_commands : PyTuple_New (0);
   Py_XINCREF (self->last_commands);
   return r;
}

static PyGetSetDef Connection_getset[] = {
   {"trace", (getter) Connection_get_trace, (setter) Connection_set_trace,
    "keep each statement's MongoDB commands in last_commands", NULL},
   {"last_commands", (getter) Connection_get_last_commands, NULL,
    "the MongoDB commands of the last statement (relaxed Extended JSON), when trace is on", NULL},
   {"autocommit", (getter) Connection_get_autocommit, (setter) Connection_set_autocommit,
    "False (PEP 249's default): a write outside a transaction begins one, kept until commit()/rollback()", NULL},
   {"in_transaction", (getter) Connection_get_in_transaction, NULL, "whether a transaction is open", NULL},
   {"fk_checks", (getter) Connection_get_fk_checks, (setter) Connection_set_fk_checks,
    "True (default): writes check FOREIGN KEYs (at the statement's end, or at COMMIT when deferred); "
    "False: they record no checks (Django's disable_constraint_checking)", NULL},
   {NULL, NULL, NULL, NULL, NULL}};

/* set_concerns(dict or None): the transport's read preference, read and
 * write concern from now on (dj_transport_set_concerns); None or {}: the
 * connection's own again. */
static PyObject *
Connection_set_concerns (ConnectionObject *self, PyObject *concerns)
{
   bson_t doc;
   bson_error_t error;
   if (!options_to_bson (concerns, &doc)) {
      bson_destroy (&doc);
      return NULL;
   }
   if (!conn_enter (self)) {
      bson_destroy (&doc);
      return NULL;
   }
   bool ok = dj_transport_set_concerns (self->transport, &doc, &error); /* (no I/O: the GIL stays) */
   PyThread_release_lock (self->lock);
   bson_destroy (&doc);
   if (!ok) {
      return map_error (&error);
   }
   Py_RETURN_NONE;
}

static PyMethodDef Connection_methods[] = {
   {"set_concerns", (PyCFunction) Connection_set_concerns, METH_O,
    "set_concerns(options or None): read preference, read concern and write concern (connection-string option "
    "names) for what runs next; None: the connection's own"},
   {"command", (PyCFunction) Connection_command, METH_VARARGS,
    "command(db, cmd, outside=False) -> reply: one MongoDB command (a dict, command name first) on database db "
    "(outside: never in the open transaction, beginning none)"},
   {"insertmany", (PyCFunction) Connection_insertmany, METH_VARARGS,
    "insertmany(sql, seq) -> (rowcount, lastrowid), or None when sql is not a one-row INSERT without RETURNING"},
   {"commit", (PyCFunction) Connection_commit, METH_NOARGS, "commit(): commits the open transaction, if any"},
   {"djongo_has", (PyCFunction) Connection_djongo_has, METH_VARARGS,
    "djongo_has(name) -> bool: whether the server has that djongo extension (hello's djongo document; "
    "always on the embedded engine)"},
   {"rollback", (PyCFunction) Connection_rollback, METH_NOARGS, "rollback(): rolls back the open transaction, if any"},
   {"execute", (PyCFunction) Connection_execute, METH_VARARGS,
    "execute(sql, params) -> (description or None, rows, rowcount, lastrowid, transaction statement or None, "
    "untyped: some type_code is None)"},
   {"close", (PyCFunction) Connection_close, METH_NOARGS, "close()"},
   {"set_encryption", (PyCFunction) Connection_set_encryption, METH_VARARGS,
    "set_encryption(kms_providers, key_vault): client-side field-level encryption with these KMS providers"},
   {"encrypt", (PyCFunction) Connection_encrypt, METH_VARARGS,
    "encrypt(value, algorithm, key_alt_name) -> djongo._values.Encrypted (BSON binary subtype 6)"},
   {"decrypt", (PyCFunction) Connection_decrypt, METH_VARARGS, "decrypt(encrypted) -> the clear value"},
   {"create_data_key", (PyCFunction) Connection_create_data_key, METH_VARARGS,
    "create_data_key(master_key, alt_names) -> uuid.UUID: a data key inserted into the key vault"},
   {"rewrap_many_data_key", (PyCFunction) Connection_rewrap_many_data_key, METH_VARARGS,
    "rewrap_many_data_key(filter, master_key) -> how many data keys were rewrapped (rewrapManyDataKey)"},
   {NULL, NULL, 0, NULL}};

static PyTypeObject ConnectionType = {
   PyVarObject_HEAD_INIT (NULL, 0).tp_name = "djongo._driver.Connection",
   .tp_basicsize = sizeof (ConnectionObject),
   .tp_flags = Py_TPFLAGS_DEFAULT,
   .tp_new = PyType_GenericNew,
   .tp_init = (initproc) Connection_init,
   .tp_dealloc = (destructor) Connection_dealloc,
   .tp_methods = Connection_methods,
   .tp_getset = Connection_getset,
   .tp_doc = "Connection(host, db, autocommit=False): SQL over the embedded engine (a path) or MongoDB (a URI or host).",
};

static PyObject *
import_attr (const char *module, const char *name)
{
   PyObject *m = PyImport_ImportModule (module);
   if (!m) {
      return NULL;
   }
   PyObject *a = PyObject_GetAttrString (m, name);
   Py_DECREF (m);
   return a;
}

static struct PyModuleDef driver_module = {PyModuleDef_HEAD_INIT, "_driver",
                                           "djongo's DB-API driver core (C): see djongo/driver.py", -1,
                                           driver_functions};

PyMODINIT_FUNC
PyInit__driver (void)
{
   PyDateTime_IMPORT;
   if (!PyDateTimeAPI || PyType_Ready (&ConnectionType) < 0) {
      return NULL;
   }
   if (!(Exc_Error = import_attr ("djongo._exceptions", "Error")) ||
       !(Exc_DataError = import_attr ("djongo._exceptions", "DataError")) ||
       !(Exc_OperationalError = import_attr ("djongo._exceptions", "OperationalError")) ||
       !(Exc_IntegrityError = import_attr ("djongo._exceptions", "IntegrityError")) ||
       !(Exc_ProgrammingError = import_attr ("djongo._exceptions", "ProgrammingError")) ||
       !(Exc_NotSupportedError = import_attr ("djongo._exceptions", "NotSupportedError")) ||
       !(Exc_InterfaceError = import_attr ("djongo._exceptions", "InterfaceError")) ||
       !(Exc_InternalError = import_attr ("djongo._exceptions", "InternalError")) ||
       !(Decimal_type = import_attr ("decimal", "Decimal")) || !(UUID_type = import_attr ("uuid", "UUID")) ||
       !(Undefined_type = import_attr ("djongo._values", "Undefined")) ||
       !(Encrypted_type = import_attr ("djongo._values", "Encrypted"))) {
      return NULL;
   }
   /* bson.ObjectId (pymongo's) is the ecosystem's ObjectId; without pymongo,
    * ObjectIds come back as their hex text */
   ObjectId_type = import_attr ("bson", "ObjectId");
   if (!ObjectId_type) {
      PyErr_Clear ();
   }
   Int64_type = import_attr ("bson", "Int64");
   if (!Int64_type) {
      PyErr_Clear ();
   }
   if (!g_plans) {
      g_plans = dj_plan_cache_new (0);
   }
   PyObject *m = PyModule_Create (&driver_module);
   if (!m) {
      return NULL;
   }
   Py_INCREF (&ConnectionType);
   if (PyModule_AddObject (m, "Connection", (PyObject *) &ConnectionType) < 0) {
      Py_DECREF (&ConnectionType);
      Py_DECREF (m);
      return NULL;
   }
   return m;
}
