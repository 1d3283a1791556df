/*
 * What a backup carries of one object: the 512-byte sectors where the new
 * content differs from the old. Upstream's v1 rule keeps one range from the
 * first to the last changed sector; the native rule keeps separate runs and
 * marks all-zero ones, which restore writes as zero ranges. Both read a
 * missing side (NULL) as zeros, as upstream does for an empty inode slot.
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "sheepdog/backup.h"

static const uint8_t zero_sector[SD_BACKUP_SECTOR];

static const uint8_t *sector(const uint8_t *buf, uint32_t s)
{
	return buf ? buf + (size_t)s * SD_BACKUP_SECTOR : zero_sector;
}

static bool sector_same(const uint8_t *old, const uint8_t *new, uint32_t s)
{
	if (!old && !new)
		return true;
	return memcmp(sector(old, s), sector(new, s), SD_BACKUP_SECTOR) == 0;
}

static bool sector_zero(const uint8_t *buf, uint32_t s)
{
	return memcmp(sector(buf, s), zero_sector, SD_BACKUP_SECTOR) == 0;
}

static bool obj_size_ok(uint32_t obj_size)
{
	return obj_size && obj_size % SD_BACKUP_SECTOR == 0;
}

int sd_backup_v1_diff(const void *old, const void *new, uint32_t obj_size,
		      uint32_t *offset, uint32_t *length)
{
	uint32_t first = 0, end;

	if (!obj_size_ok(obj_size))
		return -EINVAL;
	end = obj_size / SD_BACKUP_SECTOR;
	while (first < end && sector_same(old, new, first))
		first++;
	if (first == end)
		return 0;
	while (sector_same(old, new, end - 1))
		end--;
	*offset = first * SD_BACKUP_SECTOR;
	*length = (end - first) * SD_BACKUP_SECTOR;
	return 1;
}

struct diff_out {
	struct sd_backup_extent *ext;
	size_t max;
	size_t nr;
};

static int emit(struct diff_out *o, uint32_t start, uint32_t end, bool zero)
{
	if (o->nr == o->max)
		return -ENOSPC;
	o->ext[o->nr++] = (struct sd_backup_extent){
	    start * SD_BACKUP_SECTOR, (end - start) * SD_BACKUP_SECTOR, zero};
	return 0;
}

/*
 * Splits the run [start, end) into data and zero extents. A short zero
 * span stays inside the data: zstd makes its zeros nearly free, while a
 * separate record costs its header and checksum.
 */
static int emit_run(struct diff_out *o, const uint8_t *new, uint32_t start,
		    uint32_t end, uint32_t gap_sectors)
{
	uint32_t data = start, s = start, z;
	int ret;

	while (s < end) {
		if (!sector_zero(new, s)) {
			s++;
			continue;
		}
		for (z = s; z < end && sector_zero(new, z); z++)
			;
		if (z - s >= gap_sectors || (s == start && z == end)) {
			ret = data < s ? emit(o, data, s, false) : 0;
			if (!ret)
				ret = emit(o, s, z, true);
			if (ret)
				return ret;
			data = z;
		}
		s = z;
	}
	if (data < end)
		return emit(o, data, end, false);
	return 0;
}

int sd_backup_diff(const void *old, const void *new, uint32_t obj_size,
		   uint32_t gap, struct sd_backup_extent *ext, size_t max)
{
	struct diff_out o = {ext, max, 0};
	uint32_t nr_sectors, gap_sectors, s, start = 0, end = 0;
	bool in_run = false;
	int ret;

	if (!obj_size_ok(obj_size))
		return -EINVAL;
	nr_sectors = obj_size / SD_BACKUP_SECTOR;
	gap_sectors = (gap + SD_BACKUP_SECTOR - 1) / SD_BACKUP_SECTOR;
	for (s = 0; s < nr_sectors; s++) {
		if (sector_same(old, new, s))
			continue;
		if (in_run && s - end < gap_sectors) {
			end = s + 1;
			continue;
		}
		if (in_run) {
			ret = emit_run(&o, new, start, end, gap_sectors);
			if (ret)
				return ret;
		}
		start = s;
		end = s + 1;
		in_run = true;
	}
	if (in_run) {
		ret = emit_run(&o, new, start, end, gap_sectors);
		if (ret)
			return ret;
	}
	return o.nr;
}
