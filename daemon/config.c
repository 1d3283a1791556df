/*
 * The store's own metadata files in the base directory: `config` (the
 * 40-byte sheepdog_config, spec 8.1) and the epoch log `epoch/%08u` (the
 * members of each epoch, spec 7.1). Both are replaced atomically.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sheep.h"
#include "sheepdog/le.h"

int config_load(struct sheepdog_config *c)
{
	char path[4200];
	uint8_t buf[SD_CONFIG_SIZE];
	ssize_t n;

	snprintf(path, sizeof(path), "%s/config", sys->base_dir);
	n = read_file(path, buf, sizeof(buf));
	if (n < 0)
		return n;
	if (n != SD_CONFIG_SIZE) {
		sd_err("%s: %zd bytes, expected %d", path, n, SD_CONFIG_SIZE);
		return -EINVAL;
	}
	return sheepdog_config_decode(buf, c);
}

int config_save(const struct sheepdog_config *c)
{
	char path[4200];
	uint8_t buf[SD_CONFIG_SIZE];

	snprintf(path, sizeof(path), "%s/config", sys->base_dir);
	sheepdog_config_encode(c, buf);
	return atomic_write_file(path, buf, sizeof(buf));
}

static void epoch_path(uint32_t epoch, char *buf, size_t len)
{
	snprintf(buf, len, "%s/epoch/%08u", sys->base_dir, epoch);
}

int epoch_log_write(uint32_t epoch, const struct sd_node *nodes, int nr,
		    uint64_t t)
{
	char path[4200];
	size_t len = (size_t)nr * SD_NODE_SIZE + 8;
	uint8_t *buf = xzalloc(len);
	int ret;

	for (int i = 0; i < nr; i++)
		sd_node_encode(&nodes[i], buf + i * SD_NODE_SIZE);
	put_le64(buf + nr * SD_NODE_SIZE, t);
	epoch_path(epoch, path, sizeof(path));
	ret = atomic_write_file(path, buf, len);
	free(buf);
	if (ret < 0)
		sd_err("cannot write epoch %u to %s: %s", epoch, path,
		       strerror(-ret));
	return ret;
}

int epoch_log_read(uint32_t epoch, struct sd_node *nodes, uint64_t *t)
{
	char path[4200];
	size_t max = (size_t)SD_MAX_NODES * SD_NODE_SIZE + 8;
	uint8_t *buf = xmalloc(max);
	ssize_t n;
	int nr;

	epoch_path(epoch, path, sizeof(path));
	n = read_file(path, buf, max);
	if (n < 0) {
		free(buf);
		return n;
	}
	if (n < 8 || (n - 8) % SD_NODE_SIZE) {
		sd_err("%s: %zd bytes is not an epoch record", path, n);
		free(buf);
		return -EINVAL;
	}
	nr = (n - 8) / SD_NODE_SIZE;
	for (int i = 0; i < nr; i++)
		sd_node_decode(buf + i * SD_NODE_SIZE, &nodes[i]);
	if (t)
		*t = get_le64(buf + nr * SD_NODE_SIZE);
	free(buf);
	return nr;
}

static bool epoch_name(const char *name, uint32_t *e)
{
	if (strlen(name) != 8 || strspn(name, "0123456789") != 8)
		return false;
	*e = (uint32_t)strtoul(name, NULL, 10);
	return true;
}

uint32_t epoch_log_latest(void)
{
	char path[4200];
	DIR *d;
	struct dirent *de;
	uint32_t latest = 0, e;

	snprintf(path, sizeof(path), "%s/epoch", sys->base_dir);
	d = opendir(path);
	if (!d)
		return 0;
	while ((de = readdir(d)))
		if (epoch_name(de->d_name, &e) && e > latest)
			latest = e;
	closedir(d);
	return latest;
}

int epoch_log_remove_all(void)
{
	char path[4200];
	DIR *d;
	struct dirent *de;
	uint32_t e;

	snprintf(path, sizeof(path), "%s/epoch", sys->base_dir);
	d = opendir(path);
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		char p[4500];

		if (!epoch_name(de->d_name, &e))
			continue;
		snprintf(p, sizeof(p), "%s/%s", path, de->d_name);
		if (unlink(p) < 0) {
			int err = errno;

			closedir(d);
			return -err;
		}
	}
	closedir(d);
	return 0;
}
