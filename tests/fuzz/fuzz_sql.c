/*
 * fuzz_sql -- libFuzzer harness: SQL text -> tokenizer, parser, compiler.
 *
 * The input's first byte picks how many %s parameters to bind and of which
 * BSON types (so binding paths run with hostile values too: documents that
 * look like operators, NULLs, strings where numbers belong); the rest is the
 * SQL. Everything must end in a plan or a clean error: no crash, no leak, no
 * undefined behaviour (built with -fsanitize=fuzzer,address,undefined by
 * scripts/fuzz.sh; replayed on the corpus by replay.c in the test command).
 */
#include <stdint.h>
#include <string.h>

#include "dj_compile.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
   if (size < 1) {
      return 0;
   }
   uint8_t mode = data[0];
   const char *sql = (const char *) data + 1;
   size_t len = size - 1;
   bson_error_t error;
   dj_plan_t *plan = dj_plan_new (sql, len, &error);
   if (!plan) {
      return 0;
   }
   int n = dj_plan_nparams (plan);
   if (n > 64) {
      n = 64;
   }
   bson_t holder = BSON_INITIALIZER, op;
   BSON_APPEND_DOCUMENT_BEGIN (&holder, "op", &op);
   BSON_APPEND_UTF8 (&op, "$gt", "");
   bson_append_document_end (&holder, &op);
   bson_value_t params[64];
   bson_iter_t it;
   bson_iter_init_find (&it, &holder, "op");
   for (int i = 0; i < n; i++) {
      bson_value_t *v = &params[i];
      memset (v, 0, sizeof *v);
      switch ((mode + i) % 6) {
      case 0: v->value_type = BSON_TYPE_INT32; v->value.v_int32 = i; break;
      case 1: v->value_type = BSON_TYPE_NULL; break;
      case 2: v->value_type = BSON_TYPE_UTF8; v->value.v_utf8.str = (char *) "%a\\_$x"; v->value.v_utf8.len = 6; break;
      case 3: v->value_type = BSON_TYPE_DOUBLE; v->value.v_double = -0.5; break;
      case 4: v->value_type = BSON_TYPE_INT64; v->value.v_int64 = INT64_MIN; break;
      default: *v = *bson_iter_value (&it); break; /* {"$gt": ""} */
      }
   }
   dj_mql_t m;
   /* the right count, and (odd modes) a wrong one: both must be handled */
   if (dj_plan_bind (plan, "fuzz", params, (mode & 1) ? n + 1 : n, &m, &error)) {
      for (int i = 0; i < m.ncommands; i++) {
         char *j = bson_as_canonical_extended_json (m.commands[i], NULL);
         bson_free (j);
      }
      dj_mql_cleanup (&m);
   }
   bson_destroy (&holder);
   dj_plan_destroy (plan);
   return 0;
}
