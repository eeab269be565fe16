#!/usr/bin/env python3
"""Builds cases/ from the vendored WPT files under wpt/.

For every case this writes cases/NAME.vtt (the exact file a browser loads in
the WPT test) and cases/NAME.json (what the test expects, as data). Run from
anywhere: python3 tests/webvtt-wpt/tools/generate.py (needs node for the
JavaScript assertions). The output is committed; the Rust test only reads it.

* support/NAME.test: WPT's source format (title, HTML metadata, JS
  assertions, `===`, the WebVTT file with Python escapes). The .vtt is made
  exactly as WPT's tools/build.py makes tests/support/NAME.vtt:
  bytes(vtt, "utf-8").decode("unicode_escape").
* tests/NAME.html + tests/support/NAME.vtt: a generated test whose .test
  source the mirror did not hold; the assertions are the JS block of the
  HTML, the .vtt is used as is.
* tests/header-regions.html: hand-written; its checkCueRegions() reads the
  expectation for each cue from the cue's text (JSON). That logic is
  transcribed below (header_regions()).
* signature-invalid.html + support/*.vtt: files that must fail to load.
"""

import json
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
WPT = os.path.join(ROOT, "wpt")
CASES = os.path.join(ROOT, "cases")

HTML_JS = re.compile(
    r"    var cues = video\.textTracks\[0\]\.cues;\n    \{\n(.*)\n    \}\n    this\.done\(\);",
    re.S,
)
COUNT = re.compile(r"assert_equals\(cues\.length, (\d+)")


def read(rel):
    with open(os.path.join(WPT, rel), encoding="utf-8", newline="") as f:
        return f.read()


def split_test(source):
    """Mirrors tools/build.py's generate_test(): (title, js, vtt)."""
    header, body = source.split("\n\n", 1)
    title = header.split("\n", 1)[0]
    js, vtt = body.split("\n===\n", 1)
    return title, js, bytes(vtt, "utf-8").decode("unicode_escape")


def header_regions(vtt):
    """tests/header-regions.html, as data.

    The test asserts 9 cues; for each cue it JSON-parses the cue text: the
    string "no region" means the cue has no region, an object lists region
    attributes, any attribute it leaves out takes regionDefaults' value.
    """
    defaults = {
        "width": 100,
        "lines": 3,
        "regionAnchorX": 0,
        "regionAnchorY": 100,
        "viewportAnchorX": 0,
        "viewportAnchorY": 100,
        "scroll": "",
    }
    lines = vtt.split("\n")
    texts = [lines[i + 1] for i, l in enumerate(lines) if "-->" in l]
    if len(texts) != 9:
        sys.exit("header-regions: expected 9 cue payloads, found %d" % len(texts))
    checks = []
    for i, t in enumerate(texts):
        # The test reads this from cue.text; check the text got there too.
        checks.append({"cue": i, "path": ["text"], "equals": t})
        expected = json.loads(t)
        if expected == "no region":
            checks.append({"cue": i, "path": ["region"], "equals": None})
        else:
            for prop, default in defaults.items():
                checks.append(
                    {"cue": i, "path": ["region", prop], "equals": expected.get(prop, default)}
                )
    return 9, checks


def dump(case):
    """JSON with one check per line, so diffs stay readable."""
    out = []
    for key, value in case.items():
        if isinstance(value, list) and value and isinstance(value[0], dict):
            items = ",\n".join("  " + json.dumps(v, ensure_ascii=True) for v in value)
            out.append("%s: [\n%s\n ]" % (json.dumps(key), items))
        else:
            out.append("%s: %s" % (json.dumps(key), json.dumps(value, ensure_ascii=True)))
    return "{\n " + ",\n ".join(out) + "\n}\n"


def main():
    cases = []  # (name, title, sources, vtt text, js or None)

    for f in sorted(os.listdir(os.path.join(WPT, "support"))):
        if f.endswith(".test"):
            name = f[: -len(".test")]
            title, js, vtt = split_test(read("support/" + f))
            cases.append((name, title, ["wpt/support/" + f], vtt, js))

    for f in sorted(os.listdir(os.path.join(WPT, "tests"))):
        if not f.endswith(".html"):
            continue
        name = f[: -len(".html")]
        html = read("tests/" + f)
        vtt = read("tests/support/%s.vtt" % name)
        title = re.search(r"<title>(?:WebVTT parser test: )?(.*)</title>", html).group(1)
        sources = ["wpt/tests/" + f, "wpt/tests/support/%s.vtt" % name]
        if name == "header-regions":
            cases.append((name, title, sources, vtt, None))
        else:
            cases.append((name, title, sources, vtt, HTML_JS.search(html).group(1)))

    invalid = read("signature-invalid.html")
    for label, f in re.findall(r"\['([^']+)',\s*'([^']+\.vtt)'\]", invalid):
        path = os.path.join(WPT, "support", f)
        name = "signature-invalid-" + f[: -len(".vtt")].replace("signature-", "")
        if not os.path.exists(path):
            print("not vendored (not obtainable): support/%s" % f)
            continue
        cases.append((name, "signature, " + label, ["wpt/signature-invalid.html", "wpt/support/" + f], read("support/" + f), "ERROR"))

    names = [c[0] for c in cases]
    assert len(names) == len(set(names)), names

    to_record = []
    for name, title, sources, vtt, js in cases:
        if js not in (None, "ERROR"):
            # None: the test asserts no cue count (stylesheets).
            m = COUNT.search(js)
            to_record.append({"name": name, "js": js, "cues": int(m.group(1)) if m else None})
    recorded = subprocess.run(
        ["node", os.path.join(HERE, "record_assertions.js")],
        input=json.dumps(to_record),
        capture_output=True,
        text=True,
    )
    if recorded.returncode != 0:
        sys.exit(recorded.stderr)
    recorded = {r["name"]: r for r in json.loads(recorded.stdout)}
    counts = {t["name"]: t["cues"] for t in to_record}

    for f in os.listdir(CASES):
        os.remove(os.path.join(CASES, f))
    for name, title, sources, vtt, js in cases:
        with open(os.path.join(CASES, name + ".vtt"), "w", encoding="utf-8", newline="") as f:
            f.write(vtt)
        case = {"name": name, "title": title, "from": sources}
        if js == "ERROR":
            case["expect"] = "error"
        elif js is None:
            count, checks = header_regions(vtt)
            case.update(expect="cues", cues=count, checks=checks, not_checked=[])
        else:
            r = recorded[name]
            case.update(expect="cues", cues=counts[name], checks=r["checks"], not_checked=r["not_checked"])
        with open(os.path.join(CASES, name + ".json"), "w", encoding="utf-8") as f:
            f.write(dump(case))
    print("%d cases" % len(cases))


if __name__ == "__main__":
    main()
