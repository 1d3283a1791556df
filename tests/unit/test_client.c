/*
 * The blocking client against a scripted peer on a socketpair and on a real
 * TCP listener: request bytes on the wire, reply payload truncation to rlen
 * with the excess drained, and EOF reported as -ECONNRESET.
 */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "sheepdog/client.h"
#include "sheepdog/le.h"

struct peer {
	int fd;
	uint8_t hdr[SD_HEADER_SIZE];
	uint8_t payload[64];
	uint32_t reply_len;
};

/* Reads one request (header + payload if WRITE) and answers READ_OBJ with
 * reply_len bytes of 0x5a followed by a second reply marker header. */
static void *peer_main(void *arg)
{
	struct peer *p = arg;
	uint8_t rsp[SD_HEADER_SIZE] = {0}, data[256];
	uint32_t len;

	if (sd_read_full(p->fd, p->hdr, sizeof(p->hdr)))
		return NULL;
	len = get_le32(p->hdr + 12);
	if ((get_le16(p->hdr + 2) & SD_FLAG_CMD_WRITE) && len)
		sd_read_full(p->fd, p->payload, len);
	rsp[1] = p->hdr[1];
	memcpy(rsp + 8, p->hdr + 8, 4);
	put_le32(rsp + 12, p->reply_len);
	put_le32(rsp + 16, SD_RES_SUCCESS);
	memset(data, 0x5a, sizeof(data));
	sd_write_full(p->fd, rsp, sizeof(rsp));
	sd_write_full(p->fd, data, p->reply_len);
	/* a second reply, to prove the excess of the first was drained */
	rsp[1] = SD_OP_STAT_SHEEP;
	put_le32(rsp + 12, 0);
	put_le32(rsp + 16, SD_RES_NO_SPACE);
	sd_write_full(p->fd, rsp, sizeof(rsp));
	return NULL;
}

static void test_exec_write_then_truncated_read(void **state)
{
	int sv[2];
	pthread_t t;
	struct peer p = {.reply_len = 200};
	struct sd_req req;
	struct sd_rsp rsp;
	uint8_t rdata[16];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	p.fd = sv[1];
	pthread_create(&t, NULL, peer_main, &p);

	sd_init_req(&req, SD_OP_WRITE_OBJ);
	req.flags = SD_FLAG_CMD_WRITE;
	req.id = 0x1234;
	req.data_length = 5;
	req.obj.oid = 0x42;
	req.obj.offset = 512;
	memset(rdata, 0, sizeof(rdata));
	assert_int_equal(
	    sd_exec(sv[0], &req, "hello", rdata, sizeof(rdata), &rsp), 0);
	assert_int_equal(rsp.result, SD_RES_SUCCESS);
	assert_int_equal(rsp.id, 0x1234);
	assert_int_equal(rsp.data_length, 200);
	for (size_t i = 0; i < sizeof(rdata); i++)
		assert_int_equal(rdata[i], 0x5a);

	assert_int_equal(sd_recv_rsp(sv[0], &rsp, NULL, 0), 0);
	assert_int_equal(rsp.opcode, SD_OP_STAT_SHEEP);
	assert_int_equal(rsp.result, SD_RES_NO_SPACE);
	pthread_join(t, NULL);

	assert_int_equal(p.hdr[1], SD_OP_WRITE_OBJ);
	assert_int_equal(get_le64(p.hdr + 16), 0x42);
	assert_int_equal(get_le64(p.hdr + 40), 512);
	assert_memory_equal(p.payload, "hello", 5);

	close(sv[1]);
	assert_int_equal(sd_recv_rsp(sv[0], &rsp, NULL, 0), -ECONNRESET);
	close(sv[0]);
}

static void test_connect_tcp_and_failures(void **state)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t slen = sizeof(sin);
	int lfd, fd, afd, port;

	lfd = socket(AF_INET, SOCK_STREAM, 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(lfd, 1), 0);
	getsockname(lfd, (struct sockaddr *)&sin, &slen);
	port = ntohs(sin.sin_port);

	fd = sd_connect("localhost", port);
	assert_true(fd >= 0);
	afd = accept(lfd, NULL, NULL);
	assert_true(afd >= 0);
	assert_int_equal(sd_write_full(fd, "ping", 4), 0);
	{
		char b[4];

		assert_int_equal(sd_read_full(afd, b, 4), 0);
		assert_memory_equal(b, "ping", 4);
	}
	close(afd);
	close(fd);
	close(lfd);

	/* the listener is gone: refused */
	assert_int_equal(sd_connect("127.0.0.1", port), -ECONNREFUSED);
	assert_int_equal(sd_connect("127.0.0.1", 0), -EINVAL);
	assert_true(sd_connect_unix("/nonexistent/sock") < 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_exec_write_then_truncated_read),
	    cmocka_unit_test(test_connect_tcp_and_failures),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
