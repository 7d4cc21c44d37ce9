#ifndef TSUNAGU_CLIBZMQ_SHIM_H
#define TSUNAGU_CLIBZMQ_SHIM_H
#include <zmq.h>
#include <errno.h>
#include <unistd.h>
#include <fcntl.h>

/* errno is a macro Swift cannot always read directly; these keep the read next to the call. */
static inline int tsunagu_errno(void) { return errno; }
static inline void tsunagu_set_errno(int value) { errno = value; }
#endif
