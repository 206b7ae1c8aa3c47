"""chaos.run's well-behaved modes (ok, fail, fail_permanent, throw, sleep,
hang) and noop.run over the Python SDK, for tests/sdk/sdk_test.cc."""

import os
import sys
import time

from symphony_ext import Extension, StepError

ext = Extension("org.symphony.test.python-steps", "1.0.0")


@ext.capability("noop.run")
def noop(step):
    pass


def first_attempt(step, marker):
    if not marker:
        return True
    try:
        os.close(os.open(os.path.join(step.workspace, marker), os.O_WRONLY | os.O_CREAT | os.O_EXCL))
        return True
    except FileExistsError:
        return False


@ext.capability("chaos.run")
def chaos(step):
    mode = step.params.get("mode", "ok")
    if mode != "ok" and first_attempt(step, step.params.get("marker")):
        if mode == "fail":
            raise StepError("chaos: asked to fail")
        if mode == "fail_permanent":
            raise StepError("chaos: asked to fail permanently", retryable=False)
        if mode == "throw":
            raise RuntimeError("chaos: raised a RuntimeError")
        if mode == "hang":
            ext.stop_heartbeats_for_testing()
            while True:
                time.sleep(3600)
        if mode == "sleep":
            end = time.monotonic() + step.params.get("ms", 1000) / 1000.0
            while time.monotonic() < end:
                if step.cancelled:
                    return
                time.sleep(0.01)
        else:
            raise StepError("chaos.run: mode %r is not implemented here" % mode, retryable=False)
    step.progress(1.0, "done")
    step.log("info", "chaos: mode %s behaved" % mode)
    step.output_json("result", {"mode": mode, "step": step.id})


if __name__ == "__main__":
    sys.exit(ext.run())
