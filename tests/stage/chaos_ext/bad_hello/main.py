"""Registers only bad.registered while the manifest also declares
bad.declared: the daemon must refuse the handshake, and the SDK then exits 1."""

import sys

from symphony_ext import Extension

ext = Extension("org.symphony.test.bad-hello", "1.0.0")


@ext.capability("bad.registered")
def registered(step):
    step.output("echo", b"registered")


if __name__ == "__main__":
    sys.exit(ext.run())
