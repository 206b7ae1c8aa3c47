"""TODO: what this extension does, in two or three lines.

The Python extension template (docs/sdk.md): one capability that reads a
parameter and returns a JSON output. Keep the id, version and capability
names equal to extension.toml's, or the daemon refuses the handshake.
"""

import sys

from symphony_ext import Extension, StepError

ext = Extension("org.example.todo-py", "0.1.0")  # TODO: as in extension.toml


@ext.capability("todo.run")
def run(step):
    message = step.params.get("message", "hello")
    if not isinstance(message, str):
        # Not retryable: the same parameters fail the same way.
        raise StepError("todo.run: params.message must be a string", retryable=False)
    step.progress(0.5, "working")  # TODO: the real work; check step.cancelled in long loops
    step.log("info", "message: " + message)
    step.output_json("result", {"echo": message})
    step.summary = {"ok": True}


if __name__ == "__main__":
    sys.exit(ext.run())
