"""TAP producer for deskvm's Python integration tests: each check prints one `ok`/`not ok` line."""
import sys
import traceback


class Tap:
    def __init__(self):
        self.count = 0
        self.failed = 0

    def ok(self, cond, name, detail=None):
        self.count += 1
        if cond:
            print(f"ok {self.count} - {name}", flush=True)
        else:
            self.failed += 1
            print(f"not ok {self.count} - {name}", flush=True)
            if detail is not None:
                for line in str(detail).splitlines() or [""]:
                    print(f"#   {line}", flush=True)
        return bool(cond)

    def eq(self, got, want, name):
        return self.ok(got == want, name, f"got:  {got!r}\nwant: {want!r}")

    def skip(self, name, reason):
        self.count += 1
        print(f"ok {self.count} - {name} # SKIP {reason}", flush=True)

    def diag(self, msg):
        for line in str(msg).splitlines():
            print(f"# {line}", flush=True)

    def run(self, fn, name):
        """Run one test function; an exception inside it is one failure, not a crash of the whole file."""
        try:
            fn()
        except Exception:  # noqa: BLE001 - a test body's error is reported as a failed check
            self.ok(False, f"{name}: raised", traceback.format_exc())

    def done(self):
        print(f"1..{self.count}", flush=True)
        sys.exit(1 if self.failed else 0)
