/*
 * snow-actors-demo: a tour of the actor ABI, written the way generated code
 * calls it (snow_rt.h only). It spawns a ring of actors that pass a token,
 * a supervisor that traps the exit of a worker that panics, a timer, and a
 * hibernating counter, and prints what each of them did.
 *
 *   snow-actors-demo [--ring N] [--laps N]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "snow_rt.h"

enum { TAG_TOKEN = 1, TAG_NEXT = 2, TAG_DONE = 3, TAG_WORK = 4, TAG_TICK = 5, TAG_COUNT = 6, TAG_REPORT = 7 };

struct ring_args {
    SnowPid main;
    int index;
};

static void ring_member(void *p)
{
    struct ring_args *a = p;
    SnowPid next = 0;
    for (;;) {
        SnowMessage *m = snow_actor_receive(-1);
        if (m->tag == TAG_NEXT) {
            memcpy(&next, m->data, sizeof next);
        } else if (m->tag == TAG_TOKEN) {
            long hops;
            memcpy(&hops, m->data, sizeof hops);
            if (hops == 0) {
                snow_actor_send(a->main, TAG_DONE, &a->index, sizeof a->index);
                continue;
            }
            hops--;
            snow_actor_send(next, TAG_TOKEN, &hops, sizeof hops);
        } else {
            return;
        }
    }
}

static void worker(void *p)
{
    (void)p;
    SnowMessage *m = snow_actor_receive(-1);
    if (m->tag == TAG_WORK && m->len && m->data[0] == 'x')
        snow_panic("the worker was given bad input");
}

struct counter {
    SnowPid owner;
    long total;
    int wakeups;
};

/* Runs on a fresh stack after every message: the state lives in the heap. */
static void counter_step(void *p)
{
    struct counter *c = p;
    SnowMessage *m = snow_actor_receive(0);
    if (m && m->tag == TAG_COUNT) {
        long v;
        memcpy(&v, m->data, sizeof v);
        c->total += v;
        c->wakeups++;
    } else if (m && m->tag == TAG_REPORT) {
        snow_actor_send(c->owner, TAG_REPORT, c, sizeof *c);
        return;
    }
    snow_actor_hibernate(counter_step, c);
}

static void counter(void *p)
{
    struct counter *c = snow_gc_alloc(sizeof *c);
    memcpy(&c->owner, p, sizeof c->owner);
    snow_actor_hibernate(counter_step, c);
}

struct demo_args {
    int ring;
    long laps;
};

/* Set when something did not happen as the tour says; main's exit code. */
static int demo_failed;

static void expect(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "snow-actors-demo: unexpected: %s\n", what);
        demo_failed = 1;
    }
}

static void demo(void *p)
{
    struct demo_args *d = p;
    SnowPid self = snow_actor_self();
    printf("main actor %llu on %d workers\n", (unsigned long long)self, snow_rt_workers());

    /* 1. A ring passes a token. */
    SnowPid *ring = malloc(sizeof(SnowPid) * (size_t)d->ring);
    for (int i = 0; i < d->ring; i++) {
        struct ring_args a = {self, i};
        ring[i] = snow_actor_spawn(ring_member, &a, sizeof a);
    }
    for (int i = 0; i < d->ring; i++)
        snow_actor_send(ring[i], TAG_NEXT, &ring[(i + 1) % d->ring], sizeof(SnowPid));
    long hops = (long)d->ring * d->laps;
    int64_t t0 = snow_now_ms();
    snow_actor_send(ring[0], TAG_TOKEN, &hops, sizeof hops);
    uint64_t done_tag = TAG_DONE;
    SnowMessage *m = snow_actor_receive_match(&done_tag, 1, -1);
    int last;
    memcpy(&last, m->data, sizeof last);
    printf("ring: %d actors passed a token %ld times in %lld ms; it stopped at actor #%d\n", d->ring, hops,
           (long long)(snow_now_ms() - t0), last);
    expect(last == (int)(hops % d->ring), "the token stopped where the hop count says");
    for (int i = 0; i < d->ring; i++)
        snow_actor_send(ring[i], TAG_WORK, NULL, 0);
    free(ring);

    /* 2. A supervisor (this actor) traps the exit of a linked worker. */
    snow_actor_trap_exit(1);
    SnowPid w = snow_actor_spawn_link(worker, NULL, 0);
    snow_actor_send(w, TAG_WORK, "x", 1);
    uint64_t exit_tag = SNOW_TAG_EXIT;
    m = snow_actor_receive_match(&exit_tag, 1, 5000);
    expect(m != NULL, "the supervisor got the worker's exit signal");
    if (m) {
        SnowExitMsg em;
        memcpy(&em, m->data, sizeof em);
        printf("supervisor: linked worker %llu exited with reason %d (%s)\n", (unsigned long long)em.from, em.reason,
               em.reason == SNOW_EXIT_PANIC ? "panic" : "other");
        expect(em.from == w && em.reason == SNOW_EXIT_PANIC, "the worker exited with reason panic");
    }

    /* 3. A timer delivers a message later. */
    t0 = snow_now_ms();
    snow_timer_send_after(self, 50, TAG_TICK, "tick", 4);
    uint64_t tick_tag = TAG_TICK;
    m = snow_actor_receive_match(&tick_tag, 1, 5000);
    expect(m && m->len == 4 && snow_now_ms() - t0 >= 50, "the timer message came, not early");
    printf("timer: \"%.*s\" arrived after %lld ms (asked for 50)\n", m ? (int)m->len : 0, m ? (char *)m->data : "",
           (long long)(snow_now_ms() - t0));

    /* 4. A hibernating counter keeps its state between wake-ups. */
    SnowPid c = snow_actor_spawn(counter, &self, sizeof self);
    snow_actor_register("counter", c);
    for (long v = 1; v <= 10; v++)
        snow_actor_send(snow_actor_whereis("counter"), TAG_COUNT, &v, sizeof v);
    snow_actor_send(c, TAG_REPORT, NULL, 0);
    uint64_t report_tag = TAG_REPORT;
    m = snow_actor_receive_match(&report_tag, 1, 5000);
    if (m) {
        struct counter r;
        memcpy(&r, m->data, sizeof r);
        printf("counter: summed 1..10 = %ld over %d wake-ups, giving its stack back in between\n", r.total, r.wakeups);
        expect(r.total == 55 && r.wakeups == 10, "the counter summed 1..10 over 10 wake-ups");
    } else {
        expect(0, "the counter reported");
    }
    printf("done\n");
    fflush(stdout);
}

int main(int argc, char **argv)
{
    /* Line-buffered even into a pipe, so the runtime's own stderr lines
     * (the worker's panic) interleave in the order things happened. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    struct demo_args d = {.ring = 1000, .laps = 100};
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--ring"))
            d.ring = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--laps"))
            d.laps = atol(argv[i + 1]);
    }
    if (d.ring < 2 || d.laps < 1) {
        fprintf(stderr, "usage: snow-actors-demo [--ring N>=2] [--laps N>=1]\n");
        return 2;
    }
    if (snow_rt_init(0))
        return 1;
    snow_actor_spawn(demo, &d, sizeof d);
    snow_rt_run();
    return demo_failed;
}
