/*
 * abi-collide: a program with its own msg_new, heap_alloc, rt_log and
 * timer_arm (names the runtime uses internally), linked against
 * libsnowrt.a. It must link, and the runtime must keep calling its own
 * functions: each of the program's versions counts its calls, and only the
 * program calls them, once each, after the runtime has sent messages, armed
 * timers, allocated actor heaps and logged a panic.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "snow_rt.h"

static int calls_msg_new, calls_heap_alloc, calls_rt_log, calls_timer_arm;

/* Signatures unlike the runtime's on purpose. */
const char *msg_new(const char *text);
double heap_alloc(double x);
int rt_log(const char *line);
long timer_arm(long ticks);

const char *msg_new(const char *text)
{
    calls_msg_new++;
    return text;
}

double heap_alloc(double x)
{
    calls_heap_alloc++;
    return x * 2;
}

int rt_log(const char *line)
{
    calls_rt_log++;
    return (int)strlen(line);
}

long timer_arm(long ticks)
{
    calls_timer_arm++;
    return ticks + 1;
}

#define TAG_PING 1
#define TAG_TICK 2

static int failures;

static void check(int ok, const char *what)
{
    printf("%s: %s\n", ok ? "ok" : "FAIL", what);
    if (!ok)
        failures++;
}

static void panicker(void *arg)
{
    (void)arg;
    /* The parent's monitor first: a child that ended before it would be
     * reported as SNOW_EXIT_NOPROC. */
    snow_actor_receive(10000);
    snow_panic("expected panic: the runtime logs it with its own rt_log");
}

struct echo_args {
    SnowPid parent;
    char text[32];
};

static void echo(void *arg)
{
    const struct echo_args *a = arg;
    snow_actor_send(a->parent, TAG_PING, a->text, strlen(a->text) + 1);
}

static void main_actor(void *arg)
{
    (void)arg;
    SnowPid self = snow_actor_self();

    /* Spawning copies the arguments into a new actor heap; the reply is a
     * runtime message. */
    struct echo_args ea = {.parent = self};
    strcpy(ea.text, "hello");
    check(snow_actor_spawn(echo, &ea, sizeof ea) != 0, "spawn with arguments");
    SnowMessage *m = snow_actor_receive(10000);
    check(m && m->tag == TAG_PING && !strcmp((const char *)m->data, "hello"), "message from a spawned actor");

    /* A runtime timer. */
    check(snow_timer_send_after(self, 5, TAG_TICK, "t", 1) != 0, "timer armed");
    m = snow_actor_receive(10000);
    check(m && m->tag == TAG_TICK, "timer message arrived");

    /* The actor heap. */
    char *p = snow_gc_alloc(100);
    check(p != NULL, "snow_gc_alloc");

    /* A panic is logged by the runtime. */
    SnowPid child = snow_actor_spawn(panicker, NULL, 0);
    uint64_t ref = snow_actor_monitor(child);
    snow_actor_send(child, TAG_PING, NULL, 0);
    const uint64_t down = SNOW_TAG_DOWN;
    m = snow_actor_receive_match(&down, 1, 10000);
    check(ref && m && m->len == sizeof(SnowDownMsg) && ((const SnowDownMsg *)m->data)->reason == SNOW_EXIT_PANIC,
          "panicking child reported down with SNOW_EXIT_PANIC");
}

int main(void)
{
    if (snow_rt_init(2)) {
        printf("FAIL: snow_rt_init\n");
        return 1;
    }
    snow_actor_spawn(main_actor, NULL, 0);
    snow_rt_run();

    check(calls_msg_new == 0 && calls_heap_alloc == 0 && calls_rt_log == 0 && calls_timer_arm == 0,
          "the runtime never called the program's msg_new, heap_alloc, rt_log or timer_arm");
    check(!strcmp(msg_new("mine"), "mine") && heap_alloc(2.0) == 4.0 && rt_log("abc") == 3 && timer_arm(41) == 42,
          "the program's own functions are the ones it calls");
    check(calls_msg_new == 1 && calls_heap_alloc == 1 && calls_rt_log == 1 && calls_timer_arm == 1,
          "each called exactly once, by the program");
    printf("%d passed, %d failed\n", failures ? 0 : 1, failures ? 1 : 0);
    return failures ? 1 : 0;
}
