/*
 * dj_crypt.h -- client-side field-level encryption (CSFLE): explicit
 * encryption and decryption of single values, data keys and their
 * rewrapping, on libmongocrypt's context state machine
 * (https://www.mongodb.com/docs/manual/core/csfle/fundamentals/manual-encryption/).
 *
 * Files: crypt.c (the state machine, the key vault through a
 * dj_run_command_fn: the same seam statements run over, so it works alike
 * on the embedded engine and on MongoDB through libmongoc), kms.c (a KMS
 * provider's request over TLS, for the providers other than "local").
 *
 * Algorithms (MongoDB's names): AEAD_AES_256_CBC_HMAC_SHA_512-Deterministic
 * (the same value under the same key gives the same bytes: an equality
 * filter on the ciphertext finds it) and AEAD_AES_256_CBC_HMAC_SHA_512-Random
 * (a fresh IV each time: nothing can be looked up).
 * https://www.mongodb.com/docs/manual/core/csfle/fundamentals/encryption-algorithms/
 *
 * The encrypted value is BSON binary subtype 6; its first byte is the
 * algorithm (1 deterministic, 2 random), then the data key's UUID.
 *
 * Errors: DJ_DOMAIN_CRYPT with libmongocrypt's status code (its message
 * kept), or whatever the run-command seam reported for a key vault command.
 *
 * Threads: a dj_crypt_t serves one connection, one thread at a time (the
 * seam's rule); libmongocrypt's own key cache is internal to it.
 */
#ifndef DJ_CRYPT_H
#define DJ_CRYPT_H

#include <bson/bson.h>

#include "dj_error.h"
#include "dj_exec.h"

typedef struct dj_crypt dj_crypt_t;

/**
 * Makes a crypt handle.
 * @param kms_providers borrowed: MongoDB's kmsProviders document
 *        ({"local": {"key": <96 bytes: binary or base64 text>}, "aws":
 *        {...}, "azure": {...}, "gcp": {...}, "kmip": {...}}), each given
 *        to libmongocrypt as is.
 * @param key_vault "db.collection" of the data keys.
 * @param run, run_ctx the seam the key vault is read and written through;
 *        run_ctx borrowed: must outlive the handle.
 * @return owned by the caller (dj_crypt_destroy), or NULL.
 */
dj_crypt_t *dj_crypt_new (const bson_t *kms_providers, const char *key_vault, dj_run_command_fn run, void *run_ctx,
                          bson_error_t *error);

void dj_crypt_destroy (dj_crypt_t *c);

/** The key vault namespace's database and collection (borrowed: valid
 *  while @p c lives). */
const char *dj_crypt_key_vault_db (const dj_crypt_t *c);
const char *dj_crypt_key_vault_coll (const dj_crypt_t *c);

/**
 * Encrypts one value with the data key named @p key_alt_name, or whose
 * UUID is @p key_id (exactly one of the two; key_id a binary subtype 4).
 * @param algorithm one of the two names above.
 * @param[out] out initialised here: {"v": <binary subtype 6>}; the caller
 *             destroys it, also on failure.
 */
bool dj_crypt_encrypt (dj_crypt_t *c, const bson_value_t *value, const char *algorithm, const char *key_alt_name,
                       const bson_value_t *key_id, bson_t *out, bson_error_t *error);

/**
 * Decrypts a binary subtype 6 value.
 * @param[out] out initialised here: {"v": <the clear value>}; the caller
 *             destroys it, also on failure.
 */
bool dj_crypt_decrypt (dj_crypt_t *c, const bson_value_t *value, bson_t *out, bson_error_t *error);

/**
 * Creates a data key (96 random bytes wrapped by the KMS provider's master
 * key) and inserts it into the key vault, as ClientEncryption.createDataKey
 * does; the key vault's unique partial index on keyAltNames is made first
 * (https://www.mongodb.com/docs/manual/core/csfle/fundamentals/create-schema/
 * "Create a Unique Index on your Key Vault collection").
 * @param master_key borrowed: {"provider": "local"} or the provider's
 *        masterKey fields (libmongocrypt's key encryption key document).
 * @param alt_names, n keyAltNames (may be 0).
 * @param[out] key_id set to the new key's UUID (binary subtype 4, 16 bytes).
 */
bool dj_crypt_create_key (dj_crypt_t *c, const bson_t *master_key, const char *const *alt_names, int n,
                          uint8_t key_id[16], bson_error_t *error);

/**
 * rewrapManyDataKey: the data keys matching @p filter (borrowed; NULL:
 * all) decrypted with their master key and wrapped again -- with
 * @p master_key when given (moving them to that provider/key), else with
 * the one each has -- and written back: keyMaterial, masterKey and
 * updateDate change, the key's _id and keyAltNames do not, so values
 * encrypted before stay readable.
 * https://www.mongodb.com/docs/manual/reference/method/KeyVault.rewrapManyDataKey/
 * @param[out] n how many keys were rewrapped.
 */
bool dj_crypt_rewrap (dj_crypt_t *c, const bson_t *filter, const bson_t *master_key, int64_t *n,
                      bson_error_t *error);

#endif
