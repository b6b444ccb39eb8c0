/* crypt-private.h -- what crypt.c and kms.c share (not installed). */
#ifndef DJ_CRYPT_PRIVATE_H
#define DJ_CRYPT_PRIVATE_H

#include <bson/bson.h>
#include <mongocrypt.h>

/* One KMS request of a context in MONGOCRYPT_CTX_NEED_KMS: its message sent
 * to the provider's endpoint over TLS and the reply fed back until
 * libmongocrypt needs no more bytes (kms.c). */
bool dj_crypt_kms_exchange (mongocrypt_kms_ctx_t *kms, bson_error_t *error);

#endif
