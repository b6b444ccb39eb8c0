/*
 * test_crypt.c -- src/crypt's contract (dj_crypt.h) on the embedded engine:
 * data keys in the key vault (with its unique keyAltNames index), explicit
 * encryption in both algorithms, decryption, errors, rewrapManyDataKey.
 *
 * https://www.mongodb.com/docs/manual/core/csfle/fundamentals/encryption-algorithms/
 * https://www.mongodb.com/docs/manual/reference/method/KeyVault.rewrapManyDataKey/
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctest.h"
#include "dj_crypt.h"
#include "dj_transport.h"

#define DET "AEAD_AES_256_CBC_HMAC_SHA_512-Deterministic"
#define RND "AEAD_AES_256_CBC_HMAC_SHA_512-Random"

static bson_t *
local_kms (uint8_t first)
{
   uint8_t key[96];
   for (int i = 0; i < 96; i++) {
      key[i] = (uint8_t) (first + i);
   }
   bson_t *kms = bson_new (), local;
   BSON_APPEND_DOCUMENT_BEGIN (kms, "local", &local);
   bson_append_binary (&local, "key", 3, BSON_SUBTYPE_BINARY, key, 96);
   bson_append_document_end (kms, &local);
   return kms;
}

/* the encrypted value of {"v": <bin 6>} (borrowed from doc) */
static const bson_value_t *
v_of (const bson_t *doc, bson_iter_t *it)
{
   return bson_iter_init_find (it, doc, "v") ? bson_iter_value (it) : NULL;
}

static bool
same_binary (const bson_value_t *a, const bson_value_t *b)
{
   return a && b && a->value_type == BSON_TYPE_BINARY && b->value_type == BSON_TYPE_BINARY &&
          a->value.v_binary.data_len == b->value.v_binary.data_len &&
          !memcmp (a->value.v_binary.data, b->value.v_binary.data, a->value.v_binary.data_len);
}

/* the key vault's only key's keyMaterial, copied into out (its length) */
static uint32_t
key_material (dj_transport_t *t, uint8_t *out, uint32_t cap)
{
   bson_t *cmd = J ("{\"find\": \"__keyVault\"}"), reply;
   bson_error_t error;
   bson_iter_t it;
   uint32_t len = 0;
   if (dj_transport_run (t, "encryption", cmd, &reply, &error) &&
       bson_iter_init (&it, &reply) &&
       bson_iter_find_descendant (&it, "cursor.firstBatch.0.keyMaterial", &it) && BSON_ITER_HOLDS_BINARY (&it)) {
      bson_subtype_t st;
      const uint8_t *data;
      bson_iter_binary (&it, &st, &len, &data);
      len = len < cap ? len : cap;
      memcpy (out, data, len);
   }
   bson_destroy (&reply);
   bson_destroy (cmd);
   return len;
}

int
main (void)
{
   setvbuf (stdout, NULL, _IONBF, 0);
   char dir[] = "/tmp/djongo-test-crypt-XXXXXX";
   if (!mkdtemp (dir)) {
      return 2;
   }
   bson_error_t error;
   dj_transport_t *t = dj_transport_open (dir, 0, 0, &error);
   CHECK (t != NULL, "%s", error.message);
   if (!t) {
      return 1;
   }
   bson_t *kms = local_kms (0);
   CHECK (!dj_crypt_new (kms, "novault", dj_transport_run, t, &error) && error.domain == DJ_DOMAIN_CRYPT,
          "a key vault namespace without a dot is refused");
   dj_crypt_t *c = dj_crypt_new (kms, "encryption.__keyVault", dj_transport_run, t, &error);
   CHECK (c != NULL, "%s", error.message);
   CHECK (!strcmp (dj_crypt_key_vault_db (c), "encryption") && !strcmp (dj_crypt_key_vault_coll (c), "__keyVault"),
          "namespace split");

   bson_t *local = J ("{\"provider\": \"local\"}");
   const char *names[] = {"k1"};
   uint8_t id[16];
   CHECK (dj_crypt_create_key (c, local, names, 1, id, &error), "%s", error.message);
   uint8_t id2[16];
   CHECK (!dj_crypt_create_key (c, local, names, 1, id2, &error) && error.domain == DJ_DOMAIN_SERVER &&
             error.code == 11000,
          "a second key named k1: duplicate key, got %u/%u %s", error.domain, error.code, error.message);

   bson_value_t text = {.value_type = BSON_TYPE_UTF8};
   text.value.v_utf8.str = (char *) "123-45-6789";
   text.value.v_utf8.len = 11;
   bson_t e1, e2, r1, r2, clear;
   bson_iter_t i1, i2, i3, i4, ic; /* v_of's values live in their iterators: one each */
   CHECK (dj_crypt_encrypt (c, &text, DET, "k1", NULL, &e1, &error), "%s", error.message);
   CHECK (dj_crypt_encrypt (c, &text, DET, "k1", NULL, &e2, &error), "%s", error.message);
   const bson_value_t *v1 = v_of (&e1, &i1), *v2 = v_of (&e2, &i2);
   CHECK (v1 && v1->value_type == BSON_TYPE_BINARY && v1->value.v_binary.subtype == BSON_SUBTYPE_ENCRYPTED,
          "binary subtype 6");
   CHECK (v1 && v1->value.v_binary.data[0] == 1 && !memcmp (v1->value.v_binary.data + 1, id, 16),
          "deterministic (1), then the key's UUID");
   CHECK (v1 && !memmem (v1->value.v_binary.data, v1->value.v_binary.data_len, "123-45-6789", 11),
          "the clear text is not in the ciphertext");
   CHECK (same_binary (v1, v2), "deterministic: the same bytes twice");
   CHECK (dj_crypt_decrypt (c, v1, &clear, &error), "%s", error.message);
   CHECK (bson_iter_init_find (&ic, &clear, "v") && BSON_ITER_HOLDS_UTF8 (&ic) &&
             !strcmp (bson_iter_utf8 (&ic, NULL), "123-45-6789"),
          "decrypted");
   bson_destroy (&clear);

   bson_t *doc = J ("{\"v\": {\"allergies\": [\"nuts\"]}}");
   bson_iter_t id_it;
   bson_iter_init_find (&id_it, doc, "v");
   CHECK (!dj_crypt_encrypt (c, bson_iter_value (&id_it), DET, "k1", NULL, &r1, &error) &&
             error.domain == DJ_DOMAIN_CRYPT,
          "deterministic encryption refuses a document");
   bson_destroy (&r1);
   CHECK (dj_crypt_encrypt (c, bson_iter_value (&id_it), RND, "k1", NULL, &r1, &error), "%s", error.message);
   CHECK (dj_crypt_encrypt (c, bson_iter_value (&id_it), RND, "k1", NULL, &r2, &error), "%s", error.message);
   const bson_value_t *w1 = v_of (&r1, &i3), *w2 = v_of (&r2, &i4);
   CHECK (w1 && w1->value.v_binary.data[0] == 2, "random (2)");
   CHECK (w1 && w2 && !same_binary (w1, w2), "random: different bytes each time");
   CHECK (dj_crypt_decrypt (c, w2, &clear, &error), "%s", error.message);
   CHECK (bson_iter_init_find (&ic, &clear, "v") && BSON_ITER_HOLDS_DOCUMENT (&ic), "a document back");
   bson_destroy (&clear);

   bson_value_t key_id = {.value_type = BSON_TYPE_BINARY};
   key_id.value.v_binary.subtype = BSON_SUBTYPE_UUID;
   key_id.value.v_binary.data = id;
   key_id.value.v_binary.data_len = 16;
   bson_t by_id;
   bson_iter_t bi;
   CHECK (dj_crypt_encrypt (c, &text, DET, NULL, &key_id, &by_id, &error), "%s", error.message);
   CHECK (same_binary (v_of (&by_id, &bi), v1), "the key by its UUID: the same ciphertext as by its name");
   bson_destroy (&by_id);

   CHECK (!dj_crypt_encrypt (c, &text, DET, "nokey", NULL, &by_id, &error) && error.domain == DJ_DOMAIN_CRYPT,
          "an unknown key name is an error");
   bson_destroy (&by_id);
   CHECK (!dj_crypt_decrypt (c, &text, &clear, &error) && error.domain == DJ_DOMAIN_CRYPT, "text is not decrypted");
   bson_destroy (&clear);

   /* another local master key cannot unwrap the data key */
   bson_t *other_kms = local_kms (1);
   dj_crypt_t *other = dj_crypt_new (other_kms, "encryption.__keyVault", dj_transport_run, t, &error);
   CHECK (other && !dj_crypt_decrypt (other, v1, &clear, &error) && error.domain == DJ_DOMAIN_CRYPT,
          "the wrong master key fails");
   bson_destroy (&clear);
   dj_crypt_destroy (other);
   bson_destroy (other_kms);

   /* rewrapManyDataKey: new keyMaterial, same key: old values still decrypt */
   uint8_t before[512], after[512];
   uint32_t nb = key_material (t, before, sizeof before);
   int64_t n = -1;
   bson_t *none = J ("{\"keyAltNames\": \"nope\"}");
   CHECK (dj_crypt_rewrap (c, none, NULL, &n, &error) && n == 0, "a filter matching no key: 0, got %d %s", (int) n,
          error.message);
   CHECK (dj_crypt_rewrap (c, NULL, local, &n, &error) && n == 1, "one key rewrapped, got %d %s", (int) n,
          error.message);
   uint32_t na = key_material (t, after, sizeof after);
   CHECK (nb > 0 && na > 0 && (na != nb || memcmp (before, after, na)), "the keyMaterial changed");
   dj_crypt_destroy (c); /* a fresh handle: no key cached */
   c = dj_crypt_new (kms, "encryption.__keyVault", dj_transport_run, t, &error);
   CHECK (c && dj_crypt_decrypt (c, v1, &clear, &error), "decrypted after the rewrap: %s", error.message);
   CHECK (bson_iter_init_find (&ic, &clear, "v") && BSON_ITER_HOLDS_UTF8 (&ic) &&
             !strcmp (bson_iter_utf8 (&ic, NULL), "123-45-6789"),
          "same value");
   bson_destroy (&clear);

   bson_destroy (none);
   bson_destroy (doc);
   bson_destroy (&e1);
   bson_destroy (&e2);
   bson_destroy (&r1);
   bson_destroy (&r2);
   bson_destroy (local);
   bson_destroy (kms);
   dj_crypt_destroy (c);
   dj_transport_close (t);
   ctest_rmdir (dir);
   return CTEST_REPORT ("crypt");
}
