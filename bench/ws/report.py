#!/usr/bin/env python3
"""Report of a bench/ws/run.sh run: medians, ratios, plots.

    report.py --runs RUNS.tsv [--runs MORE.tsv --runs-note TEXT] --out PREFIX
              [--machine M] [--commit C] [--note N] [--repeat R] [--quick 0|1]
              [--servers "a b c"]

RUNS.tsv has one row per run (rep, cell, server, status, load1, command,
line), where line is the load generator's last output line (run.sh keeps
it as PREFIX.tsv),
"bench ws_<mode> key=value ...". Writes PREFIX.csv (every run, one column
per key), PREFIX.md (medians per cell and server, the ratio of snow-rt to
the best peer, the command of every cell, every raw line) and, when
gnuplot is installed, PREFIX-throughput.png, PREFIX-latency.png and
PREFIX-idle.png."""
import argparse
import csv
import os
import re
import shutil
import statistics
import subprocess
import tempfile

# Figures per mode: (key, label, unit, higher_is_better).
FIGURES = {
    "ws_echo": [("msgs_per_s", "messages/s", "", True), ("mb_per_s", "MB/s", "", True),
                ("rtt_p50_us", "round trip p50", "µs", False), ("rtt_p99_us", "round trip p99", "µs", False),
                ("rtt_p999_us", "round trip p99.9", "µs", False)],
    "ws_handshake": [("upgrades_per_s", "upgrades/s", "", True),
                     ("upgrade_p99_us", "connect-to-101 p99", "µs", False)],
    "ws_fanout": [("deliveries_per_s", "deliveries/s", "", True),
                  ("latency_p50_us", "delivery latency p50", "µs", False),
                  ("latency_p99_us", "delivery latency p99", "µs", False)],
    "ws_idle": [("rss_per_conn_b", "server RSS per connection", "B", False),
                ("server_cpu_pct", "server CPU while idle", "%", False)],
}


def headline(cell, mode):
    """The figure a cell is ranked by."""
    if mode == "ws_echo":
        return "msgs_per_s" if "64B" in cell else "mb_per_s"
    return FIGURES[mode][0][0]


def parse_line(line):
    toks = line.split()
    if len(toks) < 2 or toks[0] != "bench":
        return None, {}
    kv = {}
    for t in toks[2:]:
        if "=" in t:
            k, v = t.split("=", 1)
            kv[k] = v
    return toks[1], kv


def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def fmt(v):
    if v is None:
        return "–"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", required=True, action="append",
                    help="may be repeated: a cell found in a later file replaces that cell's runs from earlier ones")
    ap.add_argument("--runs-note", action="append", default=[],
                    help="one line per --runs file after the first, saying where its runs come from")
    ap.add_argument("--out", required=True)
    ap.add_argument("--machine", default="")
    ap.add_argument("--commit", default="")
    ap.add_argument("--note", default="")
    ap.add_argument("--repeat", default="")
    ap.add_argument("--quick", default="0")
    ap.add_argument("--servers", default="")
    ap.add_argument("--steal-max", type=float, default=None,
                    help="the STEAL_MAX run.sh used: a median over a run with more steal is marked S")
    ap.add_argument("--steal-retries", default="2")
    a = ap.parse_args()

    rows = []
    for path in a.runs:
        new = []
        with open(path) as f:
            for r in csv.DictReader(f, delimiter="\t"):
                mode, kv = parse_line(r["line"] or "")
                r["mode"], r["kv"] = mode, kv
                if r["status"] == "ok" and mode is None:
                    r["status"] = "fail"
                new.append(r)
        replaced = {r["cell"] for r in new}
        rows = [r for r in rows if r["cell"] not in replaced] + new

    servers = a.servers.split() or sorted({r["server"] for r in rows})
    peers = [s for s in servers if s != "snow-rt"]
    cells = []
    for r in rows:
        if r["cell"] not in cells:
            cells.append(r["cell"])

    # --- CSV: every run
    keys = []
    for r in rows:
        for k in r["kv"]:
            if k not in keys and k not in ("server", "cell", "rep"):
                keys.append(k)
    with open(a.out + ".csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["rep", "cell", "server", "status", "load1", "mode"] + keys + ["command"])
        for r in rows:
            w.writerow([r["rep"], r["cell"], r["server"], r["status"], r["load1"], r["mode"] or ""] +
                       [r["kv"].get(k, "") for k in keys] + [r["command"]])

    # --- medians
    def runs_of(cell, srv):
        return [r for r in rows if r["cell"] == cell and r["server"] == srv and r["status"] == "ok"]

    med = {}
    sat = {}
    stolen = {}
    nok = {}
    cell_mode = {}
    for cell in cells:
        for srv in servers:
            rs = runs_of(cell, srv)
            nok[cell, srv] = len(rs)
            if not rs:
                continue
            cell_mode[cell] = rs[0]["mode"]
            sat[cell, srv] = sum(r["kv"].get("loadgen_saturated") == "1" for r in rs) * 2 > len(rs)
            stolen[cell, srv] = a.steal_max is not None and rs[0]["mode"] != "ws_idle" and any(
                (num(r["kv"].get("steal_pct")) or 0) > a.steal_max for r in rs)
            for key, _, _, _ in FIGURES.get(rs[0]["mode"], []):
                vals = [num(r["kv"].get(key)) for r in rs]
                vals = [v for v in vals if v is not None]
                if vals:
                    med[cell, srv, key] = statistics.median(vals)

    def reps_led(cell, key, higher):
        """(repetitions in which snow-rt led the best peer of that same
        repetition, repetitions compared, lowest and highest of those
        repetitions' ratios): how often a median's verdict held run by run."""
        by_rep = {}
        for r in rows:
            if r["cell"] == cell and r["status"] == "ok":
                v = num(r["kv"].get(key))
                if v is not None:
                    by_rep.setdefault(r["rep"], {})[r["server"]] = v
        led, compared, ratios = 0, 0, []
        for vals in by_rep.values():
            snow = vals.get("snow-rt")
            pv = [v for s, v in vals.items() if s != "snow-rt"]
            if snow is None or not pv:
                continue
            best = max(pv) if higher else min(pv)
            compared += 1
            led += snow >= best if higher else snow <= best
            if best:  # a best of 0 (idle CPU) has no ratio, only a verdict
                ratios.append(snow / best)
        return led, compared, ratios

    out = []
    p = out.append
    p(f"# WebSocket servers side by side: {os.path.basename(a.out)}")
    p("")
    if a.note:
        p(f"**{a.note}**")
        p("")
    for n in a.runs_note:
        p(n)
        p("")
    p(f"Machine: {a.machine}. Tree: `{a.commit}`. Repetitions: {a.repeat}"
      f"{' (QUICK=1: short cells)' if a.quick == '1' else ''}.")
    loads = [num(r["load1"]) for r in rows if num(r["load1"]) is not None]
    if loads:
        p(f"1-minute load average when a run started: {min(loads):.2f} to {max(loads):.2f}.")
    p("")
    p("Every server ran alone, pinned to CPU 0 (`taskset -c 0`; snow-rt with `SNOW_WORKERS=1`), "
      "started fresh for each cell; the load generator (`snow-ws-loadgen`, one thread) was pinned to "
      "CPU 1. Cells were interleaved: each repetition ran every cell on every server, the server order "
      "rotated between repetitions. Figures are medians over the repetitions that completed "
      "(their count in parentheses when fewer than all). **C** marks a median over runs in which the "
      "load generator was at least 90 % busy: the server's figure is then a lower bound. "
      "The per-process open-file limit here is 20,000, hence 19,900 idle connections. " +
      ("A timed run during which the host took more than "
       f"{a.steal_max:g} % of either CPU's time (steal, in /proc/stat: this is a virtual machine) "
       f"was not clean: it was run again with a fresh server, at most {a.steal_retries} times (STEAL_RETRIES), and "
       "the runs set aside are listed below but not counted; **S** marks a median that still includes "
       "such a run. " if a.steal_max is not None else "") +
      "The last column compares run by run: in how many repetitions snow-rt led the best peer of "
      "the same repetition, and the lowest and highest of those repetitions' ratios.")
    p("")
    head = ("| cell | figure | " + " | ".join(servers) +
            " | snow-rt / best peer | led in repetitions (ratio range) |")
    p(head)
    p("|" + "---|" * (len(servers) + 4))
    for cell in cells:
        mode = cell_mode.get(cell)
        if not mode:
            p(f"| {cell} | | " + " | ".join("fail" for _ in servers) + " | |")
            continue
        main_key = headline(cell, mode)
        figs = sorted(FIGURES[mode], key=lambda f: f[0] != main_key)
        for key, label, unit, higher in figs:
            if mode == "ws_echo" and key in ("msgs_per_s", "mb_per_s") and key != main_key:
                continue
            if key in ("rtt_p50_us", "rtt_p999_us", "latency_p50_us"):
                continue
            cellv = []
            for srv in servers:
                v = med.get((cell, srv, key))
                if v is None:
                    cellv.append("fail" if (cell, srv) in nok and any(
                        r["cell"] == cell and r["server"] == srv for r in rows) else "")
                    continue
                s = fmt(v)
                if sat.get((cell, srv)) and higher:
                    s += " C"
                if stolen.get((cell, srv)):
                    s += " S"
                if nok[cell, srv] < int(a.repeat or 0):
                    s += f" ({nok[cell, srv]})"
                cellv.append(s)
            ratio = ""
            snow = med.get((cell, "snow-rt", key))
            pv = [med.get((cell, s, key)) for s in peers]
            pv = [v for v in pv if v is not None]
            if snow is not None and pv:
                best = max(pv) if higher else min(pv)
                ahead = snow >= best if higher else snow <= best
                if best:
                    ratio = f"{snow / best:.2f} ({'ahead' if ahead else 'behind'})"
                else:
                    ratio = "even (both 0)" if snow == best else ("ahead" if ahead else "behind") + " (best peer 0)"
            led, compared, ratios = reps_led(cell, key, higher)
            reps = f"{led} of {compared}" if compared else ""
            if ratios:
                reps += f" ({min(ratios):.2f}-{max(ratios):.2f})"
            unit_s = f" ({unit})" if unit else ""
            arrow = "higher is better" if higher else "lower is better"
            p(f"| {cell} | {label}{unit_s}, {arrow} | " + " | ".join(cellv) + f" | {ratio} | {reps} |")
    p("")
    p("## Commands")
    p("")
    p("Each cell's load generator command (PORT and PID are the server's, new for every run); "
      "servers were started as `taskset -c 0 <server> --host 127.0.0.1 --port 0 [--tls-cert cert.pem "
      "--tls-key key.pem]`.")
    p("")
    p("```")
    for cell in cells:
        cmd = next((r["command"] for r in rows if r["cell"] == cell and r["command"]), "")
        cmd = re.sub(r"--port \d+", "--port PORT", cmd)
        cmd = re.sub(r"--server-pid \d+", "--server-pid PID", cmd)
        p(f"{cell}: {cmd}")
    p("```")
    p("")
    p("## Every run")
    p("")
    p("```")
    for r in rows:
        if r["status"] == "ok":
            p(r["line"])
        elif r["status"] == "stolen":
            p(f"SET ASIDE (not clean, run again): {r['line']}")
        else:
            p(f"FAILED server={r['server']} cell={r['cell']} rep={r['rep']}: {r['line']}")
    p("```")
    with open(a.out + ".md", "w") as f:
        f.write("\n".join(out) + "\n")

    plots(a.out, cells, servers, cell_mode, med)


def plots(prefix, cells, servers, cell_mode, med):
    if not shutil.which("gnuplot"):
        print("report.py: gnuplot not installed, no plots")
        return
    tmp = tempfile.mkdtemp(prefix="snow-ws-plot.")
    title = os.path.basename(prefix)

    def table(name, rows_):
        path = os.path.join(tmp, name)
        with open(path, "w") as f:
            f.write("cell " + " ".join(servers) + "\n")
            for label, vals in rows_:
                f.write(label + " " + " ".join("NaN" if v is None else repr(v) for v in vals) + "\n")
        return path

    thr, lat = [], []
    for cell in cells:
        mode = cell_mode.get(cell)
        if not mode or mode == "ws_idle":
            continue
        key = headline(cell, mode)
        vals = [med.get((cell, s, key)) for s in servers]
        best = max([v for v in vals if v is not None], default=None)
        if best:
            thr.append((cell, [None if v is None else v / best for v in vals]))
        lk = {"ws_echo": "rtt_p99_us", "ws_fanout": "latency_p99_us", "ws_handshake": "upgrade_p99_us"}[mode]
        lat.append((cell, [med.get((cell, s, lk)) for s in servers]))
    idle = [(c, [med.get((c, s, "rss_per_conn_b")) for s in servers]) for c in cells
            if cell_mode.get(c) == "ws_idle"]

    n = len(servers)
    common = (f"set terminal pngcairo size 1400,600 font 'sans,10'\n"
              f"set termoption noenhanced\n"
              f"set style data histogram\nset style histogram clustered gap 1\n"
              f"set style fill solid 0.85 border -1\nset boxwidth 0.9\nset key outside right top\n"
              f"set xtics rotate by -30 scale 0\nset grid ytics\n")
    script = [common]
    if thr:
        d = table("thr.dat", thr)
        script.append(f"set output '{prefix}-throughput.png'\n"
                      f"set title '{title}: throughput relative to the best server in each cell (1 = best)'\n"
                      f"set ylabel 'relative throughput'\nset yrange [0:1.1]\nunset logscale y\n"
                      f"plot for [i=2:{n + 1}] '{d}' using i:xtic(1) title columnheader(i)\n")
    if lat:
        d = table("lat.dat", lat)
        script.append(f"set output '{prefix}-latency.png'\n"
                      f"set title '{title}: p99 latency (round trip, delivery, connect-to-101)'\n"
                      f"set ylabel 'microseconds (log scale)'\nset yrange [*:*]\nset logscale y\n"
                      f"plot for [i=2:{n + 1}] '{d}' using i:xtic(1) title columnheader(i)\n")
    if idle:
        d = table("idle.dat", idle)
        script.append(f"set terminal pngcairo size 800,500 font 'sans,10' noenhanced\n"
                      f"set output '{prefix}-idle.png'\n"
                      f"set title '{title}: server RSS per idle connection'\n"
                      f"set ylabel 'bytes per connection'\nset yrange [0:*]\nunset logscale y\n"
                      f"plot for [i=2:{n + 1}] '{d}' using i:xtic(1) title columnheader(i)\n")
    gp = os.path.join(tmp, "plot.gp")
    with open(gp, "w") as f:
        f.write("".join(script))
    r = subprocess.run(["gnuplot", gp], capture_output=True, text=True)
    if r.returncode != 0:
        print("report.py: gnuplot failed:", r.stderr.strip())
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
