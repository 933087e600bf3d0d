"""The reporting the black-box runners share (tests/wsconf, tests/wsfault,
tests/wsinterop, tests/reliab): a line for each case as it ends, `ok   NAME
(figures)` or `FAIL NAME: why`; the server's exit status on SIGTERM as a case
of its own; and at the end the failed cases again, the time taken and `N
passed, N failed` (exit status 1 when any failed).
"""
import sys
import time
import traceback


class Results:
    def __init__(self, only=None):
        """only: a substring; reports of cases whose names lack it are dropped
        (for runners that select their cases by name, -k)."""
        self.items = []
        self.only = only
        self.t0 = time.monotonic()

    def wanted(self, name):
        return not self.only or self.only in name

    def report(self, name, err, info=""):
        if not self.wanted(name):
            return
        self.items.append((name, err))
        extra = (" (%s)" % info) if info else ""
        if err is None:
            print("ok   %s%s" % (name, extra))
        else:
            print("FAIL %s: %s%s" % (name, err, extra))
        sys.stdout.flush()

    def stop_checked(self, srv, what):
        """Stops srv with SIGTERM. Exit status 0 is a case: a leak or error
        report under the sanitizers makes it non-zero."""
        status = srv.stop()
        self.report("%s exits 0 on SIGTERM" % what,
                    None if status == 0 else "status %s\n%s" % (status, srv.stderr_tail()))

    def run(self, key, fn):
        """Runs fn(); an exception it lets out fails the case key."""
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - a broken case is a failed case
            self.report(key, "%s: %s\n%s" % (type(e).__name__, e, traceback.format_exc()))

    def summary(self):
        """Prints the closing lines; returns the exit status."""
        failed = [n for n, e in self.items if e is not None]
        print("# %.1f s" % (time.monotonic() - self.t0))
        if failed:
            print("failed cases:")
            for n in failed:
                print("  " + n)
        print("%d passed, %d failed" % (len(self.items) - len(failed), len(failed)))
        return 1 if failed else 0


def take_option(args, flag, default=None):
    """Removes `flag VALUE` from the list args; returns VALUE, or default
    when flag is not there."""
    if flag not in args:
        return default
    i = args.index(flag)
    value = args[i + 1]
    del args[i:i + 2]
    return value
