/*
 * The NBD protocol as sheep speaks it: the fixed newstyle handshake, the
 * options, the transmission requests and replies (simple and structured),
 * and the base:allocation meta context. Constants only, from the NBD
 * protocol document (github.com/NetworkBlockDevice/nbd, doc/proto.md); all
 * integers are big-endian on the wire.
 */
#ifndef SHEEPDOG_NBD_H
#define SHEEPDOG_NBD_H

#include <stdint.h>

#define NBD_DEFAULT_PORT 10809

/* handshake */
#define NBD_MAGIC UINT64_C(0x4e42444d41474943)	   /* "NBDMAGIC" */
#define NBD_IHAVEOPT UINT64_C(0x49484156454F5054) /* "IHAVEOPT" */
#define NBD_REP_MAGIC UINT64_C(0x0003e889045565a9)

/* handshake flags (server, 16 bits) */
#define NBD_FLAG_FIXED_NEWSTYLE (1U << 0)
#define NBD_FLAG_NO_ZEROES (1U << 1)
/* client flags (32 bits) */
#define NBD_FLAG_C_FIXED_NEWSTYLE (1U << 0)
#define NBD_FLAG_C_NO_ZEROES (1U << 1)

/* transmission flags (16 bits) */
#define NBD_FLAG_HAS_FLAGS (1U << 0)
#define NBD_FLAG_READ_ONLY (1U << 1)
#define NBD_FLAG_SEND_FLUSH (1U << 2)
#define NBD_FLAG_SEND_FUA (1U << 3)
#define NBD_FLAG_ROTATIONAL (1U << 4)
#define NBD_FLAG_SEND_TRIM (1U << 5)
#define NBD_FLAG_SEND_WRITE_ZEROES (1U << 6)
#define NBD_FLAG_SEND_DF (1U << 7)
#define NBD_FLAG_CAN_MULTI_CONN (1U << 8)
#define NBD_FLAG_SEND_RESIZE (1U << 9)
#define NBD_FLAG_SEND_CACHE (1U << 10)
#define NBD_FLAG_SEND_FAST_ZERO (1U << 11)

/* options */
#define NBD_OPT_EXPORT_NAME 1
#define NBD_OPT_ABORT 2
#define NBD_OPT_LIST 3
#define NBD_OPT_STARTTLS 5
#define NBD_OPT_INFO 6
#define NBD_OPT_GO 7
#define NBD_OPT_STRUCTURED_REPLY 8
#define NBD_OPT_LIST_META_CONTEXT 9
#define NBD_OPT_SET_META_CONTEXT 10

/* option replies */
#define NBD_REP_ACK 1
#define NBD_REP_SERVER 2
#define NBD_REP_INFO 3
#define NBD_REP_META_CONTEXT 4
#define NBD_REP_FLAG_ERROR (1U << 31)
#define NBD_REP_ERR_UNSUP (1U | NBD_REP_FLAG_ERROR)
#define NBD_REP_ERR_POLICY (2U | NBD_REP_FLAG_ERROR)
#define NBD_REP_ERR_INVALID (3U | NBD_REP_FLAG_ERROR)
#define NBD_REP_ERR_PLATFORM (4U | NBD_REP_FLAG_ERROR)
#define NBD_REP_ERR_TLS_REQD (5U | NBD_REP_FLAG_ERROR)
#define NBD_REP_ERR_UNKNOWN (6U | NBD_REP_FLAG_ERROR)
#define NBD_REP_ERR_SHUTDOWN (7U | NBD_REP_FLAG_ERROR)
#define NBD_REP_ERR_BLOCK_SIZE_REQD (8U | NBD_REP_FLAG_ERROR)
#define NBD_REP_ERR_TOO_BIG (9U | NBD_REP_FLAG_ERROR)

/* NBD_REP_INFO types */
#define NBD_INFO_EXPORT 0
#define NBD_INFO_NAME 1
#define NBD_INFO_DESCRIPTION 2
#define NBD_INFO_BLOCK_SIZE 3

/* transmission */
#define NBD_REQUEST_MAGIC 0x25609513U
#define NBD_SIMPLE_REPLY_MAGIC 0x67446698U
#define NBD_STRUCTURED_REPLY_MAGIC 0x668e33efU
#define NBD_REQUEST_SIZE 28
#define NBD_SIMPLE_REPLY_SIZE 16
#define NBD_STRUCTURED_REPLY_SIZE 20

/* commands */
#define NBD_CMD_READ 0
#define NBD_CMD_WRITE 1
#define NBD_CMD_DISC 2
#define NBD_CMD_FLUSH 3
#define NBD_CMD_TRIM 4
#define NBD_CMD_CACHE 5
#define NBD_CMD_WRITE_ZEROES 6
#define NBD_CMD_BLOCK_STATUS 7
#define NBD_CMD_RESIZE 8

/* command flags */
#define NBD_CMD_FLAG_FUA (1U << 0)
#define NBD_CMD_FLAG_NO_HOLE (1U << 1)
#define NBD_CMD_FLAG_DF (1U << 2)
#define NBD_CMD_FLAG_REQ_ONE (1U << 3)
#define NBD_CMD_FLAG_FAST_ZERO (1U << 4)

/* structured reply flags and types */
#define NBD_REPLY_FLAG_DONE (1U << 0)
#define NBD_REPLY_TYPE_NONE 0
#define NBD_REPLY_TYPE_OFFSET_DATA 1
#define NBD_REPLY_TYPE_OFFSET_HOLE 2
#define NBD_REPLY_TYPE_BLOCK_STATUS 5
#define NBD_REPLY_TYPE_ERROR 32769
#define NBD_REPLY_TYPE_ERROR_OFFSET 32770

/* errors (NBD values, not errno) */
#define NBD_EPERM 1
#define NBD_EIO 5
#define NBD_ENOMEM 12
#define NBD_EINVAL 22
#define NBD_ENOSPC 28
#define NBD_EOVERFLOW 75
#define NBD_ENOTSUP 95
#define NBD_ESHUTDOWN 108

/* base:allocation flags */
#define NBD_STATE_HOLE (1U << 0)
#define NBD_STATE_ZERO (1U << 1)

#define NBD_META_BASE_ALLOCATION "base:allocation"

/* limits of this server: advertised in NBD_INFO_BLOCK_SIZE */
#define NBD_MAX_NAME 4096
#define NBD_MAX_OPTION_LEN 65536
#define NBD_MIN_BLOCK 1
#define NBD_PREFERRED_BLOCK 4096
#define NBD_MAX_PAYLOAD (32U << 20)
/* concurrent connections of one sheep: default and largest setting */
#define NBD_DEFAULT_CONNECTIONS 64
#define NBD_MAX_CONNECTIONS 4096

#endif
