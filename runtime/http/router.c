/*
 * router.c: routes by method and path.
 *
 * Patterns are split into segments and stored in a tree. At each segment a
 * static child is tried first, then the parameter child, then a trailing
 * wildcard, backtracking when a branch finds no handler for the method; so an
 * exact route always beats a parameter route, which beats a wildcard. When
 * the path matches somewhere but no route takes the method, the answer is
 * 405 with Allow listing every method the path accepts (RFC 9110 §15.5.6);
 * when it matches nowhere, 404. Matching runs on the path as sent; only
 * parameter values are percent-decoded.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "http/parse.h"
#include "http/router.h"

#define MAX_SEGMENTS 32
#define MAX_METHOD 32

struct route {
    char method[MAX_METHOD];
    SnowHttpHandler fn;
    void *arg;
    char **pnames; /* one per :param and wildcard along the pattern */
    size_t npnames;
};

struct node {
    char *seg;             /* static segment text; NULL for the root, :param and * nodes */
    struct node **statics;
    size_t nstatics;
    struct node *param;    /* ":name" child */
    struct node *wild;     /* "*" child: matches the rest of the path */
    struct route *routes;
    size_t nroutes;
    const SnowWsHandler *ws;
    http_upgrade_fn ws_upgrade;
    char **ws_pnames;
    size_t ws_npnames;
};

struct mw {
    SnowHttpMiddleware before, after;
    void *arg;
};

struct SnowRouter {
    atomic_int refs;
    struct node root;
    struct mw *mws;
    size_t nmws;
};

/* The WebSocket layer's entry point for snow_router_ws routes: written once
 * at start-up, read at each upgrade. Why it is a file-scope value and not
 * part of the runtime struct: README.md, "the upgrade hook". The release /
 * acquire pair makes the entry point's code and data visible to the
 * connection that calls it. */
static _Atomic(http_upgrade_fn) upgrade_hook;

void http_set_upgrade_hook(http_upgrade_fn fn)
{
    atomic_store_explicit(&upgrade_hook, fn, memory_order_release);
}

http_upgrade_fn http_upgrade_hook(void)
{
    return atomic_load_explicit(&upgrade_hook, memory_order_acquire);
}

SnowRouter *snow_router_new(void)
{
    SnowRouter *r = calloc(1, sizeof *r);
    if (r)
        atomic_init(&r->refs, 1);
    return r;
}

static void free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

static void node_fini(struct node *n)
{
    for (size_t i = 0; i < n->nstatics; i++) {
        node_fini(n->statics[i]);
        free(n->statics[i]);
    }
    free(n->statics);
    if (n->param) {
        node_fini(n->param);
        free(n->param);
    }
    if (n->wild) {
        node_fini(n->wild);
        free(n->wild);
    }
    for (size_t i = 0; i < n->nroutes; i++)
        free_names(n->routes[i].pnames, n->routes[i].npnames);
    free(n->routes);
    free_names(n->ws_pnames, n->ws_npnames);
    free(n->seg);
}

void http_router_ref(SnowRouter *r)
{
    /* Relaxed: a new reference is always taken from an existing one. */
    atomic_fetch_add_explicit(&r->refs, 1, memory_order_relaxed);
}

void http_router_unref(SnowRouter *r)
{
    /* acq_rel: the last owner must see every other owner's use finished. */
    if (r && atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) == 1) {
        node_fini(&r->root);
        free(r->mws);
        free(r);
    }
}

void snow_router_free(SnowRouter *r)
{
    http_router_unref(r);
}

static struct node *child_static(struct node *n, const char *s, size_t len, int create)
{
    for (size_t i = 0; i < n->nstatics; i++)
        if (strlen(n->statics[i]->seg) == len && memcmp(n->statics[i]->seg, s, len) == 0)
            return n->statics[i];
    if (!create)
        return NULL;
    struct node **v = realloc(n->statics, (n->nstatics + 1) * sizeof *v);
    if (!v)
        return NULL;
    n->statics = v;
    struct node *c = calloc(1, sizeof *c);
    if (!c || !(c->seg = strndup(s, len))) {
        free(c);
        return NULL;
    }
    n->statics[n->nstatics++] = c;
    return c;
}

/* Walks/creates the nodes for pattern, collecting parameter names. Returns
 * the final node, NULL with *err set otherwise. */
static struct node *insert_path(SnowRouter *r, const char *pattern, char ***names, size_t *nnames, int *err)
{
    *names = NULL;
    *nnames = 0;
    *err = -EINVAL;
    if (!pattern || pattern[0] != '/')
        return NULL;
    struct node *n = &r->root;
    const char *s = pattern + 1;
    size_t depth = 0;
    char **v = calloc(MAX_SEGMENTS + 1, sizeof *v);
    if (!v) {
        *err = -ENOMEM;
        return NULL;
    }
    for (;;) {
        const char *e = strchr(s, '/');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        if (++depth > MAX_SEGMENTS)
            goto fail;
        for (size_t i = 0; i < len; i++)
            if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f || s[i] == '?' || s[i] == '#')
                goto fail;
        struct node **slot = NULL;
        const char *pname = NULL;
        size_t plen = 0;
        if (len >= 1 && s[0] == '*') {
            if (e)
                goto fail; /* the wildcard must be the last segment */
            slot = &n->wild;
            pname = "*";
            plen = 1;
        } else if (len >= 2 && s[0] == ':') {
            slot = &n->param;
            pname = s + 1;
            plen = len - 1;
        } else if (len >= 1 && s[0] == ':') {
            goto fail;
        }
        if (slot) {
            if (*nnames >= HTTP_MAX_PARAMS)
                goto fail;
            if (!*slot && !(*slot = calloc(1, sizeof **slot)))
                goto nomem;
            if (!(v[(*nnames)++] = strndup(pname, plen)))
                goto nomem;
            n = *slot;
        } else {
            struct node *c = child_static(n, s, len, 1);
            if (!c)
                goto nomem;
            n = c;
        }
        if (!e)
            break;
        s = e + 1;
    }
    *names = v;
    return n;
nomem:
    *err = -ENOMEM;
fail:
    free_names(v, MAX_SEGMENTS + 1);
    *nnames = 0;
    return NULL;
}

int snow_router_route(SnowRouter *r, const char *method, const char *pattern, SnowHttpHandler fn, void *arg)
{
    if (!r || !method || !fn || !method[0] || strlen(method) >= MAX_METHOD)
        return -EINVAL;
    for (const char *m = method; *m; m++)
        if (!http_is_tchar((unsigned char)*m))
            return -EINVAL;
    char **names;
    size_t nnames;
    int err;
    struct node *n = insert_path(r, pattern, &names, &nnames, &err);
    if (!n)
        return err;
    for (size_t i = 0; i < n->nroutes; i++)
        if (strcmp(n->routes[i].method, method) == 0) {
            free_names(names, MAX_SEGMENTS + 1);
            return SNOW_EHTTP_ROUTE_EXISTS;
        }
    struct route *v = realloc(n->routes, (n->nroutes + 1) * sizeof *v);
    if (!v) {
        free_names(names, MAX_SEGMENTS + 1);
        return -ENOMEM;
    }
    n->routes = v;
    struct route *rt = &v[n->nroutes++];
    memset(rt, 0, sizeof *rt);
    strcpy(rt->method, method);
    rt->fn = fn;
    rt->arg = arg;
    rt->pnames = names;
    rt->npnames = nnames;
    return 0;
}

int http_router_ws(SnowRouter *r, const char *pattern, const SnowWsHandler *handler, http_upgrade_fn fn)
{
    if (!r || !handler)
        return -EINVAL;
    char **names;
    size_t nnames;
    int err;
    struct node *n = insert_path(r, pattern, &names, &nnames, &err);
    if (!n)
        return err;
    if (n->ws) {
        free_names(names, MAX_SEGMENTS + 1);
        return SNOW_EHTTP_ROUTE_EXISTS;
    }
    n->ws = handler;
    n->ws_upgrade = fn;
    n->ws_pnames = names;
    n->ws_npnames = nnames;
    return 0;
}

int snow_router_ws(SnowRouter *r, const char *pattern, const SnowWsHandler *handler)
{
    /* The entry point is looked up when a request arrives, so the order in
     * which the WebSocket layer and the program start up does not matter. */
    return http_router_ws(r, pattern, handler, NULL);
}

int snow_router_use(SnowRouter *r, SnowHttpMiddleware before, SnowHttpMiddleware after, void *arg)
{
    if (!r || (!before && !after))
        return -EINVAL;
    struct mw *v = realloc(r->mws, (r->nmws + 1) * sizeof *v);
    if (!v)
        return -ENOMEM;
    r->mws = v;
    v[r->nmws++] = (struct mw){before, after, arg};
    return 0;
}

/* ---- lookup ---- */

struct search {
    struct http_str method;
    const char *path;
    size_t plen;
    int is_head;
    /* best hit */
    const struct node *hit;
    const struct route *route;
    int hit_ws;
    struct http_str vals[HTTP_MAX_PARAMS];
    size_t nvals;
    /* every node the path reaches, for Allow */
    const struct node *seen[16];
    size_t nseen;
    struct http_str cur[HTTP_MAX_PARAMS];
};

static const struct route *find_route(const struct node *n, struct http_str m)
{
    for (size_t i = 0; i < n->nroutes; i++)
        if (strlen(n->routes[i].method) == m.n && memcmp(n->routes[i].method, m.p, m.n) == 0)
            return &n->routes[i];
    return NULL;
}

/* A node the path reaches: take it if it serves the method. Returns 1 to
 * stop the search. */
static int visit(struct search *s, const struct node *n, size_t nvals)
{
    if (!n->nroutes && !n->ws)
        return 0;
    if (s->nseen < RT_ARRAY_LEN(s->seen))
        s->seen[s->nseen++] = n;
    const struct route *rt = find_route(n, s->method);
    if (!rt && s->is_head)
        rt = find_route(n, (struct http_str){"GET", 3});
    int is_get = s->method.n == 3 && memcmp(s->method.p, "GET", 3) == 0;
    int ws = !rt && n->ws && (is_get || s->is_head);
    if (!rt && !ws)
        return 0;
    s->hit = n;
    s->route = rt;
    s->hit_ws = ws;
    s->nvals = nvals;
    memcpy(s->vals, s->cur, nvals * sizeof s->vals[0]);
    return 1;
}

/* Matches the path from offset pos (the start of a segment) at node n.
 * Recursion depth is bounded by the tree's depth (MAX_SEGMENTS). */
static int walk(struct search *s, const struct node *n, size_t pos, size_t nvals)
{
    if (pos > s->plen)
        return visit(s, n, nvals);
    const char *seg = s->path + pos;
    const char *slash = memchr(seg, '/', s->plen - pos);
    size_t len = slash ? (size_t)(slash - seg) : s->plen - pos;
    size_t next = pos + len + 1;
    const struct node *c = NULL;
    for (size_t i = 0; i < n->nstatics; i++)
        if (strlen(n->statics[i]->seg) == len && memcmp(n->statics[i]->seg, seg, len) == 0)
            c = n->statics[i];
    if (c && walk(s, c, next, nvals))
        return 1;
    if (n->param && len > 0 && nvals < HTTP_MAX_PARAMS) {
        s->cur[nvals] = (struct http_str){seg, len};
        if (walk(s, n->param, next, nvals + 1))
            return 1;
    }
    if (n->wild && nvals < HTTP_MAX_PARAMS) {
        s->cur[nvals] = (struct http_str){seg, s->plen - pos};
        if (visit(s, n->wild, nvals + 1))
            return 1;
    }
    return 0;
}

static void append_allow(char *allow, size_t cap, const char *m)
{
    size_t len = strlen(allow), ml = strlen(m);
    /* Skip duplicates: look for m as a whole list element. */
    for (const char *p = allow; (p = strstr(p, m)) != NULL; p += ml)
        if ((p == allow || p[-1] == ' ') && (p[ml] == ',' || p[ml] == 0))
            return;
    if (len + ml + 3 >= cap)
        return;
    if (len) {
        memcpy(allow + len, ", ", 2);
        len += 2;
    }
    memcpy(allow + len, m, ml + 1);
}

static void build_allow(const struct search *s, char *allow, size_t cap)
{
    allow[0] = 0;
    for (size_t i = 0; i < s->nseen; i++) {
        const struct node *n = s->seen[i];
        for (size_t k = 0; k < n->nroutes; k++) {
            append_allow(allow, cap, n->routes[k].method);
            if (strcmp(n->routes[k].method, "GET") == 0)
                append_allow(allow, cap, "HEAD");
        }
        if (n->ws) {
            append_allow(allow, cap, "GET");
            append_allow(allow, cap, "HEAD");
        }
    }
}

/* Does the request ask for a WebSocket upgrade (RFC 6455 §4.2.1 item 3/4)? */
static int wants_websocket(const SnowHttpReq *req)
{
    if (!req->r.upgrade)
        return 0;
    /* Upgrade is a list of protocols, possibly over several field lines
     * (RFC 9110 §7.8, §5.3); "websocket" must be one of them. */
    return http_header_has_token(&req->r, "upgrade", "websocket");
}

static int decode_params(SnowHttpReq *req, const struct search *s, char **names)
{
    for (size_t i = 0; i < s->nvals; i++) {
        char *out = req->scratch + req->scratch_len;
        ssize_t d = http_pct_decode(s->vals[i].p, s->vals[i].n, out, 0);
        if (d < 0)
            return -1;
        req->scratch_len += (size_t)d;
        req->params[i].key = (struct http_str){names[i], strlen(names[i])};
        req->params[i].val = (struct http_str){out, (size_t)d};
    }
    req->nparams = s->nvals;
    return 0;
}

static void set_error(struct http_match *m, int status)
{
    m->kind = HTTP_ROUTE_ERROR;
    m->status = status;
}

void http_router_lookup(const SnowRouter *r, SnowHttpReq *req, struct http_match *m)
{
    memset(m, 0, sizeof *m);
    req->nparams = 0;
    req->nquery = 0;
    req->scratch_len = 0;
    struct search s;
    s.method = req->r.method;
    s.path = req->r.path.p;
    s.plen = req->r.path.n;
    s.is_head = req->r.method.n == 4 && memcmp(req->r.method.p, "HEAD", 4) == 0;
    s.hit = NULL;
    s.route = NULL;
    s.nseen = 0;
    s.nvals = 0;
    if (http_req_parse_query(req) != 0) {
        set_error(m, 400);
        return;
    }
    if (s.plen == 0 || s.path[0] != '/') {
        /* asterisk-form and authority-form name no resource here. */
        if (s.plen == 1 && s.path[0] == '*') {
            m->kind = HTTP_ROUTE_OPTIONS;
            return;
        }
        set_error(m, 404);
        return;
    }
    s.path++;
    s.plen--;
    walk(&s, &r->root, 0, 0);
    if (!s.hit) {
        if (!s.nseen) {
            set_error(m, 404);
            return;
        }
        build_allow(&s, m->allow, sizeof m->allow);
        if (req->r.method.n == 7 && memcmp(req->r.method.p, "OPTIONS", 7) == 0) {
            m->kind = HTTP_ROUTE_OPTIONS;
            return;
        }
        set_error(m, 405);
        return;
    }
    if (decode_params(req, &s, s.route ? s.route->pnames : s.hit->ws_pnames) != 0) {
        set_error(m, 400);
        return;
    }
    if (s.route) {
        m->kind = HTTP_ROUTE_HANDLER;
        m->handler = s.route->fn;
        m->arg = s.route->arg;
        return;
    }
    /* A WebSocket route. */
    if (!wants_websocket(req) || s.is_head) {
        /* RFC 9110 §15.5.22: 426 must say which protocol to switch to. */
        set_error(m, 426);
        return;
    }
    m->ws = s.hit->ws;
    m->upgrade = s.hit->ws_upgrade ? s.hit->ws_upgrade : http_upgrade_hook();
    if (!m->upgrade) {
        set_error(m, 501);
        return;
    }
    m->kind = HTTP_ROUTE_UPGRADE;
}

static void builtin(const struct http_match *m, SnowHttpRes *res)
{
    if (m->kind == HTTP_ROUTE_OPTIONS) {
        res->status = 204;
        if (m->allow[0])
            http_res_add_header(res, "Allow", 5, m->allow, strlen(m->allow));
        return;
    }
    http_res_error(res, m->status);
    if (m->status == 405)
        http_res_add_header(res, "Allow", 5, m->allow, strlen(m->allow));
    else if (m->status == 426) {
        /* Upgrade is hop-by-hop, so Connection must name it (RFC 9110 §7.8). */
        http_res_add_header(res, "Upgrade", 7, "websocket", 9);
        http_res_add_header(res, "Connection", 10, "Upgrade", 7);
    }
}

int http_router_run(const SnowRouter *r, const struct http_match *m, SnowHttpReq *req, SnowHttpRes *res,
                    int before_only)
{
    size_t ran = 0;
    int stopped = 0;
    for (; ran < r->nmws; ran++) {
        const struct mw *w = &r->mws[ran];
        if (w->before && w->before(req, res, w->arg) == SNOW_HTTP_STOP) {
            stopped = 1;
            ran++;
            break;
        }
    }
    if (before_only)
        return stopped;
    if (!stopped) {
        if (m->kind == HTTP_ROUTE_HANDLER)
            m->handler(req, res, m->arg);
        else
            builtin(m, res);
    }
    while (ran > 0) {
        const struct mw *w = &r->mws[--ran];
        if (w->after)
            w->after(req, res, w->arg);
    }
    return stopped;
}
