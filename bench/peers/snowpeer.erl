%% snowpeer: the Erlang side of the scheduler comparison. Each scenario
%% prints "bench <name> <key>=<value> ... runtime=erlang" like snow-bench-sched.
%%
%%   erlc snowpeer.erl
%%   erl -noshell +S 1 -run snowpeer main pingpong_same_worker
%%   erl -noshell +S 2 -run snowpeer main pingpong_cross_worker
%%   erl -noshell +S 2 -run snowpeer main pingpong_unpinned
%%   erl -noshell +S 2 -run snowpeer main spawn
%%   erl -noshell +S 2 -run snowpeer main ring
%%   erl -noshell +S 1 -run snowpeer main gc_alloc
%%
%% An optional second argument "quick" divides the counts by 10.
-module(snowpeer).
-export([main/1]).

-define(PP_SAME, 1000000).
-define(PP_CROSS, 20000).
-define(SPAWNS, 1000000).
%% Children alive at once in the spawn scenario, as in snow-bench-sched.
-define(OUTSTANDING, 1000).
-define(RING_SIZE, 10000).
-define(RING_HOPS, 1000000).
-define(GC_ALLOCS, 50000000).
-define(GC_KEEP, 1024).

main([Scenario]) -> main([Scenario, "full"]);
main([Scenario, Size]) ->
    Div = case Size of "quick" -> 10; _ -> 1 end,
    Ok = try run(list_to_atom(Scenario), Div) of
             _ -> true
         catch Class:Reason:Stack ->
             io:format(standard_error, "snowpeer: ~p:~p ~p~n", [Class, Reason, Stack]),
             false
         end,
    halt(case Ok of true -> 0; false -> 1 end).

now_ns() -> erlang:monotonic_time(nanosecond).

emit(Fmt, Args) ->
    io:format("bench " ++ Fmt ++ " runtime=erlang~n", Args).

run(pingpong_same_worker, Div) ->
    %% Run with +S 1: the only scheduler runs both processes.
    pingpong(pingpong_same_worker, ?PP_SAME div Div, [], []);
run(pingpong_cross_worker, Div) ->
    %% {scheduler, N} binds a process to scheduler N (an undocumented
    %% spawn_opt option, the closest Erlang has to a pinned actor).
    case erlang:system_info(schedulers_online) of
        S when S >= 2 -> ok;
        S -> error({needs_two_schedulers, S})
    end,
    pingpong(pingpong_cross_worker, ?PP_CROSS div Div, [{scheduler, 1}], [{scheduler, 2}]);
run(pingpong_unpinned, Div) ->
    %% Both processes placed by the runtime (for reference).
    pingpong(pingpong_unpinned, ?PP_SAME div Div, [], []);
run(spawn, Div) -> spawn_bench(?SPAWNS div Div);
run(ring, Div) -> ring(?RING_SIZE div Div, ?RING_HOPS div Div);
run(gc_alloc, Div) -> gc_alloc(?GC_ALLOCS div Div).

%% ---- ping-pong -----------------------------------------------------------

pingpong(Name, N, OptsA, OptsB) ->
    Self = self(),
    Echo = spawn_opt(fun echo/0, OptsB),
    spawn_opt(fun() ->
                      client_loop(Echo, N div 10),
                      T0 = now_ns(),
                      client_loop(Echo, N),
                      T1 = now_ns(),
                      Echo ! stop,
                      Self ! {done, T1 - T0}
              end, OptsA),
    receive {done, Ns} ->
            emit("~s rtt_ns=~.1f round_trips=~b schedulers=~b",
                 [Name, Ns / N, N, erlang:system_info(schedulers_online)])
    end.

echo() ->
    receive
        {ping, From, X} -> From ! {pong, X}, echo();
        stop -> ok
    end.

client_loop(_, 0) -> ok;
client_loop(Echo, I) ->
    Echo ! {ping, self(), I},
    receive {pong, I} -> client_loop(Echo, I - 1) end.

%% ---- spawn ---------------------------------------------------------------

spawn_bench(N) ->
    Self = self(),
    T0 = now_ns(),
    spawn_loop(N, 0, Self),
    T1 = now_ns(),
    emit("spawn actors_per_s=~b peak_rss_kib=~b actors=~b schedulers=~b",
         [round(N / ((T1 - T0) / 1.0e9)), vm_hwm_kib(), N,
          erlang:system_info(schedulers_online)]).

spawn_loop(0, Out, _) -> drain(Out);
spawn_loop(N, Out, Self) when Out >= ?OUTSTANDING ->
    receive done -> ok end,
    spawn_loop(N, Out - 1, Self);
spawn_loop(N, Out, Self) ->
    spawn(fun() -> Self ! done end),
    spawn_loop(N - 1, Out + 1, Self).

drain(0) -> ok;
drain(Out) -> receive done -> drain(Out - 1) end.

vm_hwm_kib() ->
    {ok, Bin} = file:read_file("/proc/self/status"),
    [Line] = [L || L <- binary:split(Bin, <<"\n">>, [global]),
                   binary:part(L, 0, min(6, byte_size(L))) =:= <<"VmHWM:">>],
    [Num | _] = string:lexemes(binary_to_list(binary:part(Line, 6, byte_size(Line) - 6)), " \t"),
    list_to_integer(Num).

%% ---- ring ----------------------------------------------------------------

%% The tail learns the head from a message; the node that receives token 0
%% reports and sends stop round the ring.
ring(Size, Hops) ->
    Self = self(),
    Tail = spawn(fun() -> ring_node(undefined, Self) end),
    Head = lists:foldl(fun(_, Next) -> spawn(fun() -> ring_node(Next, Self) end) end,
                       Tail, lists:seq(2, Size)),
    Tail ! {next, Head},
    T0 = now_ns(),
    Head ! {token, Hops},
    receive {done, T1} ->
            emit("ring hops_per_s=~b actors=~b hops=~b schedulers=~b",
                 [round(Hops / ((T1 - T0) / 1.0e9)), Size, Hops,
                  erlang:system_info(schedulers_online)])
    end.

ring_node(Next, Driver) ->
    receive
        {next, N} -> ring_node(N, Driver);
        {token, 0} -> Driver ! {done, now_ns()}, Next ! stop;
        {token, K} -> Next ! {token, K - 1}, ring_node(Next, Driver);
        stop -> Next ! stop
    end.

%% ---- gc_alloc ----------------------------------------------------------------

%% As in snow-bench-gc: N objects of 48 bytes (a 5-tuple: header word plus
%% five), the newest kept alive, the older ones dropped. Erlang has no
%% mutable ring, so the newest objects are a list of up to 1024 (one cons
%% cell of 16 bytes more per object), dropped whole when full: a live set of
%% 0 to 64 KiB. Runs in a fresh process; the figure includes every
%% collection of that process's heap.
gc_alloc(N) ->
    Self = self(),
    spawn(fun() ->
                  T0 = now_ns(),
                  Kept = gc_alloc_loop(N, 0, [], 0),
                  T1 = now_ns(),
                  {garbage_collection, Gc} = process_info(self(), garbage_collection),
                  Self ! {done, T1 - T0, hd(Kept), proplists:get_value(minor_gcs, Gc)}
          end),
    receive
        {done, Ns, Last, Gcs} ->
            Want = N - 1,
            {Want, Want, Want, Want, Want} = Last,
            emit("gc_alloc allocs_per_s=~b allocs=~b minor_gcs=~b", [round(N * 1.0e9 / Ns), N, Gcs])
    end.

gc_alloc_loop(N, N, Acc, _) -> Acc;
gc_alloc_loop(N, I, _, ?GC_KEEP) -> gc_alloc_loop(N, I, [], 0);
gc_alloc_loop(N, I, Acc, K) -> gc_alloc_loop(N, I + 1, [{I, I, I, I, I} | Acc], K + 1).
