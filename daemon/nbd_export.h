/*
 * The export layer under sheep's NBD server: it opens a VDI (the working
 * VDI, or a snapshot by id or tag) as a flat array of bytes, maps byte
 * ranges onto the VDI's data objects through the inode held in memory, and
 * does reads, writes, trims, zeroing and block status through the daemon's
 * own gateway. A writable export owns the VDI's cluster-wide lock for as
 * long as it is open. The NBD wire protocol lives in nbd.c; this layer knows
 * nothing of it beyond the base:allocation flags.
 */
#ifndef SHEEP_NBD_EXPORT_H
#define SHEEP_NBD_EXPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct nbd_export;

/*
 * name: "VDI" (the working VDI, writable unless want_write is false),
 * "VDI:ID" (snapshot id) or "VDI@TAG" (snapshot tag): always read-only.
 * want_write false: open the working VDI read-only without the lock.
 * Returns 0 or -errno (-ENOENT no such VDI/snapshot, -EBUSY locked by
 * another writer, -EINVAL bad name, -ESHUTDOWN cluster not running); msg
 * gets a one-line reason for the client/log. Blocking; call from any thread
 * except the main event-loop thread.
 */
int nbd_export_open(const char *name, bool want_write, struct nbd_export **out,
		    char *msg, size_t msg_len);
uint64_t nbd_export_size(const struct nbd_export *e);
bool nbd_export_readonly(const struct nbd_export *e);
/* can several connections safely share this export (read-only exports)? */
bool nbd_export_multi_conn(const struct nbd_export *e);

/*
 * All I/O: blocking, thread-safe (many requests of one or several
 * connections run concurrently on worker threads), return 0 or -errno
 * (-EIO, -ENOSPC, -EROFS, -ENOTSUP, -EINVAL). Ranges are already checked
 * against the size by the caller.
 */
int nbd_export_read(struct nbd_export *e, uint64_t off, uint32_t len,
		    void *buf);
int nbd_export_read_target(struct nbd_export *e, uint64_t off, uint32_t len,
			   uint64_t *oid, uint32_t *obj_off);
int nbd_export_write(struct nbd_export *e, uint64_t off, uint32_t len,
		     const void *buf, bool fua);
int nbd_export_flush(struct nbd_export *e);
/*
 * TRIM: may release whole objects (the range reads as zeros afterwards only
 * where it released; elsewhere data may stay, which NBD allows).
 */
int nbd_export_trim(struct nbd_export *e, uint64_t off, uint32_t len);
/*
 * WRITE_ZEROES: the range reads as zeros afterwards. may_trim (no NO_HOLE
 * flag): whole objects may be released instead of written. fast
 * (FAST_ZERO): return -ENOTSUP at once, changing nothing, if zeroing would
 * cost as much as writing (some part is not whole objects that can be
 * released).
 */
int nbd_export_zero(struct nbd_export *e, uint64_t off, uint32_t len,
		    bool may_trim, bool fast);
/*
 * base:allocation from the inode: calls fn(arg, length, flags) for
 * consecutive extents starting at off covering at least 1 byte and at most
 * len (stopping early is allowed; at most max_extents calls); flags
 * NBD_STATE_HOLE|NBD_STATE_ZERO for unallocated objects, 0 for allocated.
 * A non-zero return of fn stops the walk and is returned.
 */
int nbd_export_block_status(struct nbd_export *e, uint64_t off, uint32_t len,
			    unsigned max_extents,
			    int (*fn)(void *arg, uint32_t length,
				      uint32_t flags),
			    void *arg);
/* releases the lock (also used on abrupt disconnect); never fails */
void nbd_export_close(struct nbd_export *e);
/* NBD_OPT_LIST: calls fn for every working VDI name; 0 or -errno */
int nbd_export_list(int (*fn)(void *arg, const char *name), void *arg);

/*
 * vdi.c, main thread: this node's lock on vid was released by RELEASE_VDI
 * (dog vdi lock unlock, from any node). A writable export that held it
 * refuses every write from now on (-EPERM): another writer may own the VDI
 * already. Reads go on.
 */
void nbd_export_lock_released(uint32_t vid);

#endif
