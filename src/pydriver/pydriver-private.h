/*
 * pydriver-private.h -- what the driver's C files share (module.c: the
 * Connection type, values both ways, errors; crypt.c: its encryption
 * methods; params.c: parameters bound; describe.c: descriptions). Not installed.
 *
 * The globals are module state: set once at import (the GIL guards it),
 * then read-only.
 */
#ifndef DJ_PYDRIVER_PRIVATE_H
#define DJ_PYDRIVER_PRIVATE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pythread.h>

#include "dj_crypt.h"
#include "dj_exec.h"
#include "dj_transport.h"

extern PyObject *Exc_Error, *Exc_DataError, *Exc_OperationalError, *Exc_IntegrityError, *Exc_ProgrammingError,
   *Exc_NotSupportedError, *Exc_InternalError, *Exc_InterfaceError;
extern PyObject *Decimal_type, *UUID_type, *ObjectId_type, *Int64_type, *Undefined_type, *Encrypted_type;

typedef struct {
   PyObject_HEAD
   dj_transport_t *transport; /* owned */
   dj_exec_t *exec;           /* owned */
   PyThread_type_lock lock;   /* held while a statement runs */
   bool autocommit;           /* false: a statement outside a transaction begins one (PEP 249; begin_implicit) */
   bool trace;                /* keep each statement's MongoDB commands in last_commands */
   bool fk_off;               /* FOREIGN KEY checks turned off (fk_checks = False) */
   bool refs_asked;           /* dj_transport_djongo_engine asked (run_statement) */
   PyObject *last_commands;   /* owned: tuple of relaxed Extended JSON strings, or NULL */
   dj_crypt_t *crypt;         /* owned: set by set_encryption(), else NULL; uses transport */
   PyObject *descriptions;    /* owned dict, or NULL: cursor.description per SQL text (describe.c) */
   uint64_t descriptions_gen; /* the session's dj_exec_tables_generation they were built under */
   dj_bound_cache_t *bound;   /* owned: SELECTs bound once per parameter types (dj_plan_bind_kept) */
} ConnectionObject;

/* Raises the PEP 249 exception for a C error. Returns NULL. */
PyObject *map_error (const bson_error_t *e);
/* One Python value appended to b as key (false with a Python error). */
bool append_py (bson_t *b, const char *key, PyObject *v, int depth);
/* A SQL parameter appended to b as key: append_py's value, a datetime
 * with microseconds below the millisecond an exact datetime (dj_compile.h). */
bool append_param (bson_t *b, const char *key, PyObject *v);
/* A sequence as the BSON array key of b (exact_dt: its items as append_param). */
bool append_seq (bson_t *b, const char *key, PyObject *seq, int depth, bool exact_dt);
/* A Python int as a 64-bit one; false with DataError past that range. */
bool py_int64 (PyObject *v, long long *x);

/* params.c: parameters (a sequence, or None) -> BSON values: *values
 * (owned by the caller, bson_free) borrow from holder, which the caller
 * destroys. False with a Python error. */
bool bind_params (PyObject *params, bson_t *holder, bson_value_t **values, int *n);
/* The value at it as Python (new reference), or NULL with a Python error. */
PyObject *to_py (const bson_iter_t *it, int depth);
/* A statement's way in (module.c): the caller then holds self->lock. */
bool conn_enter (ConnectionObject *self);
bool conn_enter_args (ConnectionObject *self, PyObject *args, const char *format, ...);

/* describe.c: the description of statement m's columns (new reference;
 * NULL with a Python error), the one kept for this SQL text if the
 * session's table entries are unchanged; *untyped when a column's
 * type_code is None (the caller names it from the rows). */
PyObject *describe_statement (ConnectionObject *self, PyObject *sql, bool has_params, const dj_mql_t *m, bool *untyped);

/* crypt.c: Connection's encryption methods (src/crypt) */
PyObject *Connection_set_encryption (ConnectionObject *self, PyObject *args);
PyObject *Connection_encrypt (ConnectionObject *self, PyObject *args);
PyObject *Connection_decrypt (ConnectionObject *self, PyObject *args);
PyObject *Connection_create_data_key (ConnectionObject *self, PyObject *args);
PyObject *Connection_rewrap_many_data_key (ConnectionObject *self, PyObject *args);

#endif
