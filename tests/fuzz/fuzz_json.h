/*
 * fuzz_json.h -- what the Extended JSON harnesses (fuzz_command.c,
 * fuzz_expr.c) share: the input, any JSON value, parsed by libbson as the
 * value of {"v": <input>}.
 */
#ifndef FUZZ_JSON_H
#define FUZZ_JSON_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <bson/bson.h>

/* true with *wrapper initialised (the caller bson_destroy()s it) and *value
 * on the input's value; false, with nothing to free, when it is not JSON */
static inline bool
fuzz_json_value (const uint8_t *data, size_t size, bson_t *wrapper, bson_iter_t *value)
{
   char *text = malloc (size + 8);
   memcpy (text, "{\"v\": ", 6);
   memcpy (text + 6, data, size);
   memcpy (text + 6 + size, "}", 2);
   bson_error_t error;
   bool parsed = bson_init_from_json (wrapper, text, (ssize_t) (size + 7), &error);
   free (text);
   if (parsed && !bson_iter_init_find (value, wrapper, "v")) {
      bson_destroy (wrapper);
      parsed = false;
   }
   return parsed;
}

#endif
