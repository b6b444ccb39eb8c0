/*
 * dj_wire.h -- MongoDB's wire protocol: turning messages into commands and
 * replies into messages. Pure functions over bytes (no sockets), so the
 * fuzzer and the tests drive them directly.
 *
 * What a client may send (https://www.mongodb.com/docs/manual/reference/mongodb-wire-protocol/):
 *   - OP_MSG (2013): flag bits, one body section (kind 0) and any number of
 *     document sequences (kind 1: "documents" of an insert, "updates"...),
 *     optionally a CRC-32C checksum; the command is the body with each
 *     sequence folded in as an array field. moreToCome: no reply is wanted.
 *   - OP_QUERY (2004) on "<db>.$cmd": only the legacy handshake drivers
 *     still open with (isMaster/hello), answered with OP_REPLY (1).
 *   - OP_COMPRESSED (2012) wrapping either of them, with a compressor the
 *     server has enabled (compress.c: dj_wire_decompress()); the reply is
 *     compressed the same way (dj_wire_compress()).
 * Anything else (the removed legacy opcodes, a malformed or oversized
 * message, a compressed one that does not decompress to its stated size)
 * is an error: the server closes that connection.
 *
 * Limits, checked before anything is allocated: a message is at most
 * DJ_WIRE_MAX_MESSAGE bytes (what hello reports as maxMessageSizeBytes),
 * each document at most 16 MiB + 16 KiB (room for the command around a
 * maximum-size document, as mongod allows).
 */
#ifndef DJ_WIRE_H
#define DJ_WIRE_H

#include <bson/bson.h>

#include "dj_buf.h"
#include "dj_error.h"

#define DJ_WIRE_HEADER 16
#define DJ_WIRE_MAX_MESSAGE 48000000
#define DJ_WIRE_MAX_DOCUMENT (16 * 1024 * 1024 + 16 * 1024)

enum { DJ_OP_REPLY = 1, DJ_OP_QUERY = 2004, DJ_OP_COMPRESSED = 2012, DJ_OP_MSG = 2013 };

/* OP_MSG flag bits */
enum { DJ_MSG_CHECKSUM = 1u << 0, DJ_MSG_MORE_TO_COME = 1u << 1, DJ_MSG_EXHAUST_ALLOWED = 1u << 16 };

typedef struct {
   int32_t length, request_id, response_to, opcode;
} dj_wire_header_t;

/**
 * Reads the 16-byte header at @p p.
 * @return false (error: domain DJ_DOMAIN_SERVER, code 9 FailedToParse or
 *         10334 BSONObjectTooLarge) when the length is below 16 or above
 *         DJ_WIRE_MAX_MESSAGE.
 */
bool dj_wire_read_header (const uint8_t *p, dj_wire_header_t *h, bson_error_t *error);

typedef struct {
   bson_t *cmd;      /* owned: the command, document sequences folded in */
   char db[128];     /* the database ($db, or OP_QUERY's "<db>.$cmd") */
   uint32_t flags;   /* OP_MSG flag bits */
   bool legacy;      /* OP_QUERY: answer with OP_REPLY */
} dj_wire_request_t;

/**
 * Parses a message body (the @p len bytes after the header). The body must
 * follow its 16 header bytes in memory: OP_MSG's checksum covers both.
 * @param[out] out initialised on success only; dj_wire_request_cleanup().
 * @return false with @p error set for a malformed message.
 */
bool dj_wire_parse (const dj_wire_header_t *h, const uint8_t *body, size_t len, dj_wire_request_t *out,
                    bson_error_t *error);

void dj_wire_request_cleanup (dj_wire_request_t *r);

/** Appends to @p out the reply message (OP_MSG, or OP_REPLY for a legacy
 *  request) answering @p h with document @p reply. */
void dj_wire_reply (const dj_wire_header_t *h, const dj_wire_request_t *r, const bson_t *reply, int32_t request_id,
                    dj_buf_t *out);
/* The same, answering request response_to, with moreToCome set when more
 * replies follow without requests (an exhaust cursor's batches). */
void dj_wire_reply_to (const dj_wire_request_t *r, const bson_t *reply, int32_t request_id, int32_t response_to,
                       bool more_to_come, dj_buf_t *out);

/* compressorId values (https://www.mongodb.com/docs/manual/reference/mongodb-wire-protocol/#op_compressed) */
enum { DJ_COMPRESSOR_NOOP = 0, DJ_COMPRESSOR_SNAPPY = 1, DJ_COMPRESSOR_ZLIB = 2, DJ_COMPRESSOR_ZSTD = 3, DJ_COMPRESSORS = 4 };
/* mongod's default --networkMessageCompressors */
#define DJ_COMPRESSORS_DEFAULT "snappy,zstd,zlib"

/** "noop", "snappy", "zlib", "zstd"; NULL for another id. */
const char *dj_compressor_name (int id);
/** The id of a compressor's name, or -1. */
int dj_compressor_id (const char *name);

/**
 * Unwraps OP_COMPRESSED: @p msg is the whole message (header @p h, then
 * h->length - 16 body bytes). Only the compressors whose bit (1 << id) is
 * in @p allowed are accepted.
 * @param[out] out the original message, header rebuilt (bson_free() it);
 *             @p inner its header, @p compressor the id it came with.
 * @return false (out untouched) with @p error set: truncated, an unknown or
 *         disabled compressor, a wrapped opcode other than OP_MSG/OP_QUERY,
 *         uncompressedSize over the maximum message size, data that does
 *         not decompress to exactly uncompressedSize bytes.
 */
bool dj_wire_decompress (const dj_wire_header_t *h, const uint8_t *msg, unsigned allowed, uint8_t **out,
                         dj_wire_header_t *inner, int *compressor, bson_error_t *error);

/** Rewrites the message at out->data + start (to out->len) as OP_COMPRESSED
 *  with compressor @p id; false (message unchanged) if the codec failed. */
bool dj_wire_compress (dj_buf_t *out, size_t start, int id);

/** CRC-32C (Castagnoli), OP_MSG's checksum. */
uint32_t dj_wire_crc32c (const uint8_t *p, size_t n);

#endif
