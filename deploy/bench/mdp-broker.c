/*
 * A reference point for deploy/bench.sh, not part of Tsunagu: the least a 7/MDP broker can do in
 * C. It registers workers by READY, hands each client request to the next worker of its service
 * (round robin, no credit) and each REPLY back to its client, moving frames as zmq_msg_t without
 * copying them. No tokens, no envelope, no deadlines, no heartbeats, no retries, no bounds: what
 * the gateway does beyond this is what its ratio to this broker costs.
 *   mdp-broker CLIENT_ENDPOINT WORKER_ENDPOINT
 */
#include <stdio.h>
#include <string.h>
#include <zmq.h>

#define MAX_FRAMES 32
#define MAX_WORKERS 64

struct worker { unsigned char id[256]; size_t id_size; char service[256]; size_t service_size; };
static struct worker workers[MAX_WORKERS];
static int worker_count = 0, next_worker = 0;

/* Reads one whole message (at most MAX_FRAMES frames kept); 0 when one was read. */
static int receive(void *socket, zmq_msg_t *frames, int *count) {
    int n = 0, more = 1;
    while (more) {
        zmq_msg_t *frame = &frames[n < MAX_FRAMES ? n : MAX_FRAMES - 1];
        if (n >= MAX_FRAMES) zmq_msg_close(frame);
        zmq_msg_init(frame);
        if (zmq_msg_recv(frame, socket, n == 0 ? ZMQ_DONTWAIT : 0) < 0) { zmq_msg_close(frame); return -1; }
        more = zmq_msg_more(frame);
        if (n < MAX_FRAMES) n++;
    }
    *count = n;
    return 0;
}

static void send_bytes(void *socket, const void *bytes, size_t size, int more) {
    zmq_send(socket, bytes, size, more ? ZMQ_SNDMORE : 0);
}

static int same(zmq_msg_t *frame, const void *bytes, size_t size) {
    return zmq_msg_size(frame) == size && memcmp(zmq_msg_data(frame), bytes, size) == 0;
}

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: mdp-broker CLIENT_ENDPOINT WORKER_ENDPOINT\n"); return 2; }
    void *context = zmq_ctx_new();
    void *clients = zmq_socket(context, ZMQ_ROUTER), *service_side = zmq_socket(context, ZMQ_ROUTER);
    int hwm = 100000;
    void *sockets[2] = {clients, service_side};
    for (int i = 0; i < 2; i++) {
        zmq_setsockopt(sockets[i], ZMQ_SNDHWM, &hwm, sizeof hwm);
        zmq_setsockopt(sockets[i], ZMQ_RCVHWM, &hwm, sizeof hwm);
    }
    if (zmq_bind(clients, argv[1]) != 0 || zmq_bind(service_side, argv[2]) != 0) { perror("bind"); return 1; }
    zmq_pollitem_t items[] = {{clients, 0, ZMQ_POLLIN, 0}, {service_side, 0, ZMQ_POLLIN, 0}};
    zmq_msg_t frames[MAX_FRAMES];
    int n;
    for (;;) {
        if (zmq_poll(items, 2, -1) < 0) continue;
        if (items[1].revents & ZMQ_POLLIN) while (receive(service_side, frames, &n) == 0) {
            /* [worker, "", MDPW01, command, ...] */
            if (n >= 5 && same(&frames[3], "\x01", 1) && worker_count < MAX_WORKERS
                && zmq_msg_size(&frames[0]) <= 256 && zmq_msg_size(&frames[4]) <= 256) {
                struct worker *w = &workers[worker_count++];  /* READY [.., service, ...] */
                w->id_size = zmq_msg_size(&frames[0]);
                memcpy(w->id, zmq_msg_data(&frames[0]), w->id_size);
                w->service_size = zmq_msg_size(&frames[4]);
                memcpy(w->service, zmq_msg_data(&frames[4]), w->service_size);
            } else if (n >= 6 && same(&frames[3], "\x03", 1)) {
                /* REPLY [.., client, "", body...] -> [client, "", MDPC01, service, body...] */
                const struct worker *from = NULL;
                for (int i = 0; i < worker_count; i++)
                    if (same(&frames[0], workers[i].id, workers[i].id_size)) from = &workers[i];
                zmq_msg_send(&frames[4], clients, ZMQ_SNDMORE);
                send_bytes(clients, "", 0, 1);
                send_bytes(clients, "MDPC01", 6, 1);
                send_bytes(clients, from ? from->service : "", from ? from->service_size : 0, n > 6);
                for (int i = 6; i < n; i++) zmq_msg_send(&frames[i], clients, i < n - 1 ? ZMQ_SNDMORE : 0);
            }
            for (int i = 0; i < n; i++) zmq_msg_close(&frames[i]);
        }
        if (items[0].revents & ZMQ_POLLIN) while (receive(clients, frames, &n) == 0) {
            /* [client, "", MDPC01, service, body...] -> [worker, "", MDPW01, REQUEST, client, "", body...] */
            for (int k = 0; n >= 4 && k < worker_count; k++) {
                int i = (next_worker + k) % worker_count;
                if (!same(&frames[3], workers[i].service, workers[i].service_size)) continue;
                next_worker = i + 1;
                send_bytes(service_side, workers[i].id, workers[i].id_size, 1);
                send_bytes(service_side, "", 0, 1);
                send_bytes(service_side, "MDPW01", 6, 1);
                send_bytes(service_side, "\x02", 1, 1);
                zmq_msg_send(&frames[0], service_side, ZMQ_SNDMORE);
                send_bytes(service_side, "", 0, n > 4);
                for (int j = 4; j < n; j++) zmq_msg_send(&frames[j], service_side, j < n - 1 ? ZMQ_SNDMORE : 0);
                break;
            }
            for (int i = 0; i < n; i++) zmq_msg_close(&frames[i]);
        }
    }
}
