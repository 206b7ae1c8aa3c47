#!/usr/bin/python3
"""docs/configuration.md must hold exactly what `symphonyd --print-defaults`
prints, between the BEGIN/END DEFAULTS markers, so the documented defaults
cannot drift from the schema (the one place they are defined)."""
import subprocess
import sys

symphonyd, doc = sys.argv[1], sys.argv[2]
actual = subprocess.run([symphonyd, "--print-defaults"], check=True,
                        capture_output=True, text=True).stdout
text = open(doc, encoding="utf-8").read()
try:
    block = text.split("<!-- BEGIN DEFAULTS -->", 1)[1].split("<!-- END DEFAULTS -->", 1)[0]
except IndexError:
    sys.exit(f"{doc}: the BEGIN/END DEFAULTS markers are missing")
block = block.strip("\n")
if not (block.startswith("```toml\n") and block.endswith("\n```")):
    sys.exit(f"{doc}: the defaults must be one ```toml block between the markers")
documented = block[len("```toml\n"):-len("```")]
if documented != actual:
    import difflib
    sys.stdout.writelines(difflib.unified_diff(
        documented.splitlines(True), actual.splitlines(True),
        f"{doc} (documented)", "symphonyd --print-defaults"))
    sys.exit(f"{doc}: defaults are out of date; paste the output of "
             "`symphonyd --print-defaults` between the markers")
print("docs/configuration.md matches symphonyd --print-defaults")
