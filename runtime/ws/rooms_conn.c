/*
 * rooms_conn.c: what the room registry asks of the connection loop beyond
 * bcast.h, read under the connection table's lock (table.c), so a
 * connection that is ending is never touched after it left the table.
 */
#include "ws/conn.h"
#include "ws/rooms.h"

static int accepting_locked(struct ws_conn *c, void *arg)
{
    (void)arg;
    return c && atomic_load(&c->accepting);
}

bool ws_conn_accepting(SnowPid pid)
{
    return ws_table_with(pid, accepting_locked, NULL) > 0;
}

static int hint_locked(struct ws_conn *c, void *arg)
{
    *(const void **)arg = c;
    return 0;
}

const void *ws_conn_hint(SnowPid pid)
{
    const void *c = NULL;
    ws_table_with(pid, hint_locked, &c);
    return c;
}
