/*
 * The cluster driver interface (spec 13). A driver delivers membership
 * events and messages in one total order, the same on every sheep, by
 * calling the sd_*_handler functions below on the main thread. The rest of
 * the daemon only sees this interface, so local, ZooKeeper and corosync
 * drivers are interchangeable.
 */
#ifndef SHEEP_CLUSTER_H
#define SHEEP_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>

#include "sheepdog/layout.h"

enum cluster_join_result {
	CJ_RESULT_SUCCESS,
	CJ_RESULT_FAIL,
};

struct cluster_driver {
	const char *name;
	/* Parse the option string after "name:" (may be NULL). */
	int (*init)(const char *option);
	/* The address this node is known by, 16-byte form. */
	int (*get_local_addr)(uint8_t addr[16]);
	/* Ask to join; the payload goes to the join handler of a member. */
	int (*join)(const struct sd_node *myself, const void *opaque,
		    size_t opaque_len);
	int (*leave)(void);
	/* Totally ordered broadcast to every member, including the sender. */
	int (*notify)(const void *msg, size_t msg_len);
	/* Cluster-wide exclusion: sd_block_handler runs on every member when
	 * this node's block reaches the head; unblock broadcasts msg as a
	 * notify and releases it. */
	int (*block)(void);
	int (*unblock)(const void *msg, size_t msg_len);
	int (*update_node)(const struct sd_node *node);
};

/* Called by drivers, on the main thread, in total order. */
/* On one member: judge a join. reply has *reply_len bytes of room and gets
 * the payload every node will see in sd_accept_handler. */
enum cluster_join_result sd_join_handler(const struct sd_node *joining,
					 const struct sd_node *members,
					 size_t nr_members, const void *opaque,
					 size_t opaque_len, void *reply,
					 size_t *reply_len);
void sd_accept_handler(const struct sd_node *joined,
		       const struct sd_node *members, size_t nr_members,
		       const void *opaque, size_t opaque_len);
void sd_join_rejected(const void *opaque, size_t opaque_len);
void sd_leave_handler(const struct sd_node *left,
		      const struct sd_node *members, size_t nr_members);
void sd_notify_handler(const struct sd_node *sender, const void *msg,
		       size_t msg_len);
/* True when the block belongs to this node and its work was started. */
void sd_block_handler(const struct sd_node *sender);
void sd_update_node_handler(const struct sd_node *node);

extern struct cluster_driver cdrv_local;

#endif
