/*
 * cmd_param.c -- setParameter: the server parameters the engine reads.
 *
 * https://www.mongodb.com/docs/manual/reference/command/setParameter/
 * https://www.mongodb.com/docs/manual/reference/parameters/#mongodb-parameter-param.internalQueryMaxBlockingSortMemoryUsageBytes
 *
 *   internalQueryMaxBlockingSortMemoryUsageBytes   what a $sort may hold
 *   internalDocumentSourceGroupMaxMemoryBytes      what a $group ($bucket,
 *                                                  $bucketAuto) may hold
 *   allowDiskUseByDefault                          a boolean: whether a command
 *                                                  without allowDiskUse may spill
 *                                                  past them (true, as mongod 6.0+)
 *
 * Both 100 MiB by default, as mongod's; past them a stage spills to
 * temporary files (storage/spill.c), or fails with 292 under allowDiskUse
 * false (the command's, else allowDiskUseByDefault's). They are the handle's (dj_engine_t), read
 * and written atomically: commands on other threads see a change at once.
 * The reply's `was` is the value before, as mongod's.
 */
#include "dj_commands.h"

static const struct {
   const char *name;
   int which; /* DJ_PARAM_* */
} params[] = {
   {"internalQueryMaxBlockingSortMemoryUsageBytes", DJ_PARAM_SORT_BYTES},
   {"internalDocumentSourceGroupMaxMemoryBytes", DJ_PARAM_GROUP_BYTES},
   {"allowDiskUseByDefault", DJ_PARAM_DISK_BY_DEFAULT},
};

bool
dj_cmd_set_parameter (dj_engine_t *e, const char *db, const bson_t *cmd, bson_t *reply, bson_error_t *error)
{
   bson_iter_t it;
   if (strcmp (db, "admin")) {
      return dj_err (error, DJ_Unauthorized, "setParameter may only be run against the admin database.");
   }
   bson_iter_init (&it, cmd);
   bson_iter_next (&it); /* setParameter: 1 */
   int set = 0;
   while (bson_iter_next (&it)) {
      const char *k = bson_iter_key (&it);
      if (k[0] == '$' || !strcmp (k, "lsid") || !strcmp (k, "comment")) {
         continue; /* the envelope's fields */
      }
      int which = -1;
      for (size_t i = 0; i < sizeof params / sizeof params[0]; i++) {
         if (!strcmp (params[i].name, k)) {
            which = params[i].which;
         }
      }
      if (which < 0) {
         return dj_err (error, DJ_InvalidOptions, "attempted to set unrecognized parameter [%s], use help:true to see options ", k);
      }
      int64_t v;
      if (which == DJ_PARAM_DISK_BY_DEFAULT) {
         if (!BSON_ITER_HOLDS_BOOL (&it)) {
            return dj_err (error, DJ_BadValue, "%s must be a boolean", k);
         }
         v = bson_iter_bool (&it) ? 1 : -1;
      } else if (!BSON_ITER_HOLDS_NUMBER (&it) || !dj_value_as_int64_exact (bson_iter_value (&it), &v) || v <= 0) {
         return dj_err (error, DJ_BadValue, "%s must be a positive integer", k);
      }
      if (set++) {
         return dj_err (error, DJ_BadValue, "setParameter sets one parameter at a time here");
      }
      if (which == DJ_PARAM_DISK_BY_DEFAULT) {
         BSON_APPEND_BOOL (reply, "was", dj_engine_param (e, which) > 0);
      } else {
         BSON_APPEND_INT64 (reply, "was", dj_engine_param (e, which));
      }
      dj_engine_param_set (e, which, v);
   }
   if (!set) {
      return dj_err (error, DJ_BadValue, "no option found to set, use help:true to see options ");
   }
   BSON_APPEND_DOUBLE (reply, "ok", 1.0);
   return true;
}
