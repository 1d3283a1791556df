/*
 * "dog vdi snapshot", "clone" and "rollback": the copy-on-write side of
 * VDIs. The sheep does the metadata work in NEW_VDI (the frozen inode, the
 * new inode sharing every object); dog only names what to derive from,
 * writes the snapshot tag into the current inode first (as upstream's dog
 * and QEMU do), and for clone -P / -n copies the data into the clone's own
 * objects.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dog.h"
#include "sheepdog/le.h"

int dog_new_vdi(const char *name, uint64_t size, uint32_t base_vid,
		uint32_t snapid, uint8_t copies, uint8_t copy_policy,
		uint8_t store_policy, uint8_t block_size_shift, uint32_t *vid)
{
	char buf[SD_MAX_VDI_LEN] = {0};
	struct sd_req req;
	struct sd_rsp rsp;

	if (strlen(name) >= SD_MAX_VDI_LEN) {
		sd_err("VDI name is too long: %zu bytes, at most %d",
		       strlen(name), SD_MAX_VDI_LEN - 1);
		return EXIT_USAGE;
	}
	put_fixed_str(buf, sizeof(buf), name);
	sd_init_req(&req, SD_OP_NEW_VDI);
	req.flags = SD_FLAG_CMD_WRITE;
	req.data_length = sizeof(buf);
	req.vdi.vdi_size = size;
	req.vdi.base_vdi_id = base_vid;
	req.vdi.snapid = snapid;
	req.vdi.copies = copies;
	req.vdi.copy_policy = copy_policy;
	req.vdi.store_policy = store_policy;
	req.vdi.block_size_shift = block_size_shift;
	if (dog_exec(&req, buf, NULL, 0, &rsp) < 0)
		return EXIT_SYSFAIL;
	if (rsp.result != SD_RES_SUCCESS) {
		sd_err("Failed to create VDI %s: %s", name,
		       sd_strerror(rsp.result));
		return EXIT_FAILURE;
	}
	*vid = rsp.vdi.vdi_id;
	return EXIT_SUCCESS;
}

int dog_snapshot_vdi(const char *name, const struct sd_inode_header *h,
		     const char *tag, uint32_t *new_vid)
{
	char field[SD_MAX_VDI_TAG_LEN] = {0};

	put_fixed_str(field, sizeof(field), tag);
	if (dog_write_object(vid_to_vdi_oid(h->vdi_id), 0, field,
			     sizeof(field), SD_INODE_OFF_TAG, 0, h->nr_copies,
			     h->copy_policy, false) != SD_RES_SUCCESS)
		return EXIT_FAILURE;
	return dog_new_vdi(name, h->vdi_size, h->vdi_id, h->snap_id,
			   h->nr_copies, h->copy_policy, h->store_policy,
			   h->block_size_shift, new_vid);
}

/* Does the index name any object of the VDI itself? */
static bool has_own_objects(const struct sd_inode_header *h,
			    const struct vdi_index *ix)
{
	if (ix->slots) {
		for (uint64_t i = 0; i < ix->nr_slots; i++)
			if (ix->slots[i] == h->vdi_id)
				return true;
		return false;
	}
	for (uint64_t i = 0; i < ix->nr_ents; i++)
		if (ix->ent_vid[i] == h->vdi_id)
			return true;
	return false;
}

int vdi_snapshot(int argc, char **argv)
{
	const char *name = argv[optind];
	const char *tag = vdi_cmd.snapshot_tag;
	struct sd_inode_header h;
	struct vdi_index ix;
	uint32_t vid, new_vid, found;
	int ret;

	if (vdi_cmd.snapshot_id) {
		sd_err("Please specify a non-integer value for a snapshot tag "
		       "name");
		return EXIT_USAGE;
	}
	ret = dog_open_vdi(name, 0, "", &vid, &h,
			   vdi_cmd.reduce_identical ? &ix : NULL);
	if (ret != EXIT_SUCCESS)
		return ret;
	if (vdi_cmd.reduce_identical) {
		bool own = has_own_objects(&h, &ix);

		vdi_index_free(&ix);
		if (!own) {
			sd_err("VDI %s has no objects of its own since its "
			       "last snapshot: no snapshot taken", name);
			return EXIT_SUCCESS;
		}
	}
	if (tag[0]) {
		ret = dog_find_vdi(name, 0, tag, &found);
		if (ret < 0)
			return EXIT_SYSFAIL;
		if (ret == SD_RES_SUCCESS) {
			sd_err("Failed to create snapshot for %s, maybe "
			       "snapshot id (%" PRIu32 ") or tag (%s) is "
			       "existed", name, vdi_cmd.snapshot_id, tag);
			return EXIT_FAILURE;
		}
	}

	ret = dog_snapshot_vdi(name, &h, tag, &new_vid);
	if (ret != EXIT_SUCCESS)
		return ret;
	if (verbose) {
		if (raw_output)
			printf("%x %x\n", new_vid, vid);
		else
			printf("new VID of original VDI: %x, VDI ID of newly "
			       "created snapshot: %x\n", new_vid, vid);
	}
	return EXIT_SUCCESS;
}

/*
 * Give the clone vid its own copy of every object: those it shares with
 * src_ix and, for preallocation, zero-filled ones where nothing is
 * allocated. The slot is set after the object is durable.
 */
static int copy_objects(uint32_t vid, const struct sd_inode_header *h,
			const struct vdi_index *src_ix, bool fill_holes)
{
	uint64_t objsize = UINT64_C(1) << h->block_size_shift;
	uint64_t nr = inode_nr_slots(h->vdi_size, h->block_size_shift);
	uint8_t *buf = xmalloc(objsize), slot[4];
	int ret = EXIT_SUCCESS;

	put_le32(slot, vid);
	for (uint64_t idx = 0; idx < nr; idx++) {
		uint32_t from = vdi_index_get(src_ix, idx);
		uint64_t oid = vid_to_data_oid(vid, idx);

		if (!from && !fill_holes)
			continue;
		if (from) {
			if (dog_read_object(vid_to_data_oid(from, idx), buf,
					    objsize, 0) != SD_RES_SUCCESS) {
				ret = EXIT_FAILURE;
				break;
			}
		} else {
			memset(buf, 0, objsize);
		}
		if (dog_write_object(oid, 0, buf, objsize, 0, 0, h->nr_copies,
				     h->copy_policy, true) != SD_RES_SUCCESS ||
		    dog_write_object(vid_to_vdi_oid(vid), 0, slot, sizeof(slot),
				     SD_INODE_OFF_DATA_VDI_ID + idx * 4, 0,
				     h->nr_copies, h->copy_policy,
				     false) != SD_RES_SUCCESS) {
			ret = EXIT_FAILURE;
			break;
		}
	}
	free(buf);
	if (ret != EXIT_SUCCESS)
		sd_err("Failed to write VDI");
	return ret;
}

int vdi_clone(int argc, char **argv)
{
	const char *src = argv[optind++], *dst = argv[optind];
	struct sd_inode_header h;
	struct vdi_index ix;
	uint32_t base_vid, new_vid;
	int ret;

	if (!vdi_cmd.snapshot_id && !vdi_cmd.snapshot_tag[0]) {
		sd_err("Only snapshot VDIs can be cloned");
		sd_err("Please specify the '-s' option");
		return EXIT_USAGE;
	}
	if (!dst) {
		sd_err("Please specify the name of the new VDI");
		return EXIT_USAGE;
	}
	ret = dog_open_vdi(src, vdi_cmd.snapshot_id, vdi_cmd.snapshot_tag,
			   &base_vid, &h, &ix);
	if (ret != EXIT_SUCCESS)
		return ret;
	if (h.store_policy == 1 && (vdi_cmd.prealloc || vdi_cmd.no_share)) {
		sd_err("Copying the data of a hyper volume is not supported; "
		       "clone it without '-P' and '-n'");
		vdi_index_free(&ix);
		return EXIT_USAGE;
	}
	/* -n: an independent VDI with copies of the data, no parent. */
	ret = dog_new_vdi(dst, h.vdi_size, vdi_cmd.no_share ? 0 : base_vid, 0,
			  h.nr_copies, h.copy_policy, h.store_policy,
			  h.block_size_shift, &new_vid);
	if (ret == EXIT_SUCCESS && (vdi_cmd.no_share || vdi_cmd.prealloc)) {
		h.vdi_id = new_vid;
		ret = copy_objects(new_vid, &h, &ix, vdi_cmd.prealloc);
	}
	vdi_index_free(&ix);
	if (ret == EXIT_SUCCESS && verbose) {
		if (raw_output)
			printf("%x\n", new_vid);
		else
			printf("VDI ID of newly created clone: %x\n", new_vid);
	}
	return ret;
}

int vdi_rollback(int argc, char **argv)
{
	const char *name = argv[optind];
	struct sd_inode_header h;
	uint32_t base_vid, new_vid;
	int ret;

	if (!vdi_cmd.snapshot_id && !vdi_cmd.snapshot_tag[0]) {
		sd_err("Please specify the '-s' option");
		return EXIT_USAGE;
	}
	ret = dog_open_vdi(name, vdi_cmd.snapshot_id, vdi_cmd.snapshot_tag,
			   &base_vid, &h, NULL);
	if (ret != EXIT_SUCCESS)
		return ret;
	ret = dog_find_vdi(name, 0, "", &new_vid);
	if (ret == SD_RES_SUCCESS) {
		char owner[96];

		/* the working VDI goes: not while a writer uses it */
		if (dog_vdi_lock_owner(new_vid, owner, sizeof(owner)) == 1) {
			sd_err("Failed to rollback VDI %s: it is in use, locked "
			       "by %s ('dog vdi lock unlock %s' breaks the "
			       "lock)",
			       name, owner, name);
			return EXIT_FAILURE;
		}
	}
	if (!vdi_cmd.force)
		confirm("This operation discards any changes made since the "
			"previous\nsnapshot was taken.  Continue? [yes/no]: ");

	/* The working VDI goes (its own objects with it); a new one of the
	 * same name shares everything with the snapshot. */
	dog_delete_vdi(name, 0, "");
	ret = dog_new_vdi(name, h.vdi_size, base_vid, 0, h.nr_copies,
			  h.copy_policy, h.store_policy, h.block_size_shift,
			  &new_vid);
	if (ret != EXIT_SUCCESS) {
		sd_err("Failed to rollback VDI %s", name);
		return ret;
	}
	if (verbose) {
		if (raw_output)
			printf("%x\n", new_vid);
		else
			printf("New VDI ID of rollback VDI: %x\n", new_vid);
	}
	return EXIT_SUCCESS;
}
