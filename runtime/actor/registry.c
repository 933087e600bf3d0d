/*
 * registry.c: process names. One name per process, as in Erlang; the name
 * is removed on every exit path (actor_finish). Lock order: the registry
 * lock may be held while taking a slot lock, never the other way round.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "actor/internal.h"

#define NAME_MAX_LEN 255

struct entry {
    struct entry *next;
    SnowPid pid;
    char name[];
};

/* Apart from struct runtime (README.md, "State"): snow_actor_whereis may be
 * called from any thread before snow_rt_init or after snow_rt_run, so the
 * lock needs its static initializer, which the memset of rt at every init
 * would not keep. */
static struct {
    pthread_mutex_t lock;
    struct entry **buckets;
    size_t nbuckets, n;
} reg = {.lock = PTHREAD_MUTEX_INITIALIZER};

static size_t hash(const char *s)
{
    size_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static struct entry **find_locked(const char *name)
{
    if (!reg.nbuckets)
        return NULL;
    struct entry **pp = &reg.buckets[hash(name) & (reg.nbuckets - 1)];
    for (; *pp; pp = &(*pp)->next)
        if (!strcmp((*pp)->name, name))
            return pp;
    return NULL;
}

static int grow_locked(void)
{
    size_t nb = reg.nbuckets ? reg.nbuckets * 2 : 64;
    struct entry **b = calloc(nb, sizeof *b);
    if (!b)
        return -ENOMEM;
    for (size_t i = 0; i < reg.nbuckets; i++)
        for (struct entry *e = reg.buckets[i], *n; e; e = n) {
            n = e->next;
            size_t j = hash(e->name) & (nb - 1);
            e->next = b[j];
            b[j] = e;
        }
    free(reg.buckets);
    reg.buckets = b;
    reg.nbuckets = nb;
    return 0;
}

int snow_actor_register(const char *name, SnowPid pid)
{
    if (!name || !*name || strlen(name) > NAME_MAX_LEN)
        return -EINVAL;
    pthread_mutex_lock(&reg.lock);
    int err = 0;
    if (find_locked(name)) {
        err = SNOW_ENAME_TAKEN;
        goto out;
    }
    if (reg.n + 1 > reg.nbuckets && (err = grow_locked()))
        goto out;
    size_t len = strlen(name);
    struct entry *e = malloc(sizeof *e + len + 1);
    char *copy = malloc(len + 1);
    if (!e || !copy) {
        free(e);
        free(copy);
        err = -ENOMEM;
        goto out;
    }
    struct proc_slot *s;
    struct actor *a = proc_lock(pid, &s);
    if (!a || a->name) {
        if (a)
            proc_release(s);
        free(e);
        free(copy);
        err = a ? SNOW_EHAS_NAME : SNOW_ENOPROC;
        goto out;
    }
    memcpy(copy, name, len + 1);
    a->name = copy;
    proc_release(s);
    memcpy(e->name, name, len + 1);
    e->pid = pid;
    size_t j = hash(name) & (reg.nbuckets - 1);
    e->next = reg.buckets[j];
    reg.buckets[j] = e;
    reg.n++;
out:
    pthread_mutex_unlock(&reg.lock);
    return err;
}

static void remove_locked(struct entry **pp)
{
    struct entry *e = *pp;
    *pp = e->next;
    free(e);
    reg.n--;
}

int snow_actor_unregister(const char *name)
{
    if (!name)
        return -EINVAL;
    pthread_mutex_lock(&reg.lock);
    struct entry **pp = find_locked(name);
    int err = SNOW_ENOPROC;
    if (pp) {
        struct proc_slot *s;
        struct actor *a = proc_lock((*pp)->pid, &s);
        char *name = NULL;
        if (a) {
            name = a->name;
            a->name = NULL;
            proc_release(s);
        }
        free(name); /* after the slot lock: no free under a spinlock */
        remove_locked(pp);
        err = 0;
    }
    pthread_mutex_unlock(&reg.lock);
    return err;
}

SnowPid snow_actor_whereis(const char *name)
{
    if (!name)
        return 0;
    pthread_mutex_lock(&reg.lock);
    struct entry **pp = find_locked(name);
    SnowPid pid = pp ? (*pp)->pid : 0;
    pthread_mutex_unlock(&reg.lock);
    return pid;
}

void registry_remove_actor(struct actor *a)
{
    /* Called after the actor's slot was marked dead under its slot lock.
     * snow_actor_register sets a->name while holding that same slot lock
     * and only for a live actor, so this unlocked read sees the final value
     * and most exits (no name) skip the registry lock altogether. */
    if (!a->name)
        return;
    pthread_mutex_lock(&reg.lock);
    if (a->name) {
        struct entry **pp = find_locked(a->name);
        if (pp && (*pp)->pid == a->pid)
            remove_locked(pp);
        free(a->name);
        a->name = NULL;
    }
    pthread_mutex_unlock(&reg.lock);
}

void registry_fini(void)
{
    pthread_mutex_lock(&reg.lock);
    for (size_t i = 0; i < reg.nbuckets; i++)
        while (reg.buckets[i])
            remove_locked(&reg.buckets[i]);
    free(reg.buckets);
    reg.buckets = NULL;
    reg.nbuckets = reg.n = 0;
    pthread_mutex_unlock(&reg.lock);
}
