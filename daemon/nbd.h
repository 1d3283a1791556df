/*
 * sheep's NBD server (nbd.c): started once the daemon has joined its
 * cluster, stopped on the way out. The export layer it serves is
 * nbd_export.h.
 */
#ifndef SHEEP_NBD_H
#define SHEEP_NBD_H

#include <stdbool.h>

/*
 * Listen for NBD clients on port (address NULL: every address, IPv4 and
 * IPv6), serving at most max_conns connections at a time. Starts the
 * listener and the worker threads. 0 or -errno (-EADDRINUSE: nothing could
 * be bound).
 */
int nbd_init(const char *address, int port, unsigned int max_conns);

/*
 * Begin the shutdown: stop accepting, stop reading requests, let those in
 * flight finish and close every connection (each closes its export, which
 * releases the VDI's lock). Returns at once; main thread, any number of
 * times.
 */
void nbd_stop(void);

/*
 * After nbd_stop: has every connection closed its export (or did the
 * shutdown give up waiting after a few seconds)? True if the server never
 * started. The main loop must keep running meanwhile: closing an export
 * needs it.
 */
bool nbd_stopped(void);

#endif
