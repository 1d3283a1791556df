/*
 * Text for protocol result codes (spec 3), exactly as the upstream tools
 * print it, since dog's error messages and scripts that match them depend on
 * the wording. Codes that upstream leaves without text print as
 * "Invalid error code <hex>" from a per-thread buffer.
 */
#include <stdio.h>

#include "sheepdog/proto.h"

/* clang-format off */
static const char *const sd_result_text[256] = {
	[SD_RES_SUCCESS] = "Success",
	[SD_RES_UNKNOWN] = "Unknown error",
	[SD_RES_NO_OBJ] = "No object found",
	[SD_RES_EIO] = "I/O error",
	[SD_RES_VDI_EXIST] = "VDI exists already",
	[SD_RES_INVALID_PARMS] = "Invalid parameters",
	[SD_RES_SYSTEM_ERROR] = "System error",
	[SD_RES_VDI_LOCKED] = "VDI is already locked",
	[SD_RES_NO_VDI] = "No VDI found",
	[SD_RES_NO_BASE_VDI] = "No base VDI found",
	[SD_RES_VDI_READ] = "Failed to read from requested VDI",
	[SD_RES_VDI_WRITE] = "Failed to write to requested VDI",
	[SD_RES_BASE_VDI_READ] = "Failed to read from base VDI",
	[SD_RES_BASE_VDI_WRITE] = "Failed to write to base VDI",
	[SD_RES_NO_TAG] = "Failed to find requested tag",
	[SD_RES_STARTUP] = "System is still booting",
	[SD_RES_VDI_NOT_LOCKED] = "VDI is not locked",
	[SD_RES_SHUTDOWN] = "System is shutting down",
	[SD_RES_NO_MEM] = "Out of memory on server",
	[SD_RES_FULL_VDI] = "Maximum number of VDIs reached",
	[SD_RES_VER_MISMATCH] = "Protocol version mismatch",
	[SD_RES_NO_SPACE] = "Server has no space for new objects",
	[SD_RES_WAIT_FOR_FORMAT] = "Waiting for cluster to be formatted",
	[SD_RES_WAIT_FOR_JOIN] = "Waiting for other nodes to join cluster",
	[SD_RES_JOIN_FAILED] = "Node has failed to join cluster",
	[SD_RES_HALT] = "IO has halted as there are not enough living nodes",
	[SD_RES_READONLY] = "Object is read-only",
	[SD_RES_INODE_INVALIDATED] = "Inode object is invalidated",
	[SD_RES_OLD_NODE_VER] = "Request has an old epoch",
	[SD_RES_NEW_NODE_VER] = "Request has a new epoch",
	[SD_RES_NOT_FORMATTED] = "Cluster has not been formatted",
	[SD_RES_INVALID_CTIME] = "Creation times differ",
	[SD_RES_INVALID_EPOCH] = "Invalid epoch",
	[SD_RES_NETWORK_ERROR] = "Network error between sheep",
	[SD_RES_NO_CACHE] = "No cache object found",
	[SD_RES_BUFFER_SMALL] = "The buffer is too small",
	[SD_RES_FORCE_RECOVER] =
		"Cluster is running/halted and cannot be force recovered",
	[SD_RES_NO_STORE] = "Targeted backend store is not found",
	[SD_RES_NO_SUPPORT] = "Operation is not supported",
	[SD_RES_NODE_IN_RECOVERY] = "Targeted node is in recovery",
	[SD_RES_KILLED] = "Node is killed",
	[SD_RES_OID_EXIST] = "Object ID exists already",
	[SD_RES_AGAIN] = "Ask to try again",
	[SD_RES_STALE_OBJ] = "Object may be stale",
	[SD_RES_CLUSTER_ERROR] = "Cluster driver error",
	[SD_RES_GATEWAY_MODE] = "Targeted node is gateway mode",
	[SD_RES_INVALID_VNODES_STRATEGY] = "Invalid cluster vnodes strategy",
};
/* clang-format on */

const char *sd_strerror(uint32_t result)
{
	static __thread char unknown[32];

	if (result < 256 && sd_result_text[result])
		return sd_result_text[result];
	snprintf(unknown, sizeof(unknown), "Invalid error code %x", result);
	return unknown;
}
