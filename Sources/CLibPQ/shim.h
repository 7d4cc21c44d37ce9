#ifndef TSUNAGU_CLIBPQ_SHIM_H
#define TSUNAGU_CLIBPQ_SHIM_H
#include <libpq-fe.h>

/* libpq prints NOTICEs to stderr unless a processor is set; we drop them (they are not errors). */
static void tsunagu_pq_ignore_notice(void *arg, const char *message) { (void)arg; (void)message; }
static inline void tsunagu_pq_silence_notices(PGconn *conn) {
    PQsetNoticeProcessor(conn, tsunagu_pq_ignore_notice, (void *)0);
}
#endif
