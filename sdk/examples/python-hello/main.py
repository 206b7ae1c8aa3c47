"""The Python SDK example (docs/sdk.md): `hello.greet` greets `name` and
every line of the optional `names` input, reporting progress and a log line
as it goes."""

import sys

from symphony_ext import Extension, StepError

ext = Extension("org.symphony.example.hello-py", "0.1.0")


@ext.capability("hello.greet")
def greet(step):
    name = step.params.get("name", "world")
    if not isinstance(name, str):
        raise StepError("hello.greet: params.name must be a string", retryable=False)
    names = [name]
    # A single artifact or a fanned-out one: one Input per item either way.
    for item in step.inputs.get("names", []):
        names += [line for line in item.data.decode("utf-8").splitlines() if line]

    text = ""
    for i, who in enumerate(names):
        if step.cancelled:
            return  # the SDK answers "cancelled"
        text += "Hello, %s!\n" % who
        step.progress((i + 1) / len(names), "greeted " + who)
    step.log("info", "greeted %d name(s)" % len(names))
    step.output("greeting", text, "text/plain")
    step.summary = {"greeted": len(names)}


if __name__ == "__main__":
    sys.exit(ext.run())
