/*
 * fuzz_expr -- libFuzzer harness: the aggregation expression language
 * (src/engine/expr). The input is the text of one expression in Extended
 * JSON (any value: literal, "$path", "$$var", {$op: ...}, object, array),
 * parsed by libbson as the value of {"v": <input>}; the expression is parsed
 * (dj_expr_parse) and, when valid, evaluated over documents holding every
 * BSON type: dates at the ends of their range, decimals, the largest and
 * smallest numbers, NaN, nested arrays and documents. Every input must end
 * in a value or a clean error: no crash, no leak, no sanitizer report, no
 * hang (scripts/fuzz.sh expr, dictionary tests/fuzz/expr.dict; replayed on
 * tests/fuzz/corpus/expr by the test command).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dj_expr.h"
#include "fuzz_json.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

/* The documents each expression is evaluated over (canonical Extended JSON). */
static const char *const docs_json[] = {
   "{\"_id\": {\"$oid\": \"5f1b2c3d4e5f60718293a4b5\"}, \"a\": {\"$numberInt\": \"1\"}, \"b\": {\"$numberLong\": "
   "\"9223372036854775807\"}, \"c\": {\"$numberDouble\": \"1.7976931348623157E+308\"}, \"d\": {\"$numberDecimal\": "
   "\"9.999999999999999999999999999999999E+6144\"}, \"s\": \"h\\u00e9llo w\\u00f6rld \\ud83d\\ude00\", \"t\": true, "
   "\"n\": null, \"dt\": {\"$date\": {\"$numberLong\": \"9223372036854775807\"}}, \"arr\": [1, [2, [3, [4]]], "
   "{\"x\": 5}, \"z\"], \"o\": {\"p\": {\"q\": [ {\"r\": 1}, {\"r\": [2, 3]} ]}}}",
   "{\"_id\": 2, \"a\": {\"$numberInt\": \"-2147483648\"}, \"b\": {\"$numberLong\": \"-9223372036854775808\"}, "
   "\"c\": {\"$numberDouble\": \"-0.0\"}, \"d\": {\"$numberDecimal\": \"-1E-6176\"}, \"s\": \"\", \"t\": false, "
   "\"dt\": {\"$date\": {\"$numberLong\": \"-9223372036854775808\"}}, \"arr\": [], \"o\": {}, "
   "\"u\": {\"$undefined\": true}, \"mn\": {\"$minKey\": 1}, \"mx\": {\"$maxKey\": 1}}",
   "{\"_id\": \"three\", \"a\": {\"$numberDouble\": \"NaN\"}, \"b\": {\"$numberDouble\": \"Infinity\"}, "
   "\"c\": {\"$numberDouble\": \"4.9E-324\"}, \"d\": {\"$numberDecimal\": \"NaN\"}, \"s\": \"2021-03-04T05:06:07.089Z\", "
   "\"dt\": {\"$date\": \"2021-03-04T05:06:07.089Z\"}, \"ts\": {\"$timestamp\": {\"t\": 4294967295, \"i\": 1}}, "
   "\"re\": {\"$regularExpression\": {\"pattern\": \"^a.*b$\", \"options\": \"imsx\"}}, "
   "\"bin\": {\"$binary\": {\"base64\": \"AAEC/w==\", \"subType\": \"04\"}}, "
   "\"code\": {\"$code\": \"function () {}\"}, \"cws\": {\"$code\": \"x\", \"$scope\": {\"y\": 1}}, "
   "\"sym\": {\"$symbol\": \"sym\"}, \"ptr\": {\"$dbPointer\": {\"$ref\": \"c\", \"$id\": {\"$oid\": "
   "\"5f1b2c3d4e5f60718293a4b5\"}}}, \"arr\": [{\"$numberDecimal\": \"-Infinity\"}, null, {\"$date\": "
   "{\"$numberLong\": \"0\"}}, [[[[[]]]]], {\"k\": \"v\"}], \"o\": {\"k\": \"v\", \"$weird\": 1, \"dotted.key\": 2}}",
   "{\"_id\": {\"$numberDecimal\": \"0.1\"}, \"a\": {\"$numberInt\": \"2147483647\"}, \"b\": {\"$numberLong\": \"0\"}, "
   "\"c\": {\"$numberDouble\": \"-9.2233720368547758E+18\"}, \"d\": {\"$numberDecimal\": \"1234567890.123456789\"}, "
   "\"s\": \"a,b,,c\", \"dt\": {\"$date\": {\"$numberLong\": \"-62135596800000\"}}, \"arr\": [3, 1, 2, 1, "
   "{\"$numberLong\": \"4\"}, 2.5, \"1\"], \"o\": {\"a\": [{\"b\": 1}, {\"b\": 2}], \"c\": {\"d\": {\"e\": null}}}}",
};
#define NDOCS (sizeof docs_json / sizeof docs_json[0])

static bson_t *docs[NDOCS];
static dj_arena_t *arena;

static void
init (void)
{
   bson_error_t error;
   for (size_t i = 0; i < NDOCS; i++) {
      docs[i] = bson_new_from_json ((const uint8_t *) docs_json[i], -1, &error);
      if (!docs[i]) {
         fprintf (stderr, "fuzz_expr: document %zu: %s\n", i, error.message);
         abort ();
      }
   }
   /* these live for the whole process, as libFuzzer runs it */
   arena = dj_arena_new ();
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
   if (!arena) {
      init ();
   }
   /* {"v": <input>}: the input may be any value, not only a document */
   bson_t wrapper;
   bson_iter_t it;
   bson_error_t error;
   if (!fuzz_json_value (data, size, &wrapper, &it)) {
      return 0;
   }
   dj_vscope_t scope = {"outer", NULL}; /* one variable a command's `let` would bind */
   dj_expr_t *e = dj_expr_parse (bson_iter_value (&it), &scope, &error);
   if (e) {
      for (size_t i = 0; i < NDOCS; i++) {
         dj_eval_t ev;
         dj_eval_init (&ev, arena, docs[i], 1600000000000, &error);
         ev.vars[0].name = "outer";
         ev.vars[0].value = *bson_iter_value (&it);
         ev.nvars = 1;
         bson_value_t out;
         if (dj_expr_eval (e, &ev, &out) && out.value_type != BSON_TYPE_EOD) {
            /* the result must be a value a document can hold */
            bson_t r = BSON_INITIALIZER;
            bson_append_value (&r, "r", 1, &out);
            bson_destroy (&r);
         }
         dj_arena_reset (arena);
      }
      dj_expr_destroy (e);
   }
   bson_destroy (&wrapper);
   return 0;
}
