/*
 * The pure arithmetic of the NBD export layer, kept apart so that it can be
 * unit tested without a daemon: parsing an export name into a VDI name and
 * an optional snapshot id or tag, and cutting a byte range of a VDI into
 * pieces that each lie inside one data object.
 */
#ifndef SHEEP_NBD_EXPORT_NAME_H
#define SHEEP_NBD_EXPORT_NAME_H

#include <stdbool.h>
#include <stdint.h>

#include "sheepdog/layout.h"

struct nbd_export_name {
	char vdi[SD_MAX_VDI_LEN];     /* NUL-terminated, 1..255 bytes */
	char tag[SD_MAX_VDI_TAG_LEN]; /* "" unless "VDI@TAG" */
	uint32_t snapid;	      /* 0 unless "VDI:ID" */
};

/*
 * "VDI" (the working VDI), "VDI@TAG" (a snapshot by tag: the first '@'
 * separates, so a tag may contain anything) or "VDI:ID" (a snapshot by id:
 * the last ':' followed by decimal digits only, a number from 1 to
 * 2^32-1). A ':' followed by anything else is part of the VDI name. Names
 * and tags are 1 to 255 bytes. 0, or -EINVAL with *why set to the reason.
 */
int nbd_export_parse_name(const char *s, struct nbd_export_name *n,
			  const char **why);

/* Is the parsed name a snapshot (always exported read-only)? */
static inline bool nbd_export_name_is_snapshot(const struct nbd_export_name *n)
{
	return n->tag[0] || n->snapid;
}

/* One part of a byte range that lies inside data object idx. */
struct obj_piece {
	uint32_t idx;
	uint32_t off; /* inside the object */
	uint32_t len;
	uint64_t pos; /* offset of the piece from the start of the range */
};

/* Walks [off, off + len) of a VDI with objects of 2^shift bytes. */
struct obj_range {
	uint64_t off, end, start;
	uint8_t shift;
};

void obj_range_init(struct obj_range *r, uint64_t off, uint32_t len,
		    uint8_t shift);
/* The next piece, false when the range is done. */
bool obj_range_next(struct obj_range *r, struct obj_piece *p);

/* Does the piece cover its whole object (2^shift bytes)? */
static inline bool obj_piece_whole(const struct obj_piece *p, uint8_t shift)
{
	return p->off == 0 && (uint64_t)p->len == UINT64_C(1) << shift;
}

#endif
