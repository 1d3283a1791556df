/*
 * peer_reads.c against a scripted peer on loopback: pipelined READ_PEERs,
 * replies out of order, short replies, errors, and every way the stream
 * can be broken (an unknown id, more data than asked, a peer that closes,
 * no peer at all). Each read must end exactly once, with its data or with
 * the reason it failed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "peer_reads.h"
#include "sheepdog/proto.h"

#define NR 3
#define LEN 4096

/* The scripted peer runs in its own thread, where cmocka's asserts cannot
 * be used. */
#define CHECK(x)                                                               \
	do {                                                                   \
		if (!(x)) {                                                    \
			fprintf(stderr, "peer: %s failed\n", #x);              \
			abort();                                               \
		}                                                              \
	} while (0)

enum mode { REVERSE, SHORT, ONE_ERROR, BAD_ID, TOO_LONG, CLOSE };

struct peer {
	int lfd;
	uint16_t port;
	enum mode mode;
	struct sd_req got[NR];
	pthread_t thread;
};

static int full(int fd, void *buf, size_t len, bool rd)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = rd ? read(fd, (char *)buf + done, len - done)
			       : write(fd, (char *)buf + done, len - done);

		if (n <= 0)
			return -1;
		done += n;
	}
	return 0;
}

static void reply(int fd, const struct sd_req *rq, int result, uint32_t id,
		  uint32_t dlen)
{
	uint8_t hdr[SD_HEADER_SIZE], data[2 * LEN];
	struct sd_rsp rsp = {0};

	rsp.opcode = rq->opcode;
	rsp.id = id;
	rsp.result = result;
	rsp.data_length = dlen;
	sd_rsp_encode(&rsp, hdr);
	memset(data, 0x40 + (rq->id & 0x3f), sizeof(data));
	CHECK(full(fd, hdr, sizeof(hdr), false) == 0);
	if (dlen)
		CHECK(full(fd, data, dlen, false) == 0);
}

static void *peer_main(void *arg)
{
	struct peer *p = arg;
	int fd = accept(p->lfd, NULL, NULL);

	CHECK(fd >= 0);
	for (int i = 0; i < NR; i++) {
		uint8_t hdr[SD_HEADER_SIZE];

		CHECK(full(fd, hdr, sizeof(hdr), true) == 0);
		sd_req_decode(hdr, &p->got[i]);
	}
	switch (p->mode) {
	case REVERSE:
		for (int i = NR - 1; i >= 0; i--)
			reply(fd, &p->got[i], SD_RES_SUCCESS, p->got[i].id, LEN);
		break;
	case SHORT:
		for (int i = 0; i < NR; i++)
			reply(fd, &p->got[i], SD_RES_SUCCESS, p->got[i].id,
			      LEN / 2);
		break;
	case ONE_ERROR:
		reply(fd, &p->got[1], SD_RES_NO_OBJ, p->got[1].id, 0);
		reply(fd, &p->got[0], SD_RES_SUCCESS, p->got[0].id, LEN);
		reply(fd, &p->got[2], SD_RES_SUCCESS, p->got[2].id, LEN);
		break;
	case BAD_ID:
		reply(fd, &p->got[0], SD_RES_SUCCESS, p->got[0].id, LEN);
		reply(fd, &p->got[1], SD_RES_SUCCESS, p->got[1].id + 1000, LEN);
		break;
	case TOO_LONG:
		reply(fd, &p->got[0], SD_RES_SUCCESS, p->got[0].id, 2 * LEN);
		break;
	case CLOSE:
		close(fd);
		return NULL;
	}
	/* Wait for the client to close, so that nothing is cut short. */
	{
		char c;

		while (read(fd, &c, 1) > 0)
			;
	}
	close(fd);
	return NULL;
}

static void peer_start(struct peer *p, enum mode mode)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	p->mode = mode;
	p->lfd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(p->lfd >= 0);
	assert_int_equal(bind(p->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(p->lfd, 4), 0);
	assert_int_equal(getsockname(p->lfd, (struct sockaddr *)&sa, &len), 0);
	p->port = ntohs(sa.sin_port);
	assert_int_equal(pthread_create(&p->thread, NULL, peer_main, p), 0);
}

struct outcome {
	struct peer_read pr[NR];
	uint8_t buf[NR][LEN];
	int result[NR];
	int calls[NR];
};

static void done(struct peer_read *pr, int result, void *arg)
{
	struct outcome *o = arg;
	int i = (int)(pr - o->pr);

	assert_true(i >= 0 && i < NR);
	o->result[i] = result;
	o->calls[i]++;
}

/* NR reads of LEN bytes through a peer in mode; waits until all ended. */
static void run(enum mode mode, struct outcome *o, struct peer *p)
{
	struct peer_reads *prs = peer_reads_new(done, o);
	struct node_id nid = {0};

	memset(o, 0, sizeof(*o));
	memset(o->buf, 0xee, sizeof(o->buf));
	peer_start(p, mode);
	assert_int_equal(str_to_addr("127.0.0.1", nid.addr), 0);
	nid.port = p->port;
	for (int i = 0; i < NR; i++) {
		o->pr[i].len = LEN;
		o->pr[i].buf = o->buf[i];
		assert_true(peer_reads_add(prs, &nid, 7, 0x00abcdef00000010ULL + i,
					   (uint64_t)i * LEN, &o->pr[i]));
	}
	assert_int_equal(peer_reads_pending(prs), NR);
	peer_reads_flush(prs);
	while (peer_reads_pending(prs)) {
		struct pollfd pfd[PEER_READS_MAX_PEERS];
		int n = peer_reads_pollfds(prs, pfd, PEER_READS_MAX_PEERS);

		assert_int_equal(n, 1);
		assert_true(poll(pfd, n, 10000) > 0);
		peer_reads_handle(prs, pfd, n);
	}
	peer_reads_free(prs);
	pthread_join(p->thread, NULL);
	close(p->lfd);
	for (int i = 0; i < NR; i++)
		assert_int_equal(o->calls[i], 1);
}

static bool all_bytes(const uint8_t *b, size_t len, uint8_t v)
{
	for (size_t i = 0; i < len; i++)
		if (b[i] != v)
			return false;
	return true;
}

static void test_pipelined_out_of_order(void **state)
{
	struct outcome o;
	struct peer p;

	(void)state;
	run(REVERSE, &o, &p);
	for (int i = 0; i < NR; i++) {
		const struct sd_req *rq = &p.got[i];

		assert_int_equal(rq->opcode, SD_OP_READ_PEER);
		assert_int_equal(rq->proto_ver, SD_SHEEP_PROTO_VER);
		assert_int_equal(rq->epoch, 7);
		assert_int_equal(rq->data_length, LEN);
		assert_true(rq->obj.oid == 0x00abcdef00000010ULL + i);
		assert_true(rq->obj.offset == (uint64_t)i * LEN);
		assert_false(rq->flags & SD_FLAG_CMD_WRITE);
		assert_int_equal(o.result[i], SD_RES_SUCCESS);
		assert_true(all_bytes(o.buf[i], LEN, 0x40 + (rq->id & 0x3f)));
	}
	/* ids are distinct */
	assert_true(p.got[0].id != p.got[1].id && p.got[1].id != p.got[2].id);
}

static void test_short_reply_zero_filled(void **state)
{
	struct outcome o;
	struct peer p;

	(void)state;
	run(SHORT, &o, &p);
	for (int i = 0; i < NR; i++) {
		assert_int_equal(o.result[i], SD_RES_SUCCESS);
		assert_true(all_bytes(o.buf[i], LEN / 2,
				      0x40 + (p.got[i].id & 0x3f)));
		assert_true(all_bytes(o.buf[i] + LEN / 2, LEN / 2, 0));
	}
}

static void test_error_result_passed_on(void **state)
{
	struct outcome o;
	struct peer p;

	(void)state;
	run(ONE_ERROR, &o, &p);
	assert_int_equal(o.result[0], SD_RES_SUCCESS);
	assert_int_equal(o.result[1], SD_RES_NO_OBJ);
	assert_int_equal(o.result[2], SD_RES_SUCCESS);
	assert_true(all_bytes(o.buf[2], LEN, 0x40 + (p.got[2].id & 0x3f)));
}

static void test_unknown_id_breaks_connection(void **state)
{
	struct outcome o;
	struct peer p;

	(void)state;
	run(BAD_ID, &o, &p);
	assert_int_equal(o.result[0], SD_RES_SUCCESS);
	assert_int_equal(o.result[1], SD_RES_NETWORK_ERROR);
	assert_int_equal(o.result[2], SD_RES_NETWORK_ERROR);
}

static void test_too_much_data_breaks_connection(void **state)
{
	struct outcome o;
	struct peer p;

	(void)state;
	run(TOO_LONG, &o, &p);
	for (int i = 0; i < NR; i++) {
		assert_int_equal(o.result[i], SD_RES_NETWORK_ERROR);
		/* nothing was copied into a buffer too small for it */
		assert_true(all_bytes(o.buf[i], LEN, 0xee));
	}
}

static void test_peer_closes(void **state)
{
	struct outcome o;
	struct peer p;

	(void)state;
	run(CLOSE, &o, &p);
	for (int i = 0; i < NR; i++)
		assert_int_equal(o.result[i], SD_RES_NETWORK_ERROR);
}

static void test_no_peer(void **state)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);
	struct outcome o;
	struct node_id nid = {0};
	struct peer_reads *prs = peer_reads_new(done, &o);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	(void)state;
	memset(&o, 0, sizeof(o));
	/* a port nobody listens on */
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	close(fd);
	assert_int_equal(str_to_addr("127.0.0.1", nid.addr), 0);
	nid.port = ntohs(sa.sin_port);
	o.pr[0].len = LEN;
	o.pr[0].buf = o.buf[0];
	assert_false(peer_reads_add(prs, &nid, 1, 1, 0, &o.pr[0]));
	assert_int_equal(peer_reads_pending(prs), 0);
	/* too big for this path */
	o.pr[1].len = PEER_READS_MAX_LEN + 4096;
	assert_false(peer_reads_add(prs, &nid, 1, 1, 0, &o.pr[1]));
	assert_int_equal(o.calls[0] + o.calls[1], 0);
	peer_reads_free(prs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pipelined_out_of_order),
		cmocka_unit_test(test_short_reply_zero_filled),
		cmocka_unit_test(test_error_result_passed_on),
		cmocka_unit_test(test_unknown_id_breaks_connection),
		cmocka_unit_test(test_too_much_data_breaks_connection),
		cmocka_unit_test(test_peer_closes),
		cmocka_unit_test(test_no_peer),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
