/*
 * Requests from inside the daemon: a worker thread (the NBD export layer,
 * for one) that needs what a client would get by sending a request (a
 * cluster-ordered LOCK_VDI, a GET_VDI_INFO ordered with NEW_VDI) hands it
 * to the main thread, which runs it through queue_request exactly as if it
 * had come from a connection, and sleeps until put_request completes it.
 *
 * The request is counted from the start (exit_when_idle waits for it) and
 * is refused by queue_request like any other while the cluster shuts down.
 * The caller's buffer is the payload: it lives until the request is done.
 */
#include <string.h>

#include "sheep.h"

struct local_request {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool done;
};

/* Main thread, from put_request. */
static void local_request_complete(struct request *req)
{
	struct local_request *lr = req->conn_private;

	pthread_mutex_lock(&lr->lock);
	lr->done = true;
	pthread_cond_signal(&lr->cond);
	pthread_mutex_unlock(&lr->lock);
}

/* Main thread: start it as a connection would. */
static void local_request_start(struct work *w)
{
	struct request *req = container_of(w, struct request, work);

	queue_request(req);
}

int exec_local_request(struct sd_req *rq, void *data, uint32_t data_len,
		       struct sd_rsp *rsp)
{
	struct local_request lr = { .done = false };
	struct request *req;

	rq->data_length = data_len;
	memset(rsp, 0, sizeof(*rsp));
	req = alloc_local_request();
	req->rq = *rq;
	req->op = get_sd_op(rq->opcode);
	if (!req->op) {
		free_local_request(req);
		rsp->result = SD_RES_INVALID_PARMS;
		return rsp->result;
	}
	req->data = data;
	req->data_alloc = data_len;
	req->rp.opcode = rq->opcode;
	req->rp.id = rq->id;
	req->complete = local_request_complete;
	req->conn_private = &lr;
	pthread_mutex_init(&lr.lock, NULL);
	pthread_cond_init(&lr.cond, NULL);

	req->work.fn = NULL;
	req->work.done = local_request_start;
	queue_main_work(&req->work);

	pthread_mutex_lock(&lr.lock);
	while (!lr.done)
		pthread_cond_wait(&lr.cond, &lr.lock);
	pthread_mutex_unlock(&lr.lock);

	*rsp = req->rp;
	free_local_request(req);
	pthread_cond_destroy(&lr.cond);
	pthread_mutex_destroy(&lr.lock);
	return rsp->result;
}
