/*
 * rooms.c: the room registry's side of bcast.h.
 *
 * No registry exists yet, so no connection is ever in a room and leaving
 * every room is nothing to do. The room registry replaces this file; the
 * connection loop already calls ws_rooms_member_gone on every exit path of
 * a connection actor (ws_conn_finish), refusals in on_connect included.
 */
#include "ws/bcast.h"

void ws_rooms_member_gone(SnowPid pid)
{
    (void)pid;
}
