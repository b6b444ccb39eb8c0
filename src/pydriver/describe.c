/*
 * describe.c -- cursor.description, built once per statement text.
 *
 * PEP 249's description is one 7-item sequence per column: (name,
 * type_code, display_size, internal_size, precision, scale, null_ok); we
 * know the first two. The names come from the compiled statement, the
 * type codes from what CREATE TABLE declared for plain columns of the
 * statement's table -- a SELECT's, an INSERT's RETURNING
 * (dj_exec_column_type: the session's table entries).
 * Both depend on nothing but the SQL text and those entries, so the tuple
 * built for a statement is kept per connection, keyed by the text, and
 * handed out again while the session's entries stay the same
 * (dj_exec_tables_generation changes after DDL and rollbacks): a repeated
 * read no longer looks every column's type up and builds every tuple.
 * https://peps.python.org/pep-0249/#description
 *
 * A column without a declared type (computed, or of a collection CREATE
 * TABLE never made) gets type_code None here and *untyped is set: the
 * Python half (driver.py, _type_code) names its first non-NULL value's
 * type, which depends on the rows, so per execution.
 *
 * Ownership: self->descriptions is the connection's dict {SQL text:
 * (had parameters, description, untyped)}; the description tuples are
 * immutable and shared with the cursors they are handed to.
 */
#include "pydriver-private.h"

/* Statements remembered per connection before the dict starts over (an
 * application's distinct statements are usually far fewer). */
#define DESCRIPTIONS_MAX 512

/* The description of m's columns, built (new reference; NULL with a
 * Python error). */
static PyObject *
build (ConnectionObject *self, const dj_mql_t *m, bool *untyped)
{
   PyObject *desc = PyTuple_New (m->ncolumns);
   *untyped = false;
   for (int i = 0; desc && i < m->ncolumns; i++) {
      char *type = NULL;
      const char *path = m->columns[i].path;
      /* (an INSERT's RETURNING columns are its table's: a create's
       * description is then typed once, not from each execution's rows) */
      bool table_columns = m->kind == DJ_MQL_ROWS || (m->kind == DJ_MQL_WRITE && m->stmt == DJ_STMT_INSERT);
      if (table_columns && path && !strchr (path, '.')) {
         Py_BEGIN_ALLOW_THREADS /* (may run one query: the table's entry) */
         type = dj_exec_column_type (self->exec, m->collection, path);
         Py_END_ALLOW_THREADS
      }
      bool typed = type && *type;
      *untyped |= !typed;
      PyObject *name = PyUnicode_FromString (m->columns[i].name);
      PyObject *t = typed ? PyUnicode_FromString (type) : Py_NewRef (Py_None);
      PyObject *col = name && t ? PyTuple_Pack (7, name, t, Py_None, Py_None, Py_None, Py_None, Py_None) : NULL;
      Py_XDECREF (name);
      Py_XDECREF (t);
      bson_free (type);
      if (!col) {
         Py_CLEAR (desc);
         break;
      }
      PyTuple_SET_ITEM (desc, i, col);
   }
   return desc;
}

PyObject *
describe_statement (ConnectionObject *self, PyObject *sql, bool has_params, const dj_mql_t *m, bool *untyped)
{
   uint64_t gen = dj_exec_tables_generation (self->exec);
   if (!self->descriptions || self->descriptions_gen != gen || PyDict_GET_SIZE (self->descriptions) >= DESCRIPTIONS_MAX) {
      Py_XSETREF (self->descriptions, PyDict_New ());
      self->descriptions_gen = gen;
      if (!self->descriptions) {
         return NULL;
      }
   }
   PyObject *kept = PyDict_GetItemWithError (self->descriptions, sql); /* borrowed */
   if (kept && PyTuple_GET_ITEM (kept, 0) == (has_params ? Py_True : Py_False) &&
       PyTuple_GET_SIZE (PyTuple_GET_ITEM (kept, 1)) == m->ncolumns) {
      /* (with parameters, %% in the text means %: another statement) */
      *untyped = PyTuple_GET_ITEM (kept, 2) == Py_True;
      return Py_NewRef (PyTuple_GET_ITEM (kept, 1));
   }
   if (!kept && PyErr_Occurred ()) {
      return NULL;
   }
   PyObject *desc = build (self, m, untyped);
   if (!desc) {
      return NULL;
   }
   /* the entries may have been read just now, by build(): the number
    * after is the one the description holds for */
   if (self->descriptions_gen == dj_exec_tables_generation (self->exec)) {
      PyObject *entry = Py_BuildValue ("(OOO)", has_params ? Py_True : Py_False, desc, *untyped ? Py_True : Py_False);
      if (!entry || PyDict_SetItem (self->descriptions, sql, entry) < 0) {
         Py_XDECREF (entry);
         Py_DECREF (desc);
         return NULL;
      }
      Py_DECREF (entry);
   }
   return desc;
}
