/*
 * server.c: binding, the listener actor, and the server's lifetime.
 *
 * The listening socket is non-blocking and registered with the poller by
 * the listener actor, which parks in actor_wait until a connection is
 * pending; each accepted socket gets its own connection actor. No thread is
 * created per listener or per connection.
 *
 * Running out of descriptors (EMFILE/ENFILE) or kernel memory on accept must
 * neither spin nor kill the listener: the pending connection stays in the
 * backlog, so an immediate retry would fail again at once. The listener
 * parks instead, for a delay that doubles from 10 ms up to 1 s and resets
 * after the next successful accept. At the connection limit it stops
 * accepting (the kernel's backlog holds new arrivals) until a connection
 * ends and wakes it.
 *
 * Stopping a server closes the listening socket at once, unless upgraded
 * (WebSocket) connections are open: they are being asked to close (1001)
 * and may take up to their drain timeout, and a client that reconnects
 * meanwhile should learn to come back later rather than find the port
 * closed. So the listener stays through the drain, and every request that
 * arrives is answered 503 with Retry-After and Connection: close; it closes
 * when the last upgraded connection has ended or the longest drain timeout
 * has passed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "actor/actor.h"
#include "http/server.h"
#include "http/tls.h"

#define BACKOFF_MIN_MS 10
#define BACKOFF_MAX_MS 1000
#define ACCEPT_BATCH 64

void snow_http_opts_init(SnowHttpOpts *o)
{
    memset(o, 0, sizeof *o);
    o->max_request_line = HTTP_DEFAULT_MAX_REQUEST_LINE;
    o->max_header_bytes = HTTP_DEFAULT_MAX_HEADER_BYTES;
    o->max_headers = HTTP_DEFAULT_MAX_HEADERS;
    o->max_body = HTTP_DEFAULT_MAX_BODY;
    o->header_timeout_ms = HTTP_DEFAULT_HEADER_TIMEOUT_MS;
    o->idle_timeout_ms = HTTP_DEFAULT_IDLE_TIMEOUT_MS;
    o->body_timeout_ms = HTTP_DEFAULT_BODY_TIMEOUT_MS;
    o->write_timeout_ms = HTTP_DEFAULT_WRITE_TIMEOUT_MS;
    o->max_connections = 10000;
    o->backlog = 511;
    o->request_timeout_ms = HTTP_DEFAULT_REQUEST_TIMEOUT_MS;
    o->max_buffered_bytes = HTTP_DEFAULT_MAX_BUFFERED;
}

void http_server_ref(struct SnowHttpServer *s)
{
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
}

void http_server_unref(struct SnowHttpServer *s)
{
    /* acq_rel: whoever frees must see the other owners' last writes. */
    if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
        return;
    http_tls_config_free(s->tls);
    http_router_unref(s->router);
    pthread_mutex_destroy(&s->conns_lock);
    free(s);
}

/* The budget counter orders nothing else: it only bounds a sum, so its
 * operations are relaxed. The compare-and-swap keeps concurrent growth
 * from overshooting the budget. */
int http_server_charge(struct SnowHttpServer *s, size_t more)
{
    size_t cur = atomic_load_explicit(&s->buffered, memory_order_relaxed);
    do {
        if (more > s->max_buffered || cur > s->max_buffered - more)
            return -ENOBUFS;
    } while (!atomic_compare_exchange_weak_explicit(&s->buffered, &cur, cur + more, memory_order_relaxed,
                                                    memory_order_relaxed));
    return 0;
}

void http_server_charge_anyway(struct SnowHttpServer *s, size_t more)
{
    atomic_fetch_add_explicit(&s->buffered, more, memory_order_relaxed);
}

void http_server_uncharge(struct SnowHttpServer *s, size_t less)
{
    atomic_fetch_sub_explicit(&s->buffered, less, memory_order_relaxed);
}

void http_server_conn_link(struct SnowHttpServer *s, struct http_conn_link *l)
{
    pthread_mutex_lock(&s->conns_lock);
    l->next = &s->conns;
    l->prev = s->conns.prev;
    s->conns.prev->next = l;
    s->conns.prev = l;
    pthread_mutex_unlock(&s->conns_lock);
}

void http_server_conn_unlink(struct SnowHttpServer *s, struct http_conn_link *l)
{
    /* The test is under the lock too: a neighbour's unlink rewrites this
     * link's next and prev fields while holding it. */
    pthread_mutex_lock(&s->conns_lock);
    if (l->next) {
        l->prev->next = l->next;
        l->next->prev = l->prev;
        l->prev = l->next = NULL;
    }
    pthread_mutex_unlock(&s->conns_lock);
}

void http_server_conn_move(struct SnowHttpServer *s, struct http_conn_link *from, struct http_conn_link *to)
{
    pthread_mutex_lock(&s->conns_lock);
    to->pid = from->pid;
    if (from->next) {
        to->prev = from->prev;
        to->next = from->next;
        from->prev->next = to;
        from->next->prev = to;
        from->prev = from->next = NULL;
    } else {
        to->prev = to->next = NULL;
    }
    pthread_mutex_unlock(&s->conns_lock);
}

/* Asks every connection to end: each finishes the request it is serving
 * and closes instead of waiting for another (conn.c, read_or_stop). */
static void stop_conns(struct SnowHttpServer *s)
{
    pthread_mutex_lock(&s->conns_lock);
    size_t n = 0;
    for (struct http_conn_link *l = s->conns.next; l != &s->conns; l = l->next)
        n++;
    SnowPid *pids = n ? malloc(n * sizeof *pids) : NULL;
    size_t k = 0;
    for (struct http_conn_link *l = s->conns.next; pids && l != &s->conns; l = l->next)
        pids[k++] = l->pid;
    pthread_mutex_unlock(&s->conns_lock);
    /* Sent after the lock is dropped: a send may wake a worker. A
     * connection that ends meanwhile just makes its send fail. If the list
     * could not be copied, connections still end at their idle timeout. */
    for (size_t i = 0; i < k; i++)
        actor_send_raw(pids[i], SNOW_TAG_STOP, 0, NULL, 0);
    free(pids);
}

static void wake_listener(struct SnowHttpServer *s)
{
    SnowPid pid = (SnowPid)atomic_load(&s->listener);
    if (pid && snow_rt_workers() > 0)
        snow_actor_send(pid, HTTP_LISTENER_WAKE, NULL, 0);
}

void http_server_upgraded(struct SnowHttpServer *s, int drain_timeout_ms)
{
    if (drain_timeout_ms < 1)
        drain_timeout_ms = 1;
    int cur = atomic_load(&s->drain_ms);
    while (cur < drain_timeout_ms && !atomic_compare_exchange_weak(&s->drain_ms, &cur, drain_timeout_ms))
        ;
    atomic_fetch_add(&s->nupgraded, 1);
}

void http_server_upgraded_done(struct SnowHttpServer *s)
{
    /* seq_cst pairs with snow_http_server_stop's "read nupgraded, then set
     * draining and stopping, then wake the listener": either the stop saw
     * this connection and the listener, woken by it, re-reads the count, or
     * this load sees the drain and wakes the listener itself. */
    if (atomic_fetch_sub(&s->nupgraded, 1) == 1 && atomic_load(&s->draining))
        wake_listener(s);
}

int http_server_retry_after(struct SnowHttpServer *s)
{
    if (!atomic_load(&s->draining))
        return 0;
    int64_t left = atomic_load(&s->drain_end_ns) - rt_now_ns();
    int sec = left > 0 ? (int)((left + 999999999) / 1000000000) : 0;
    return sec > 0 ? sec : 1;
}

void http_server_conn_done(struct SnowHttpServer *s)
{
    atomic_fetch_sub(&s->nconns, 1);
    /* seq_cst pairs with the listener's "paused = 1, then re-check nconns":
     * either it sees the freed slot or we see it paused and wake it. */
    if (atomic_load(&s->paused))
        wake_listener(s);
}

/*
 * A listener's mailbox only ever holds HTTP_LISTENER_WAKE (a freed slot, a
 * stop) or a runtime message such as SNOW_TAG_STOP: each means "look at the
 * server's state again", which the loop does next, and none carries data.
 * So every message is taken out after a wake-up; one left queued would end
 * each later wait at once.
 */
static void drain_mailbox(void)
{
    SnowMessage *m;
    while ((m = snow_actor_receive(0)) != NULL)
        if (m->tag != HTTP_LISTENER_WAKE && m->tag != SNOW_TAG_STOP)
            rt_log(RT_LOG_DEBUG, "http: listener dropped a message with tag %#llx", (unsigned long long)m->tag);
}

static int set_limits(struct SnowHttpServer *s, const SnowHttpOpts *o)
{
    if (o->max_request_line < 16 || o->max_header_bytes < 16 || o->max_headers < 1 || o->max_connections < 1 ||
        o->max_request_line > (1u << 20) || o->max_header_bytes > (16u << 20) || o->max_headers > 10000 ||
        o->max_body > ((size_t)1 << 40))
        return SNOW_EBAD_CONFIG;
    http_limits_default(&s->lim);
    s->lim.max_request_line = o->max_request_line;
    s->lim.max_header_bytes = o->max_header_bytes;
    s->lim.max_headers = o->max_headers;
    s->lim.max_body = o->max_body;
    s->lim.header_timeout_ms = o->header_timeout_ms;
    s->lim.idle_timeout_ms = o->idle_timeout_ms;
    s->lim.body_timeout_ms = o->body_timeout_ms;
    /* 0 in the two newest fields (a struct zeroed instead of initialised)
     * means their defaults. */
    s->lim.request_timeout_ms = o->request_timeout_ms > 0 ? o->request_timeout_ms : HTTP_DEFAULT_REQUEST_TIMEOUT_MS;
    s->write_timeout_ms = o->write_timeout_ms;
    s->max_buffered = o->max_buffered_bytes ? o->max_buffered_bytes : HTTP_DEFAULT_MAX_BUFFERED;
    s->max_conns = o->max_connections;
    return 0;
}

/* Numeric addresses only: a name lookup would block. */
static int bind_listen(struct SnowHttpServer *s, const char *host, int port, int backlog)
{
    struct sockaddr_storage ss;
    socklen_t len;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    if (port < 0 || port > 65535)
        return SNOW_EBAD_CONFIG;
    if (!host || !*host)
        host = "0.0.0.0";
    else if (strcmp(host, "localhost") == 0)
        host = "127.0.0.1";
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        len = sizeof *a4;
    } else if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        len = sizeof *a6;
    } else {
        return SNOW_EBAD_CONFIG;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    /* Responses are written whole; Nagle would only delay them. Set here,
     * it is inherited by every accepted socket (Linux copies TCP_NODELAY
     * to the connections of a listener), which saves a system call per
     * connection. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, backlog > 0 ? backlog : 511) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    len = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &len);
    s->port = ntohs(ss.ss_family == AF_INET ? a4->sin_port : a6->sin6_port);
    s->fd = fd;
    return 0;
}

/* ---- the listener actor ---- */

struct listener {
    struct SnowHttpServer *srv;
    SnowIo *io;
};

static void listener_terminate(int reason, void *arg)
{
    (void)reason;
    struct listener *l = arg;
    if (l->io)
        snow_io_close(l->io);
    else
        close(l->srv->fd);
    atomic_store(&l->srv->listener, 0);
    http_server_unref(l->srv);
    free(l);
}

static void backoff(int *delay_ms, int err)
{
    *delay_ms = *delay_ms ? *delay_ms * 2 : BACKOFF_MIN_MS;
    if (*delay_ms > BACKOFF_MAX_MS)
        *delay_ms = BACKOFF_MAX_MS;
    if (*delay_ms == BACKOFF_MIN_MS || *delay_ms == BACKOFF_MAX_MS)
        rt_log(RT_LOG_WARN, "http: accept failed (%s); retrying in %d ms", snow_strerror(err), *delay_ms);
    actor_wait(NULL, SNOW_WAIT_MAILBOX, actor_deadline_after_ms(*delay_ms));
    drain_mailbox();
}

static void spawn_conn(struct SnowHttpServer *s, int fd)
{
    struct http_conn_args a = {s, fd, rt_now_ns()};
    atomic_fetch_add(&s->nconns, 1);
    http_server_ref(s);
    /* The socket and the server reference travel in the arguments: if the
     * actor is killed (runtime shutdown) before http_conn_main takes them
     * over, http_conn_abandoned gives them back. */
    struct actor_spawn_opts o = {.worker = -1, .terminate = http_conn_abandoned};
    if (!actor_spawn(http_conn_main, &a, sizeof a, &o)) {
        close(fd);
        atomic_fetch_sub(&s->nconns, 1);
        http_server_unref(s);
    }
}

void http_server_adopt(struct SnowHttpServer *s, int fd)
{
    spawn_conn(s, fd);
}

/*
 * After the stop: true while the drain goes on (upgraded connections still
 * running, before the deadline), with *until set to its end. When it is
 * over, new connections are refused from then on (the caller returns and
 * the socket closes), and connections accepted during the drain that still
 * wait for their first request are told to go: they see draining cleared
 * (read_or_stop) or, if already parked, get the stop message.
 */
static bool drain_goes_on(struct SnowHttpServer *s, int64_t *until)
{
    if (!atomic_load(&s->draining))
        return false;
    int64_t end = atomic_load(&s->drain_end_ns);
    if (atomic_load(&s->nupgraded) > 0 && rt_now_ns() < end) {
        *until = end;
        return true;
    }
    atomic_store(&s->draining, 0);
    stop_conns(s);
    return false;
}

static void listener_main(void *arg)
{
    struct listener *l = calloc(1, sizeof *l);
    struct SnowHttpServer *s = *(struct SnowHttpServer **)arg;
    if (!l) {
        close(s->fd);
        http_server_unref(s);
        return;
    }
    l->srv = s;
    snow_actor_set_terminate(listener_terminate, l);
    int err;
    l->io = snow_io_open(s->fd, &err);
    if (!l->io) {
        rt_log(RT_LOG_ERROR, "http: cannot watch the listening socket: %s", snow_strerror(err));
        return;
    }
    int delay = 0, batch = 0;
    int64_t until = -1; /* the drain's end, once stopped */
    while (!atomic_load(&s->stopping) || drain_goes_on(s, &until)) {
        if (atomic_load(&s->nconns) >= s->max_conns) {
            atomic_store(&s->paused, 1);
            if (atomic_load(&s->nconns) >= s->max_conns && !atomic_load(&s->stopping))
                actor_wait(NULL, SNOW_WAIT_MAILBOX, -1);
            else if (until >= 0 && atomic_load(&s->nconns) >= s->max_conns)
                actor_wait(NULL, SNOW_WAIT_MAILBOX, until);
            atomic_store(&s->paused, 0);
            drain_mailbox();
            continue;
        }
        int fd = accept4(s->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        int e = errno;
        if (fd >= 0) {
            delay = 0;
            spawn_conn(s, fd);
            if (++batch >= ACCEPT_BATCH) {
                /* A flood of connections must not starve the rest. */
                batch = 0;
                snow_actor_yield();
            }
            continue;
        }
        batch = 0;
        switch (e) {
        case EAGAIN:
#if EAGAIN != EWOULDBLOCK
        case EWOULDBLOCK:
#endif
            actor_wait(l->io, SNOW_WAIT_READABLE | SNOW_WAIT_MAILBOX, until);
            drain_mailbox();
            break;
        case EINTR:
        case ECONNABORTED:
        case EPROTO:
        case EPERM:
            break; /* that connection is gone; the next may be fine */
        default:
            /* EMFILE, ENFILE, ENOBUFS, ENOMEM and anything unexpected. */
            backoff(&delay, -e);
            break;
        }
    }
}

/* ---- public API ---- */

static struct SnowHttpServer *server_new(SnowRouter *router, const char *host, int port, const SnowHttpOpts *opts,
                                         int *err)
{
    SnowHttpOpts defaults;
    if (!opts) {
        snow_http_opts_init(&defaults);
        opts = &defaults;
    }
    *err = 0;
    if (!router) {
        *err = -EINVAL;
        return NULL;
    }
    if (snow_rt_workers() <= 0) {
        *err = SNOW_ENOT_RUNNING;
        return NULL;
    }
    struct SnowHttpServer *s = calloc(1, sizeof *s);
    if (!s) {
        *err = -ENOMEM;
        return NULL;
    }
    s->fd = -1;
    atomic_init(&s->refs, 1);
    pthread_mutex_init(&s->conns_lock, NULL);
    s->conns.prev = s->conns.next = &s->conns;
    if ((*err = set_limits(s, opts)) != 0)
        goto fail;
    if ((opts->tls_cert_file || opts->tls_key_file) &&
        (*err = http_tls_config_load(&s->tls, opts->tls_cert_file, opts->tls_key_file)) != 0)
        goto fail;
    if ((*err = bind_listen(s, host, port, opts->backlog)) != 0)
        goto fail;
    http_router_ref(router);
    s->router = router;
    if (opts->on_listen)
        opts->on_listen(s->port, opts->on_listen_arg);
    return s;
fail:
    http_tls_config_free(s->tls);
    free(s);
    return NULL;
}

static int start_listener(struct SnowHttpServer *s, int link)
{
    http_server_ref(s); /* the listener's */
    struct actor_spawn_opts o = {.worker = -1, .link = link};
    SnowPid pid = actor_spawn(listener_main, &s, sizeof s, &o);
    if (!pid) {
        close(s->fd);
        http_server_unref(s);
        return -ENOMEM;
    }
    /* If the listener already ended, the pid is stale; sending to it then
     * fails harmlessly because pids are never reused. */
    atomic_store(&s->listener, pid);
    return 0;
}

SnowHttpServer *snow_http_server_start(SnowRouter *router, const char *host, int port, const SnowHttpOpts *opts,
                                       int *err)
{
    int e;
    struct SnowHttpServer *s = server_new(router, host, port, opts, &e);
    if (s && (e = start_listener(s, 0)) != 0) {
        http_server_unref(s);
        s = NULL;
    }
    if (err)
        *err = e;
    return s;
}

int snow_http_server_port(const SnowHttpServer *s)
{
    return s ? s->port : -1;
}

void snow_http_server_stop(SnowHttpServer *s)
{
    if (!s)
        return;
    if (atomic_load(&s->nupgraded) > 0 && snow_rt_workers() > 0) {
        atomic_store(&s->drain_end_ns, rt_now_ns() + (int64_t)atomic_load(&s->drain_ms) * 1000000);
        atomic_store(&s->draining, 1);
    }
    atomic_store(&s->stopping, 1);
    wake_listener(s);
    if (snow_rt_workers() > 0)
        stop_conns(s);
    http_server_unref(s);
}

int snow_http_serve(SnowRouter *router, const char *host, int port, const SnowHttpOpts *opts)
{
    if (!actor_in_actor())
        return SNOW_ENOT_ACTOR;
    int e;
    struct SnowHttpServer *s = server_new(router, host, port, opts, &e);
    if (!s)
        return e;
    /* Linked: if the serving actor dies, so does its listener. */
    if ((e = start_listener(s, 1)) != 0) {
        http_server_unref(s);
        return e;
    }
    uint64_t ref = snow_actor_monitor((SnowPid)atomic_load(&s->listener));
    /* The listener holds the server now; holding nothing while parked means
     * nothing leaks if this actor is killed here. */
    http_server_unref(s);
    for (;;) {
        static const uint64_t down = SNOW_TAG_DOWN;
        SnowMessage *m = snow_actor_receive_match(&down, 1, -1);
        if (m && m->len >= sizeof(SnowDownMsg) && ((SnowDownMsg *)(void *)m->data)->ref == ref)
            break;
    }
    return 0;
}
