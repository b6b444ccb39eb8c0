/*
 * crypt.c -- djongo._driver's client-side field-level encryption methods
 * of Connection (set_encryption, encrypt, decrypt, create_data_key,
 * rewrap_many_data_key) over src/crypt (dj_crypt.h). Same rules as
 * module.c's methods: the connection is taken (conn_enter) for the call,
 * values are converted with the GIL, the crypto and key vault commands run
 * without it.
 */
#include "pydriver-private.h"

/* A dict (or None: empty) as a BSON document: *out initialised; false with
 * a Python error. */
static bool
dict_to_bson (PyObject *d, bson_t *out)
{
   bson_t holder = BSON_INITIALIZER;
   bson_iter_t it;
   bson_init (out);
   if (d == Py_None) {
      bson_destroy (&holder);
      return true;
   }
   if (!PyDict_Check (d)) {
      bson_destroy (&holder);
      PyErr_SetString (Exc_ProgrammingError, "expected a dict");
      return false;
   }
   bool ok = append_py (&holder, "d", d, 0) && bson_iter_init_find (&it, &holder, "d");
   if (ok) {
      uint32_t len;
      const uint8_t *data;
      bson_t view;
      bson_iter_document (&it, &len, &data);
      bson_init_static (&view, data, len);
      bson_destroy (out);
      bson_copy_to (&view, out);
   }
   bson_destroy (&holder);
   return ok;
}

/* conn_enter, and the encryption settings must have been given */
static bool
crypt_enter (ConnectionObject *self)
{
   if (!conn_enter (self)) {
      return false;
   }
   if (!self->crypt) {
      PyThread_release_lock (self->lock);
      PyErr_SetString (Exc_ProgrammingError,
                       "encryption is not configured: set OPTIONS[\"ENCRYPTION\"] (KMS providers and KEY_VAULT)");
      return false;
   }
   return true;
}

/* set_encryption(kms_providers, key_vault): libmongocrypt with these KMS
 * providers, data keys in key_vault ("db.collection"), read and written
 * through this connection's transport. */
PyObject *
Connection_set_encryption (ConnectionObject *self, PyObject *args)
{
   PyObject *kms;
   const char *key_vault;
   if (!conn_enter_args (self, args, "O!s", &PyDict_Type, &kms, &key_vault)) {
      return NULL;
   }
   bson_t providers;
   bson_error_t error;
   dj_crypt_t *c = NULL;
   if (dict_to_bson (kms, &providers)) {
      c = dj_crypt_new (&providers, key_vault, dj_transport_run, self->transport, &error);
      if (!c) {
         map_error (&error);
      }
   }
   bson_destroy (&providers);
   if (c) {
      dj_crypt_destroy (self->crypt);
      self->crypt = c;
   }
   PyThread_release_lock (self->lock);
   if (!c) {
      return NULL;
   }
   Py_RETURN_NONE;
}

/* {"v": x} -> x as Python (new reference) */
static PyObject *
value_of (const bson_t *doc)
{
   bson_iter_t it;
   if (!bson_iter_init_find (&it, doc, "v")) {
      PyErr_SetString (Exc_InternalError, "libmongocrypt returned no value");
      return NULL;
   }
   return to_py (&it, 0);
}

/* encrypt(value, algorithm, key_alt_name) -> djongo._values.Encrypted, or
 * (algorithm NULL) decrypt(encrypted) -> the clear value */
static PyObject *
crypt_value (ConnectionObject *self, PyObject *value, const char *algorithm, const char *key_alt_name)
{
   if (!crypt_enter (self)) {
      return NULL;
   }
   PyObject *result = NULL;
   bson_t holder = BSON_INITIALIZER, out;
   bson_iter_t it;
   bson_error_t error;
   if (append_py (&holder, "v", value, 0) && bson_iter_init_find (&it, &holder, "v")) {
      bool ok;
      Py_BEGIN_ALLOW_THREADS
      ok = algorithm ? dj_crypt_encrypt (self->crypt, bson_iter_value (&it), algorithm, key_alt_name, NULL, &out, &error)
                     : dj_crypt_decrypt (self->crypt, bson_iter_value (&it), &out, &error);
      Py_END_ALLOW_THREADS
      result = ok ? value_of (&out) : map_error (&error);
      bson_destroy (&out);
   }
   bson_destroy (&holder);
   PyThread_release_lock (self->lock);
   return result;
}

PyObject *
Connection_encrypt (ConnectionObject *self, PyObject *args)
{
   PyObject *value;
   const char *algorithm, *key_alt_name;
   if (!PyArg_ParseTuple (args, "Oss", &value, &algorithm, &key_alt_name)) {
      return NULL;
   }
   return crypt_value (self, value, algorithm, key_alt_name);
}

PyObject *
Connection_decrypt (ConnectionObject *self, PyObject *args)
{
   PyObject *value;
   if (!PyArg_ParseTuple (args, "O", &value)) {
      return NULL;
   }
   return crypt_value (self, value, NULL, NULL);
}

/* create_data_key(master_key, alt_names) -> uuid.UUID of the new key */
PyObject *
Connection_create_data_key (ConnectionObject *self, PyObject *args)
{
   PyObject *master, *names;
   if (!PyArg_ParseTuple (args, "O!O", &PyDict_Type, &master, &names)) {
      return NULL;
   }
   PyObject *seq = PySequence_Fast (names, "alt_names must be a sequence of str");
   if (!seq) {
      return NULL;
   }
   Py_ssize_t n = PySequence_Fast_GET_SIZE (seq);
   const char **alt = PyMem_Calloc ((size_t) n + 1, sizeof *alt); /* owned here; strings borrowed from seq */
   if (!alt) {
      PyErr_NoMemory ();
   }
   for (Py_ssize_t i = 0; alt && i < n; i++) {
      PyObject *s = PySequence_Fast_GET_ITEM (seq, i);
      if (!(alt[i] = PyUnicode_Check (s) ? PyUnicode_AsUTF8 (s) : NULL)) {
         if (!PyErr_Occurred ()) {
            PyErr_SetString (Exc_ProgrammingError, "alt_names must be a sequence of str");
         }
         PyMem_Free (alt);
         alt = NULL;
      }
   }
   PyObject *result = NULL;
   bson_t kek;
   if (alt && dict_to_bson (master, &kek) && crypt_enter (self)) {
      uint8_t id[16];
      bson_error_t error;
      bool ok;
      Py_BEGIN_ALLOW_THREADS
      ok = dj_crypt_create_key (self->crypt, &kek, alt, (int) n, id, &error);
      Py_END_ALLOW_THREADS
      PyThread_release_lock (self->lock);
      if (!ok) {
         map_error (&error);
      } else {
         PyObject *kw = Py_BuildValue ("{s:y#}", "bytes", (const char *) id, (Py_ssize_t) 16);
         PyObject *empty = PyTuple_New (0);
         result = kw && empty ? PyObject_Call (UUID_type, empty, kw) : NULL;
         Py_XDECREF (kw);
         Py_XDECREF (empty);
      }
   }
   if (alt) {
      bson_destroy (&kek);
   }
   PyMem_Free (alt);
   Py_DECREF (seq);
   return result;
}

/* rewrap_many_data_key(filter, master_key) -> how many keys were rewrapped
 * (filter None: all; master_key None: each key's own) */
PyObject *
Connection_rewrap_many_data_key (ConnectionObject *self, PyObject *args)
{
   PyObject *filter, *master;
   if (!PyArg_ParseTuple (args, "OO", &filter, &master)) {
      return NULL;
   }
   bson_t f, kek;
   PyObject *result = NULL;
   bool ok = dict_to_bson (filter, &f);
   if (ok) {
      ok = dict_to_bson (master, &kek);
      if (ok && crypt_enter (self)) {
         int64_t n = 0;
         bson_error_t error;
         Py_BEGIN_ALLOW_THREADS
         ok = dj_crypt_rewrap (self->crypt, &f, master == Py_None ? NULL : &kek, &n, &error);
         Py_END_ALLOW_THREADS
         PyThread_release_lock (self->lock);
         result = ok ? PyLong_FromLongLong (n) : map_error (&error);
      }
      bson_destroy (&kek);
   }
   bson_destroy (&f);
   return result;
}

