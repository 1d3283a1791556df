/*
 * Export names and object ranges for the NBD export layer (nbd_export.c):
 * no I/O, no daemon state, so tests/unit/test_nbd_export.c links it alone.
 */
#include <errno.h>
#include <string.h>

#include "nbd_export_name.h"

static bool all_digits(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

int nbd_export_parse_name(const char *s, struct nbd_export_name *n,
			  const char **why)
{
	const char *at = strchr(s, '@'), *colon = strrchr(s, ':');
	size_t name_len = strlen(s);

	memset(n, 0, sizeof(*n));
	*why = NULL;
	if (at) {
		name_len = at - s;
		if (!at[1]) {
			*why = "empty snapshot tag after '@'";
			return -EINVAL;
		}
		if (strlen(at + 1) >= SD_MAX_VDI_TAG_LEN) {
			*why = "snapshot tag longer than 255 bytes";
			return -EINVAL;
		}
		strcpy(n->tag, at + 1);
	} else if (colon && all_digits(colon + 1)) {
		unsigned long long id = 0;

		for (const char *d = colon + 1; *d; d++) {
			id = id * 10 + (*d - '0');
			if (id > UINT32_MAX) {
				*why = "snapshot id out of range";
				return -EINVAL;
			}
		}
		if (id == 0) {
			*why = "snapshot id 0 (ids start at 1)";
			return -EINVAL;
		}
		n->snapid = id;
		name_len = colon - s;
	}
	if (name_len == 0) {
		*why = "empty VDI name";
		return -EINVAL;
	}
	if (name_len >= SD_MAX_VDI_LEN) {
		*why = "VDI name longer than 255 bytes";
		return -EINVAL;
	}
	memcpy(n->vdi, s, name_len);
	return 0;
}

void obj_range_init(struct obj_range *r, uint64_t off, uint32_t len,
		    uint8_t shift)
{
	r->off = r->start = off;
	r->end = off + len;
	r->shift = shift;
}

bool obj_range_next(struct obj_range *r, struct obj_piece *p)
{
	uint64_t obj_size = UINT64_C(1) << r->shift, in_obj, len;

	if (r->off >= r->end)
		return false;
	in_obj = r->off & (obj_size - 1);
	len = obj_size - in_obj;
	if (len > r->end - r->off)
		len = r->end - r->off;
	p->idx = (uint32_t)(r->off >> r->shift);
	p->off = (uint32_t)in_obj;
	p->len = (uint32_t)len;
	p->pos = r->off - r->start;
	r->off += len;
	return true;
}
