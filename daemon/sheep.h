/*
 * Declarations shared by the parts of the sheep daemon: the global system
 * state, requests, the event loop, work queues, the store, the gateway, the
 * group (membership, epochs, cluster operations) and the VDI namespace.
 *
 * Threads: the main thread runs the event loop and owns connections, group
 * state and the cluster driver. Work queues run blocking work (disk, peers)
 * and hand results back to the main thread. State that workers read (the
 * current ring, VDI states) is published under small locks.
 */
#ifndef SHEEP_H
#define SHEEP_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "sheepdog/btree.h"
#include "sheepdog/layout.h"
#include "sheepdog/list.h"
#include "sheepdog/log.h"
#include "sheepdog/proto.h"
#include "sheepdog/ring.h"
#include "sheepdog/util.h"

/* Largest payload a request may carry or ask for. Bigger objects are
 * written in parts. */
#define SD_MAX_PAYLOAD (64U << 20)

/* ---- event loop (event.c) ---- */

typedef void (*event_handler_t)(int fd, uint32_t events, void *data);

int event_init(void);
int register_event(int fd, uint32_t events, event_handler_t h, void *data);
int modify_event(int fd, uint32_t events);
void unregister_event(int fd);
/* Run until event_stop(). */
void event_loop(void);
void event_stop(void);
/* A repeating timer on the event loop; returns the timerfd or -errno. */
int add_timer(unsigned int interval_ms, void (*fn)(void *), void *data);

/* ---- work queues (work.c) ---- */

struct work {
	void (*fn)(struct work *);   /* runs on a worker thread */
	void (*done)(struct work *); /* runs on the main thread afterwards */
	struct list_node w_list;
};

struct work_queue;

struct work_queue *create_work_queue(const char *name, int nr_threads);
void queue_work(struct work_queue *wq, struct work *work);
/* Run work->done on the main thread soon, with no worker phase. Any
 * thread. */
void queue_main_work(struct work *work);
int work_init(void);

/* ---- requests (server.c, ops.c) ---- */

struct sd_op_template;
struct client_conn;

struct request {
	struct sd_req rq;
	struct sd_rsp rp;
	const struct sd_op_template *op;
	void *data;             /* payload in, reply payload out */
	uint32_t data_alloc;    /* bytes allocated at data */
	struct client_conn *conn;
	struct work work;
	struct list_node r_list;
	uint64_t park_deadline; /* parked until the epoch catches up (ms) */
	/* A request from inside the daemon (exec_local_request) has no
	 * connection: put_request calls this, on the main thread, instead
	 * of queueing a reply. */
	void (*complete)(struct request *req);
	void *conn_private; /* for complete() */
};

enum op_class {
	OP_GATEWAY,
	OP_PEER,
	OP_LOCAL,   /* answered by this node, on a worker */
	OP_MAIN,    /* answered by this node, on the main thread */
	OP_CLUSTER, /* ordered through the cluster driver */
};

struct sd_op_template {
	const char *name;
	enum op_class type;
	bool force;          /* allowed while the cluster waits */
	bool need_write;     /* request must carry a payload */
	uint32_t max_len;    /* payload/reply limit, 0 = SD_MAX_PAYLOAD */
	uint32_t exact_len;  /* if nonzero, data_length must equal it */
	/* Worker / main-thread handler for local, gateway and peer ops; the
	 * work phase of a cluster op (on the requester, under the block). */
	int (*process_work)(struct request *req);
	/* Main phase of a cluster op: every node, in total order, main thread.
	 * data is the request payload or the work phase's reply payload. */
	int (*process_main)(const struct sd_req *req, struct sd_rsp *rsp,
			    void *data, const struct sd_node *sender);
	/* Optional, cluster ops: runs on the requester, on a worker, after
	 * its main phase succeeded; the client is answered when it returns. */
	int (*process_after)(struct request *req);
};

const struct sd_op_template *get_sd_op(uint8_t opcode);
/* Hand a validated request to its class. */
void queue_request(struct request *req);
void count_request(const struct request *req);
/* Main thread, after the epoch moved: run peer requests that waited for it. */
void wake_epoch_waiters(void);
/* Finish a request: queue its reply on its connection. Main thread. */
void put_request(struct request *req);
struct request *alloc_request(uint32_t data_length);
/* A request without connection or payload buffer of its own, counted
 * like the others so that exit_when_idle waits for it. Any thread. */
struct request *alloc_local_request(void);
void free_local_request(struct request *req);
/*
 * Run a request as if a client of this sheep had sent it (cluster ops
 * ordered through the driver, local and gateway ops alike) and wait for
 * its end. data holds data_len bytes: the payload with SD_FLAG_CMD_WRITE,
 * and the room for the reply's payload. rq->data_length is set to
 * data_len. Returns rsp->result. Blocking: never call it on the main
 * thread (local_request.c).
 */
int exec_local_request(struct sd_req *rq, void *data, uint32_t data_len,
		       struct sd_rsp *rsp);
/* Payload buffers: page aligned, so that object I/O can bypass the page
 * cache (O_DIRECT), and not zeroed. NULL on ENOMEM. */
void *sd_alloc_buffer(size_t len);
void sd_free_buffer(void *p, size_t len);
void free_request(struct request *req);

int server_init(const char *bindaddr, int port, const char *sock_path);
/* Exit once every reply has gone out (shutdown, kill). Main thread. */
void exit_when_idle(const char *reason);
void server_stop_listening(void);
int nr_outstanding_requests(void);

/* ---- the store (store/store.c) ---- */

int store_init(const char *base, const char *layout, bool nosync,
	       bool directio);
const char *store_layout_name(void);
/* Re-create object directories for the given layout ("plain" or "tree")
 * after wiping every object. */
int store_format(const char *layout);
/* Results are SD_RES_* codes. */
int store_create_and_write(uint64_t oid, uint8_t ec_index, uint64_t offset,
			   uint32_t len, const void *data, uint64_t obj_size,
			   const void *base_data);
int store_write(uint64_t oid, uint8_t ec_index, uint64_t offset, uint32_t len,
		const void *data);
int store_read(uint64_t oid, uint8_t ec_index, uint64_t offset, uint32_t len,
	       void *buf);
/* Only from the page cache, without blocking; false: use store_read. */
bool store_read_nowait(uint64_t oid, uint64_t offset, uint32_t len, void *buf);
int store_remove(uint64_t oid, uint8_t ec_index);
bool store_exist(uint64_t oid, uint8_t ec_index);
/* Every stored oid; caller frees *oids. */
int store_list(uint64_t **oids, size_t *nr);
/* Move every live object to .stale, tagged with epoch. */
int store_stale_all(uint32_t epoch);
int store_read_stale(uint64_t oid, uint8_t ec_index, uint32_t epoch,
		     uint64_t offset, uint32_t len, void *buf);
int store_space(uint64_t *size, uint64_t *free);
int store_sync(void);

/* ---- metadata files in the base dir (config.c) ---- */

int config_load(struct sheepdog_config *c);  /* -ENOENT if absent */
int config_save(const struct sheepdog_config *c);
int epoch_log_write(uint32_t epoch, const struct sd_node *nodes, int nr,
		    uint64_t t);
/* nodes must hold SD_MAX_NODES; returns nr nodes or -errno. */
int epoch_log_read(uint32_t epoch, struct sd_node *nodes, uint64_t *t);
uint32_t epoch_log_latest(void);
int epoch_log_remove_all(void);

/* ---- vnode info: the ring of one epoch, shared read-only ---- */

struct vnode_info {
	atomic_int refcnt;
	uint32_t epoch;
	struct sd_ring *ring;
};

struct vnode_info *get_vnode_info(void);
void put_vnode_info(struct vnode_info *vi);
/* Main thread: publish a new ring for epoch and wake waiters. */
void set_vnode_info(uint32_t epoch, const struct sd_node *nodes, int nr);
/* Wait (bounded) until the published epoch differs from epoch. */
bool wait_epoch_change(uint32_t epoch, int timeout_ms);

/* ---- the gateway (gateway.c) and peers (peer.c, sockfd.c) ---- */

enum { GW_ROUTE_LOCAL = 1, GW_ROUTE_PEER = 2 };
int gateway_read_route(uint64_t oid, uint32_t *epoch, struct node_id *nid);
int gateway_read_obj(struct request *req);
int gateway_write_obj(struct request *req);
int gateway_create_and_write_obj(struct request *req);
int gateway_remove_obj(struct request *req);
int peer_read_obj(struct request *req);
bool peer_read_obj_nowait(struct request *req);
int peer_write_obj(struct request *req);
int peer_create_and_write_obj(struct request *req);
int peer_remove_obj(struct request *req);

/* Replica checks for "dog vdi check" (check.c): GET_HASH, REPAIR_REPLICA. */
int local_get_hash(struct request *req);
int local_repair_replica(struct request *req);

/* Object I/O from inside the daemon (cluster work, VDI code), through the
 * same placement and replication as client requests. SD_RES_* codes. */
int sd_read_object(uint64_t oid, void *buf, uint32_t len, uint64_t offset);
int sd_write_object(uint64_t oid, const void *buf, uint32_t len,
		    uint64_t offset, bool create, uint8_t copies);
int sd_remove_object(uint64_t oid);
/* Create oid from the whole of cow_oid (an object of the same size) with
 * buf laid over it at offset: the copy on write of a derived VDI. */
int sd_cow_write_object(uint64_t oid, uint64_t cow_oid, const void *buf,
			uint32_t len, uint64_t offset, uint8_t copies);

/* Peer connections, cached per node. */
int sockfd_get(const struct node_id *nid);
void sockfd_put(const struct node_id *nid, int fd);
void sockfd_del(const struct node_id *nid, int fd);
/* One request to a peer with a cached connection; SD_RES_NETWORK_ERROR on
 * transport failure. */
int peer_exec(const struct node_id *nid, struct sd_req *req, const void *wdata,
	      void *rdata, uint32_t rlen, struct sd_rsp *rsp);

/* ---- group: membership, epochs, cluster ops (group.c) ---- */

struct system_info {
	struct sd_node this_node;
	bool gateway_only;
	bool auto_vnodes;
	uint16_t fixed_vnodes;
	/* cluster state, main thread writes, others read under sys_lock */
	pthread_mutex_t lock;
	uint8_t status;
	uint32_t epoch;
	uint64_t ctime;
	uint16_t flags;
	uint8_t nr_copies;
	uint8_t copy_policy;
	uint8_t block_size_shift;
	uint8_t disable_recovery;
	char store[SD_STORE_NAME_LEN + 1];
	bool shutdown_clean;
	struct sd_node *epoch_nodes; /* members at epoch */
	int nr_epoch_nodes;
	struct sd_node *members;     /* live members now */
	int nr_members;
	char base_dir[4096];
	atomic_uint_fast64_t stat[15];
};

extern struct system_info *sys;

int group_init(const char *driver_opt);
void group_leave(void);
/* Announce a change of this node (space, vnodes): every node bumps the
 * epoch through sd_update_node_handler. */
int group_update_node(const struct sd_node *node);
/* Queue a cluster request (main thread). */
void queue_cluster_request(struct request *req);
uint8_t sys_status(void);
uint32_t sys_epoch(void);
void sys_cluster_defaults(uint8_t *copies, uint8_t *policy, uint8_t *shift,
			  uint16_t *flags);
/* Fill a cluster_info from the current state; nodes must have room. */
void sys_cluster_info(struct cluster_info *ci, struct sd_node *nodes);

extern struct work_queue *gateway_wq, *io_wq, *local_wq, *cluster_wq, *bg_wq;

/* ---- recovery (recovery.c) ---- */

/* Main thread, after an epoch change (or a restart after a crash, for the
 * same epoch): sweep, then fetch what this node must now hold. */
void recovery_start(uint32_t epoch);
/* Main thread: this node's store is valid for epoch as it is (joined a
 * cluster at that epoch, or formatted): no sweep to wait for. */
void recovery_epoch_adopted(uint32_t epoch);
/* I/O of epoch waits until the sweep for it is done (SD_RES_SUCCESS), at
 * most a few seconds (SD_RES_NEW_NODE_VER: the sender retries). */
int recovery_wait_swept(uint32_t epoch);
bool recovery_swept(uint32_t epoch);
/* Object mutations run between io_epoch_enter (SD_RES_OLD_NODE_VER or
 * NEW_NODE_VER unless epoch is ours) and io_epoch_exit. io_epoch_drain
 * waits (bounded) until none of an epoch before epoch is in flight. */
int io_epoch_enter(uint32_t epoch);
void io_epoch_exit(uint32_t epoch);
int io_epoch_drain(uint32_t epoch);
/* The ring of an old epoch, from the log or a member; NULL if unknown. */
struct sd_ring *recovery_epoch_ring(uint32_t epoch);
/* group.c: broadcast COMPLETE_RECOVERY for epoch. */
void recovery_report_complete(uint32_t epoch);
int cluster_complete_recovery_main(const struct sd_req *req,
				   struct sd_rsp *rsp, void *data,
				   const struct sd_node *sender);
int cluster_force_recover_work(struct request *req);
int cluster_force_recover_main(const struct sd_req *req, struct sd_rsp *rsp,
			       void *data, const struct sd_node *sender);
bool recovery_in_progress(void);
/* Main thread: recovery was enabled again; finish what was deferred. */
void recovery_resume(void);
/* Fetch one object this node should hold but lacks, now. SD_RES_*. */
int recover_object_now(uint64_t oid);
/* While recovering: fetch oid if missing; true if it is here now. */
int recover_missing(uint64_t oid);
int store_create_if_absent(uint64_t oid, const void *data, uint64_t size,
			   uint64_t gen);
/* STAT_RECOVERY: state 0 preparing the list, 1 recovering, 2 notifying. */
void recovery_get_state(bool *in_recovery, uint32_t *state, uint64_t *done,
			uint64_t *total);

/* REWEIGHT main phase (reweight.c): re-measure this node's space and
 * announce it if it moved by 1% or more. */
int cluster_reweight_main(const struct sd_req *req, struct sd_rsp *rsp,
			  void *data, const struct sd_node *sender);

/* ---- recovery throttling (recovery_throttle.c) ---- */

/* At most max objects per interval_ms; 0 0 means unthrottled. */
void recovery_throttle_get(uint32_t *max, uint64_t *interval_ms);
int recovery_throttle_set(uint32_t max, uint64_t interval_ms);
/* The recovery thread, before each object: sleep as the throttle says. */
void recovery_throttle_wait(void);
uint64_t store_generation(void);
bool store_gen_lock(uint64_t gen);
void store_gen_unlock(void);
int store_stale_one(uint64_t oid, uint32_t epoch);
/* Live and stale oids (GET_OBJ_LIST: recovery must see orphaned copies). */
int store_list_all(uint64_t **oids, size_t *nr);
/* The newest stale copy of oid: its epoch tag. */
bool store_stale_newest(uint64_t oid, uint32_t *tag);
/* The live copy (*tag 0) or else the newest stale one (*tag its epoch). */
int store_read_any(uint64_t oid, uint64_t offset, uint32_t len, void *buf,
		   uint32_t *tag);
/* Drop every stale copy of oid (the object was deleted). */
void store_remove_stale(uint64_t oid);
/* Remove stale copies tagged before epoch; the number removed. */
size_t store_purge_stale(uint32_t before_epoch);

/* ---- the VDI namespace (vdi.c) ---- */

int vdi_init(void);
/* Copies/policy/shift for a vid (cluster defaults if unknown). */
void vdi_get_attrs(uint32_t vid, uint8_t *copies, uint8_t *policy,
		   uint8_t *shift);
int get_obj_copies(uint64_t oid);
/* The VDI was deleted (its inode is a tombstone). */
bool vdi_is_deleted(uint32_t vid);
/* Scan local inodes into the VDI state (startup). */
int vdi_scan_local(void);
void vdi_clear_all(void);
/* Encode all VDI states; caller frees. */
size_t vdi_state_snapshot(uint8_t **buf);
void vdi_state_merge(const uint8_t *buf, size_t len);
void vdi_bitmap_copy(uint8_t *dst, bool deleted);

/* Work and main phases of VDI cluster ops */
int vdi_new_work(struct request *req);
int vdi_new_after(struct request *req);
int vdi_state_peer(struct request *req);
int vdi_new_main(const struct sd_req *req, struct sd_rsp *rsp, void *data,
		 const struct sd_node *sender);
int vdi_del_work(struct request *req);
int vdi_del_main(const struct sd_req *req, struct sd_rsp *rsp, void *data,
		 const struct sd_node *sender);
int vdi_lookup_work(struct request *req);
int vdi_lock_work(struct request *req);
int vdi_lock_main(const struct sd_req *req, struct sd_rsp *rsp, void *data,
		 const struct sd_node *sender);
int vdi_release_main(const struct sd_req *req, struct sd_rsp *rsp, void *data,
		 const struct sd_node *sender);
/*
 * LOCK_VDI flag that only exec_local_request callers can set (vdi_lock_work
 * strips it from client requests): take the lock whatever the cluster's
 * USE_LOCK flag says, and refuse it while anybody holds it, this node
 * included. The NBD export's writer lock.
 */
#define SD_FLAG_CMD_EXCL_LOCK 0x8000
/* Who holds vid's lock: 2 locked (owner set), 3 shared, 1 or 0 none. */
uint32_t vdi_lock_state(uint32_t vid, struct node_id *owner);
/* GET_VDI_INFO's lookup for other modules: (name, tag, snapid) to vid and
 * inode header (spec 4.3). SD_RES_* code. */
int vdi_lookup_by_name(const char *name, const char *tag, uint32_t snapid,
		       uint32_t *vid, struct sd_inode_header *inode);
/* Main phase of ALTER_VDI_COPY: this node's copy count for vid. */
int vdi_set_copies(uint32_t vid, uint8_t copies);

/* ---- VDI attributes (vdi_attr.c) and copy counts (vdi_copies.c) ---- */

int vdi_attr_work(struct request *req);
int vdi_alter_copy_work(struct request *req);
int vdi_alter_copy_main(const struct sd_req *req, struct sd_rsp *rsp,
			void *data, const struct sd_node *sender);
int vdi_alter_copy_after(struct request *req);
/* Fetches of other members' VDI states (group.c) report here. */
void vdi_sync_started(void);
void vdi_sync_finished(bool ok);
/* Wait (bounded) for pending fetches; true if every one succeeded. */
bool vdi_states_complete(void);
/* Is vid a snapshot (its data objects are read-only)? */
int vdi_read_inode_header(uint32_t vid, struct sd_inode_header *h);
bool vdi_is_snapshot(uint32_t vid);
/* The live (not deleted) VDIs of vid's family: every VDI with the same
 * root ancestor, vid included if live. Caller frees *members. */
void vdi_family(uint32_t vid, uint32_t **members, size_t *nr);

/* ---- index views and space reclamation (reclaim.c) ---- */

struct obj_ref {
	uint32_t idx; /* data object index */
	uint32_t vid; /* the vid whose object (vid, idx) is referenced */
};

struct obj_refs {
	struct obj_ref *ent;
	size_t nr, cap;
	uint64_t *leaves; /* B-tree leaf objects met while reading */
	size_t nr_leaves;
};

/* Open the B-tree of hyper volume vid (header h) with object I/O through
 * the gateway. ops and copies must outlive bt; the caller frees bt->root. */
int vdi_open_btree(uint32_t vid, const struct sd_inode_header *h,
		   struct btree *bt, struct btree_ops *ops, uint8_t *copies);
void obj_refs_add(struct obj_refs *r, uint32_t idx, uint32_t vid);
void obj_refs_free(struct obj_refs *r);
/* Append the non-zero index entries of inode vid (header h) with index in
 * [lo, hi], for flat VDIs and hyper volumes alike. SD_RES_* code. */
int vdi_read_index(uint32_t vid, const struct sd_inode_header *h,
		   uint32_t lo, uint32_t hi, struct obj_refs *r);
/*
 * vid no longer references the objects in cand: remove those that no live
 * member of its family references. cand is sorted and deduplicated in
 * place. On a read failure nothing is removed and the error returned.
 */
int vdi_reclaim(uint32_t vid, struct obj_refs *cand);

#endif
