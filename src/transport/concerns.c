/*
 * concerns.c -- a connection's read preference, read concern and write
 * concern: the connection options' (for the embedded engine, which has no
 * URI), and those a caller sets for what runs next
 * (dj_transport_set_concerns(): djongo.concerns()).
 *
 * They are parsed by the URI code (uri.c), so the names, values and
 * errors are those of the connection string's options, and then judged
 * for the transport: a MongoDB deployment takes any valid one; the
 * embedded engine is one node, the primary of a one-member replica set,
 * so a read preference that only a secondary (or a tagged member) can
 * serve is refused, as server selection would find no member for it.
 * https://www.mongodb.com/docs/manual/core/read-preference/
 * https://www.mongodb.com/docs/manual/reference/read-concern/
 * https://www.mongodb.com/docs/manual/reference/write-concern/
 */
#include <string.h>

#include "dj_transport.h"
#include "transport-private.h"

static const char *const concern_keys[] = {MONGOC_URI_READPREFERENCE, MONGOC_URI_READPREFERENCETAGS,
                                           MONGOC_URI_MAXSTALENESSSECONDS, MONGOC_URI_READCONCERNLEVEL,
                                           MONGOC_URI_W, MONGOC_URI_WTIMEOUTMS, MONGOC_URI_JOURNAL};

bool
dj_concerns_key (const char *key)
{
   for (size_t i = 0; i < sizeof concern_keys / sizeof concern_keys[0]; i++) {
      if (!strcasecmp (key, concern_keys[i])) {
         return true;
      }
   }
   return false;
}

void
dj_concerns_clear (dj_concerns_t *c)
{
   mongoc_read_prefs_destroy (c->read_prefs);
   mongoc_read_concern_destroy (c->read_concern);
   mongoc_write_concern_destroy (c->write_concern);
   memset (c, 0, sizeof *c);
}

/* Whether any member of a one-member set (its primary, untagged) can serve
 * reads with @p rp: primary, primaryPreferred and secondaryPreferred read
 * it; nearest reads it when a tag set is empty (or none is given);
 * secondary never does. */
static bool
one_node_can_serve (const mongoc_read_prefs_t *rp)
{
   switch (mongoc_read_prefs_get_mode (rp)) {
   case MONGOC_READ_SECONDARY:
      return false;
   case MONGOC_READ_NEAREST: {
      const bson_t *tags = mongoc_read_prefs_get_tags (rp);
      bson_iter_t it;
      if (bson_empty (tags)) {
         return true;
      }
      bson_iter_init (&it, tags);
      while (bson_iter_next (&it)) {
         uint32_t len;
         const uint8_t *data;
         if (BSON_ITER_HOLDS_DOCUMENT (&it)) {
            bson_iter_document (&it, &len, &data);
            if (len <= 5) { /* {}: any member */
               return true;
            }
         }
      }
      return false;
   }
   default:
      return true;
   }
}

bool
dj_concerns_parse (const bson_t *doc, bool embedded, bool only_concerns, dj_concerns_t *out, bson_error_t *error)
{
   bson_iter_t it;
   bool rp = false, rc = false, wc = false;
   memset (out, 0, sizeof *out);
   if (!doc || !bson_iter_init (&it, doc)) {
      return true;
   }
   bson_t picked = BSON_INITIALIZER;
   while (bson_iter_next (&it)) {
      const char *key = bson_iter_key (&it);
      if (!dj_concerns_key (key)) {
         if (only_concerns) {
            bson_destroy (&picked);
            return bson_set_error (error, MONGOC_ERROR_COMMAND, MONGOC_ERROR_COMMAND_INVALID_ARG,
                                   "'%s' is not a read preference, read concern or write concern option", key),
                   false;
         }
         continue;
      }
      if (BSON_ITER_HOLDS_NULL (&it)) {
         continue;
      }
      bson_append_iter (&picked, NULL, 0, &it);
      rp |= !strcasecmp (key, MONGOC_URI_READPREFERENCE) || !strcasecmp (key, MONGOC_URI_READPREFERENCETAGS) ||
            !strcasecmp (key, MONGOC_URI_MAXSTALENESSSECONDS);
      rc |= !strcasecmp (key, MONGOC_URI_READCONCERNLEVEL);
      wc |= !strcasecmp (key, MONGOC_URI_W) || !strcasecmp (key, MONGOC_URI_WTIMEOUTMS) ||
            !strcasecmp (key, MONGOC_URI_JOURNAL);
   }
   mongoc_uri_t *uri = dj_transport_uri ("localhost", &picked, error);
   bson_destroy (&picked);
   if (!uri) {
      return false;
   }
   if (rp) {
      out->read_prefs = mongoc_read_prefs_copy (mongoc_uri_get_read_prefs_t (uri));
   }
   if (rc) {
      out->read_concern = mongoc_read_concern_copy (mongoc_uri_get_read_concern (uri));
   }
   if (wc) {
      out->write_concern = mongoc_write_concern_copy (mongoc_uri_get_write_concern (uri));
   }
   mongoc_uri_destroy (uri);
   if (embedded && out->read_prefs && !one_node_can_serve (out->read_prefs)) {
      dj_concerns_clear (out);
      /* libmongoc's words for a selection that finds no member */
      return bson_set_error (error, MONGOC_ERROR_SERVER_SELECTION, MONGOC_ERROR_SERVER_SELECTION_FAILURE,
                             "No suitable servers found: the embedded engine is one node, the primary, which "
                             "this read preference does not read from"),
             false;
   }
   return true;
}
