/*
 * Reading backup streams from dog: one reader over both formats (the
 * native stream and upstream's v1), the full verification pass that every
 * restore runs before it changes anything, and "dog backup verify|show",
 * which check and describe a stream file without a cluster. The stream
 * formats themselves live in backup/ (include/sheepdog/backup.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backup_stream.h"
#include "dog.h"
#include "progress.h"

enum sd_backup_err bs_open(struct bs_reader *r, int fd, uint64_t v1_obj_size)
{
	uint8_t prefix[SD_BACKUP_DETECT_LEN];
	size_t got = 0;
	enum sd_backup_err err;

	memset(r, 0, sizeof(*r));
	while (got < sizeof(prefix)) {
		ssize_t n = read(fd, prefix + got, sizeof(prefix) - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(r->errmsg, sizeof(r->errmsg),
				 "cannot read the stream: %m");
			return SD_BACKUP_ERR_IO;
		}
		if (n == 0)
			break;
		got += n;
	}
	if (got < sizeof(prefix)) {
		snprintf(r->errmsg, sizeof(r->errmsg),
			 got ? "the stream is only %zu bytes long"
			     : "the stream is empty",
			 got);
		return got ? SD_BACKUP_ERR_TRUNCATED : SD_BACKUP_ERR_NOT_BACKUP;
	}
	r->fmt = sd_backup_detect(prefix, got);
	switch (r->fmt) {
	case SD_BACKUP_FORMAT_NATIVE:
		err = sd_backup_reader_open(fd, prefix, got, &r->native,
					    r->errmsg, sizeof(r->errmsg));
		break;
	case SD_BACKUP_FORMAT_V1:
		err = sd_backup_v1_reader_open(fd, prefix, got, v1_obj_size,
					       &r->v1, r->errmsg,
					       sizeof(r->errmsg));
		break;
	default:
		snprintf(r->errmsg, sizeof(r->errmsg),
			 "no native or v1 magic at its start");
		return SD_BACKUP_ERR_NOT_BACKUP;
	}
	if (err == SD_BACKUP_OK && r->native)
		r->hdr = *sd_backup_reader_header(r->native);
	return err;
}

enum sd_backup_err bs_next(struct bs_reader *r, struct sd_backup_record *rec)
{
	enum sd_backup_err err;
	const char *msg;

	if (r->native) {
		err = sd_backup_reader_next(r->native, rec);
		msg = err ? sd_backup_reader_errmsg(r->native) : NULL;
	} else {
		err = sd_backup_v1_reader_next(r->v1, rec);
		msg = err ? sd_backup_v1_reader_errmsg(r->v1) : NULL;
	}
	if (msg)
		snprintf(r->errmsg, sizeof(r->errmsg), "%s", msg);
	return err;
}

void bs_close(struct bs_reader *r)
{
	sd_backup_reader_free(r->native);
	sd_backup_v1_reader_free(r->v1);
	r->native = NULL;
	r->v1 = NULL;
}

const char *bs_error(const struct bs_reader *r, enum sd_backup_err err)
{
	static char buf[600];

	if (r->errmsg[0] && strcmp(r->errmsg, sd_backup_strerror(err)))
		snprintf(buf, sizeof(buf), "%s: %s", sd_backup_strerror(err),
			 r->errmsg);
	else
		snprintf(buf, sizeof(buf), "%s", sd_backup_strerror(err));
	return buf;
}

int bs_scan(int fd, uint64_t v1_obj_size, struct bs_scan *s,
	    struct progress *prog)
{
	struct bs_reader r;
	struct sd_backup_record rec;
	enum sd_backup_err err;
	off_t start = lseek(fd, 0, SEEK_CUR);

	memset(s, 0, sizeof(*s));
	err = bs_open(&r, fd, v1_obj_size);
	if (err) {
		snprintf(s->error, sizeof(s->error), "%s", bs_error(&r, err));
		bs_close(&r);
		return -1;
	}
	s->fmt = r.fmt;
	s->hdr = r.hdr;
	for (;;) {
		off_t pos;

		err = bs_next(&r, &rec);
		if (err) {
			snprintf(s->error, sizeof(s->error), "%s",
				 bs_error(&r, err));
			bs_close(&r);
			return -1;
		}
		if (rec.type == SD_BACKUP_REC_END)
			break;
		s->nr_records++;
		if (rec.type == SD_BACKUP_REC_DATA)
			s->data_bytes += rec.length;
		else
			s->zero_bytes += rec.length;
		if ((uint64_t)rec.idx + 1 > s->nr_touched_max)
			s->nr_touched_max = (uint64_t)rec.idx + 1;
		if (prog && start >= 0) {
			pos = lseek(fd, 0, SEEK_CUR);
			if (pos > start && (uint64_t)(pos - start) > prog->done)
				progress_add(prog, pos - start - prog->done);
		}
	}
	bs_close(&r);
	s->stream_bytes = start >= 0 ? lseek(fd, 0, SEEK_CUR) - start : 0;
	return 0;
}

/* ---- dog backup verify|show ---- */

/* The largest object size a v1 stream may describe: 2^31 bytes. */
#define V1_MAX_OBJ_SIZE (UINT64_C(1) << 31)

static int open_input(int argc, char **argv, int *fd, const char **what)
{
	const char *path = optind < argc ? argv[optind] : NULL;

	if (!path || !strcmp(path, "-")) {
		if (isatty(STDIN_FILENO)) {
			sd_err("stdin must be pipe");
			return EXIT_USAGE;
		}
		*fd = STDIN_FILENO;
		*what = "stdin";
		return EXIT_SUCCESS;
	}
	*fd = open(path, O_RDONLY | O_CLOEXEC);
	if (*fd < 0) {
		sd_err("Failed to open %s: %m", path);
		return errno == ENOENT ? EXIT_MISSING : EXIT_SYSFAIL;
	}
	*what = path;
	return EXIT_SUCCESS;
}

static void format_ctime(uint64_t ctime, char *buf, size_t len)
{
	time_t t = (time_t)(ctime >> 32);
	struct tm tm;

	if (!ctime) {
		snprintf(buf, len, "-");
		return;
	}
	localtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm);
}

static int backup_verify(int argc, char **argv)
{
	struct bs_scan s;
	struct progress prog;
	struct stat st;
	const char *what;
	int fd, ret;

	ret = open_input(argc, argv, &fd, &what);
	if (ret != EXIT_SUCCESS)
		return ret;
	progress_start(&prog, "verify",
		       fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? st.st_size
								  : 0);
	ret = bs_scan(fd, V1_MAX_OBJ_SIZE, &s, &prog);
	if (fd != STDIN_FILENO)
		close(fd);
	if (ret < 0) {
		progress_abort(&prog);
		sd_err("The backup file is corrupted: %s", s.error);
		return EXIT_FAILURE;
	}
	progress_finish(&prog);
	if (s.fmt == SD_BACKUP_FORMAT_V1)
		printf("%s: v1 stream, %" PRIu64 " records, %" PRIu64
		       " data bytes: structure OK (v1 streams carry no "
		       "checksums)\n",
		       what, s.nr_records, s.data_bytes);
	else
		printf("%s: OK: %s backup of %s, %" PRIu64 " records, %" PRIu64
		       " data bytes, every checksum matches\n",
		       what,
		       s.hdr.flags & SD_BACKUP_FLAG_INCREMENTAL ? "incremental"
								: "full",
		       s.hdr.name, s.nr_records, s.data_bytes);
	return EXIT_SUCCESS;
}

static void show_snap(const char *label, const struct sd_backup_snap *snap)
{
	char when[64];

	format_ctime(snap->ctime, when, sizeof(when));
	if (raw_output)
		printf("%s %" PRIu32 " %s %" PRIu64 "\n", label, snap->id,
		       snap->tag[0] ? snap->tag : "-", snap->ctime);
	else
		printf("%-13s id %" PRIu32 ", tag \"%s\", taken %s\n", label,
		       snap->id, snap->tag, when);
}

static int backup_show(int argc, char **argv)
{
	struct bs_scan s;
	const struct sd_backup_header *h = &s.hdr;
	const char *what;
	char a[32], b[32];
	int fd, ret;

	ret = open_input(argc, argv, &fd, &what);
	if (ret != EXIT_SUCCESS)
		return ret;
	ret = bs_scan(fd, V1_MAX_OBJ_SIZE, &s, NULL);
	if (fd != STDIN_FILENO)
		close(fd);
	if (ret < 0) {
		sd_err("The backup file is corrupted: %s", s.error);
		return EXIT_FAILURE;
	}
	if (s.fmt == SD_BACKUP_FORMAT_V1) {
		if (raw_output)
			printf("format v1\nrecords %" PRIu64 "\ndata %" PRIu64
			       "\nobjects_touched %" PRIu64 "\n",
			       s.nr_records, s.data_bytes, s.nr_touched_max);
		else
			printf("Format:       v1 (upstream Sheepdog, no header, "
			       "no checksums)\nRecords:      %" PRIu64
			       "\nData:         %s\nHighest index: %" PRIu64 "\n",
			       s.nr_records, strnum(s.data_bytes, a),
			       s.nr_touched_max ? s.nr_touched_max - 1 : 0);
		return EXIT_SUCCESS;
	}
	if (raw_output) {
		printf("format native %d\nkind %s\nname %s\nvid %" PRIx32
		       "\nsize %" PRIu64 "\nobject_size %" PRIu64
		       "\ncopies %u\ncopy_policy %u\nobjects %" PRIu32 "\n",
		       SD_BACKUP_VERSION,
		       h->flags & SD_BACKUP_FLAG_INCREMENTAL ? "incremental"
							     : "full",
		       h->name, h->vdi_id, h->vdi_size,
		       UINT64_C(1) << h->block_size_shift, h->copies,
		       h->copy_policy, h->nr_objects);
		if (h->flags & SD_BACKUP_FLAG_INCREMENTAL)
			show_snap("from", &h->from);
		show_snap("to", &h->to);
		printf("records %" PRIu64 "\ndata %" PRIu64 "\nzero %" PRIu64
		       "\nstream %" PRIu64 "\n",
		       s.nr_records, s.data_bytes, s.zero_bytes, s.stream_bytes);
		return EXIT_SUCCESS;
	}
	printf("Format:        native, version %d (zstd, checksummed)\n",
	       SD_BACKUP_VERSION);
	printf("Kind:          %s\n", h->flags & SD_BACKUP_FLAG_INCREMENTAL
					      ? "incremental"
					      : "full");
	printf("VDI:           %s (id %" PRIx32 ")\n", h->name, h->vdi_id);
	printf("Size:          %s\n", strnum(h->vdi_size, a));
	printf("Object size:   %s\n",
	       strnum(UINT64_C(1) << h->block_size_shift, a));
	printf("Copies:        %s\n",
	       redundancy_str(h->copies, h->copy_policy, a, sizeof(a)));
	if (h->flags & SD_BACKUP_FLAG_INCREMENTAL)
		show_snap("From snapshot:", &h->from);
	show_snap("To snapshot:", &h->to);
	printf("Records:       %" PRIu64 "\n", s.nr_records);
	printf("Data:          %s\n", strnum(s.data_bytes, a));
	printf("Zeroed:        %s\n", strnum(s.zero_bytes, a));
	if (s.stream_bytes)
		printf("Stream:        %s (%.2fx smaller than its data)\n",
		       strnum(s.stream_bytes, b),
		       s.data_bytes ? (double)s.data_bytes / s.stream_bytes
				    : 0.0);
	printf("Checksums:     every record and the whole stream match\n");
	return EXIT_SUCCESS;
}

static const struct subcommand backup_subcommands[] = {
    {"verify", "[<file>]", "hT", "verify a backup stream (no cluster needed)",
     0, backup_verify},
    {"show", "[<file>]", "rhT", "show a backup stream's header and totals",
     0, backup_show},
    {NULL, NULL, NULL, NULL, 0, NULL},
};

const struct command backup_command = {
    .name = "backup",
    .sub = backup_subcommands,
};
