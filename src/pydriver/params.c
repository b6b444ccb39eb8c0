/*
 * params.c -- a statement's parameters (a Python list or tuple) as the BSON
 * values the compiler binds: written as one array's bytes (the scalars
 * SQL parameters mostly are by dj_bson_put_scalar, the rest by module.c's
 * append_param) and appended once, then read back as bson_value_t's
 * borrowing from it. A bulk INSERT binds thousands.
 */
#include "pydriver-private.h"

#include "dj_bson_array.h"
#include "dj_bson_walk.h"
#include "dj_buf.h"

/* One parameter as element `key` of the array being written in b: the
 * values SQL parameters mostly are (None, bool, int, float, str) written
 * as their BSON bytes (dj_bson_put_scalar), what append_py gives them;
 * any other through append_seq's own conversion, its element's bytes
 * copied. False with a Python error. */
static bool
put_param (dj_buf_t *b, const char *key, size_t klen, PyObject *v)
{
   bson_value_t bv = {.value_type = BSON_TYPE_EOD}; /* EOD: not one of those */
   if (v == Py_None) {
      bv.value_type = BSON_TYPE_NULL;
   } else if (PyBool_Check (v)) {
      bv.value_type = BSON_TYPE_BOOL;
      bv.value.v_bool = v == Py_True;
   } else if (PyLong_CheckExact (v)) {
      long long x;
      if (!py_int64 (v, &x)) {
         return false;
      }
      if (x >= INT32_MIN && x <= INT32_MAX) {
         bv.value_type = BSON_TYPE_INT32;
         bv.value.v_int32 = (int32_t) x;
      } else {
         bv.value_type = BSON_TYPE_INT64;
         bv.value.v_int64 = (int64_t) x;
      }
   } else if (PyFloat_CheckExact (v)) {
      bv.value_type = BSON_TYPE_DOUBLE;
      bv.value.v_double = PyFloat_AS_DOUBLE (v);
   } else if (PyUnicode_CheckExact (v)) {
      Py_ssize_t n;
      const char *str = PyUnicode_AsUTF8AndSize (v, &n);
      if (!str) {
         return false; /* lone surrogates: not UTF-8 */
      }
      if (n < INT32_MAX / 2) {
         bv.value_type = BSON_TYPE_UTF8;
         bv.value.v_utf8.str = (char *) str;
         bv.value.v_utf8.len = (uint32_t) n;
      }
   }
   if (bv.value_type != BSON_TYPE_EOD && dj_bson_put_scalar (b, key, klen, &bv)) {
      return true;
   }
   bson_t one = BSON_INITIALIZER;
   return dj_bson_put_elements (b, &one, append_param (&one, key, v));
}

/* Parameters (a list or tuple) as the array "p" of holder: append_seq's
 * array (its datetimes exact), written as bytes and appended once --
 * a bulk INSERT binds thousands of values. */
static bool
append_params (bson_t *holder, PyObject *params)
{
   if (!PyList_Check (params) && !PyTuple_Check (params)) {
      return append_seq (holder, "p", params, 0, true);
   }
   dj_buf_t b;
   dj_buf_init (&b);
   dj_buf_put_u32le (&b, 0); /* the length, set below */
   bool ok = true;
   /* (the size asked again at each step: a value's conversion may run
    * Python code that changes the list) */
   for (Py_ssize_t i = 0; ok && i < PySequence_Fast_GET_SIZE (params); i++) {
      char k[16];
      size_t klen = dj_bson_array_key ((uint32_t) i, k);
      PyObject *item = PySequence_Fast_GET_ITEM (params, i);
      Py_INCREF (item);
      ok = put_param (&b, k, klen, item);
      Py_DECREF (item);
   }
   bson_t arr;
   dj_buf_putc (&b, 0);
   dj_le32_write (b.data, (uint32_t) b.len);
   if (ok && !(bson_init_static (&arr, b.data, b.len) && bson_append_array (holder, "p", 1, &arr))) {
      PyErr_SetString (Exc_DataError, "parameters too large");
      ok = false;
   }
   dj_buf_cleanup (&b);
   return ok;
}

/* Parameters (a sequence, or None) -> BSON values: *values (owned by the
 * caller, bson_free) borrow from holder, which the caller destroys. */
bool
bind_params (PyObject *params, bson_t *holder, bson_value_t **values, int *n)
{
   bson_iter_t it;
   *values = NULL;
   *n = 0;
   if (params != Py_None && !append_params (holder, params)) {
      return false;
   }
   uint32_t len;
   const uint8_t *data;
   dj_bwalk_t w;
   if (bson_iter_init_find (&it, holder, "p") && BSON_ITER_HOLDS_ARRAY (&it)) {
      /* the array just written, read back from its bytes (dj_bson_walk.h):
       * a bulk INSERT binds thousands of values; one per parameter */
      bson_iter_array (&it, &len, &data);
      Py_ssize_t count = PyList_Check (params)    ? PyList_GET_SIZE (params)
                         : PyTuple_Check (params) ? PyTuple_GET_SIZE (params)
                                                  : 0;
      int cap = count > 0 && count < INT_MAX ? (int) count : 16;
      *values = bson_malloc (sizeof **values * (size_t) cap);
      dj_bwalk_init (&w, data, len);
      while (dj_bwalk_next (&w)) {
         if (*n == cap) {
            cap *= 2;
            *values = bson_realloc (*values, sizeof **values * (size_t) cap);
         }
         dj_bwalk_value (&w, &(*values)[(*n)++]);
      }
   }
   return true;
}
