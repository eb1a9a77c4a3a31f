"""Reads the deploy files the way their consumers do, for deploy_prometheus_test.sh.

  deploy_files.py unit-argv UNIT ENV_FILE
      ExecStart= of the systemd unit with its $VAR / ${VAR} expanded from the env file, as
      systemd does it, one argument per line (argv[0] included). Fails when the unit uses a
      variable the env file does not set, or the env file sets one the unit never uses.
  deploy_files.py expressions ALERTS DASHBOARD
      Every PromQL expression of the alert rules and of the Grafana dashboard (panel targets and
      query variables), one per line, with the dashboard's variables replaced by values a plain
      Prometheus query accepts.
  deploy_files.py check-names METRICS_TEXT ALERTS DASHBOARD
      Every metric name those expressions use must be in the server's /metrics output
      (METRICS_TEXT, one node's or several nodes' concatenated); prints the names, fails naming
      the missing ones. The per-partition families (CLUSTER_ONLY) are required only when the
      text comes from nodes in cluster mode (analytics_cluster_members above 0).
  deploy_files.py container-packages CONTAINERFILE SETUP_SH SERVER_BINARY
      The Containerfile's build packages must all be in deploy/setup.sh's PACKAGES, and its
      runtime packages with their dependencies (apt-cache) must own every library the server
      binary links (ldd, dpkg -S). Needs Debian's dpkg and apt-cache.

Standard library only (no PyYAML): the alert file is read for its `expr:` keys, which is all
this needs; promtool checks the rest of its YAML.
"""
import json
import os
import re
import shlex
import subprocess
import sys

# ---- systemd


def read_env_file(path):
    """KEY=VALUE lines; comments and blank lines skipped; one level of quotes removed."""
    env = {}
    for line in open(path, encoding="utf-8"):
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            sys.exit(f"{path}: not KEY=VALUE: {line}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        env[key.strip()] = value
    return env


def exec_start(path):
    """The ExecStart= command line, continuation lines joined."""
    logical, pending = [], ""
    for raw in open(path, encoding="utf-8"):
        line = raw.rstrip("\n")
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    commands = [l.split("=", 1)[1] for l in logical if l.startswith("ExecStart=")]
    if len(commands) != 1:
        sys.exit(f"{path}: expected one ExecStart=, found {len(commands)}")
    # Prefixes (-, @, +, !, :) change how systemd runs the command, not its arguments.
    return commands[0].strip().lstrip("-@+!:")


def unit_argv(unit, env_file):
    env = read_env_file(env_file)
    used = set()

    def value(name):
        if name not in env:
            sys.exit(f"{unit} uses ${name}; {env_file} does not set it")
        used.add(name)
        return env[name]

    argv = []
    for word in shlex.split(exec_start(unit)):
        whole = re.fullmatch(r"\$([A-Za-z_][A-Za-z0-9_]*)", word)
        if whole:  # $VAR alone: split on whitespace, zero or more arguments
            argv.extend(value(whole.group(1)).split())
            continue
        # ${VAR}: replaced in place, the word stays one argument (an empty one if VAR is empty)
        argv.append(re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: value(m.group(1)), word))
    unused = sorted(set(env) - used)
    if unused:
        sys.exit(f"{env_file} sets {', '.join(unused)}, which {unit} never passes on")
    for arg in argv:
        if "\n" in arg:
            sys.exit(f"an argument of {unit} contains a newline: {arg!r}")
        print(arg)


# ---- PromQL expressions


def alert_expressions(path):
    """The `expr:` values of a rule file: plain scalars, quoted, or `|` / `>` blocks."""
    lines = open(path, encoding="utf-8").read().splitlines()
    exprs = []
    i = 0
    while i < len(lines):
        m = re.match(r"^(\s*)(?:- )?expr:\s*(.*)$", lines[i])
        i += 1
        if not m:
            continue
        indent, rest = len(m.group(1)), m.group(2).strip()
        if rest[:1] in "|>":
            block = []
            while i < len(lines) and (not lines[i].strip() or
                                      len(lines[i]) - len(lines[i].lstrip()) > indent):
                block.append(lines[i].strip())
                i += 1
            exprs.append(" ".join(b for b in block if b))
        else:
            if len(rest) >= 2 and rest[0] == rest[-1] and rest[0] in "'\"":
                rest = rest[1:-1]
            exprs.append(rest)
    return exprs


def dashboard_expressions(path):
    doc = json.load(open(path, encoding="utf-8"))
    exprs = []

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("expr"), str):
                exprs.append(node["expr"])
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(doc.get("panels", []))
    for var in doc.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            query = var.get("query")
            query = query.get("query") if isinstance(query, dict) else query
            exprs.append(query)
    return exprs


def as_plain_promql(expr):
    """Grafana's variables and helper functions replaced by what they stand for."""
    m = re.fullmatch(r"\s*label_values\((.*),\s*[A-Za-z_][A-Za-z0-9_]*\s*\)\s*", expr)
    if m:  # label_values(SELECTOR, LABEL): SELECTOR is the query
        expr = m.group(1)
    # 4 s: four scrapes at the test's 1 s interval, like Grafana's $__rate_interval.
    expr = expr.replace("$__rate_interval", "4s").replace("$__interval", "4s")
    return re.sub(r"\$\{?[A-Za-z_][A-Za-z0-9_]*\}?", ".+", expr)


KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left",
            "group_right", "bool", "offset", "inf", "nan", "atan2", "start", "end"}
# Series Prometheus makes itself rather than scraping them from the target.
SYNTHETIC = {"up"}
# Labelled families with one series per partition a node owns: a server not in cluster mode
# (analytics_cluster_members 0) has none, not even their HELP line. Checked against the /metrics
# of nodes that see cluster members (deploy_cluster_test.sh), which must export them.
CLUSTER_ONLY = {"analytics_cluster_partition_lag_seconds"}


def metric_names(expr):
    """Metric names an expression selects: identifiers that are not functions, keywords, label
    names (inside {...}, by (...), on (...), ...), strings or durations."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for m in re.finditer(r"(?<![\w$.:])([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?", text):
        word, call = m.group(1), m.group(2)
        if call or word.lower() in KEYWORDS:
            continue
        names.add(word)
    return names


def expressions(alerts, dashboard):
    for expr in alert_expressions(alerts) + dashboard_expressions(dashboard):
        print(" ".join(as_plain_promql(expr).split()))


def check_names(metrics_text, alerts, dashboard):
    exported, in_cluster = set(), False
    for line in open(metrics_text, encoding="utf-8"):
        if line.strip() and not line.startswith("#"):
            exported.add(re.match(r"[A-Za-z_:][A-Za-z0-9_:]*", line).group(0))
            m = re.fullmatch(r"analytics_cluster_members(?:\{\})? (\S+)", line.strip())
            in_cluster |= bool(m) and float(m.group(1)) > 0
    if not in_cluster:
        exported |= CLUSTER_ONLY
    used = {}
    for source, exprs in (("alerts", alert_expressions(alerts)),
                          ("dashboard", dashboard_expressions(dashboard))):
        if not exprs:
            sys.exit(f"no expressions found in the {source} file")
        for expr in exprs:
            for name in metric_names(as_plain_promql(expr)):
                used.setdefault(name, set()).add(source)
    missing = sorted(n for n in used if n not in exported and n not in SYNTHETIC)
    for name in sorted(used):
        print(f"{name} ({', '.join(sorted(used[name]))})")
    if missing:
        sys.exit("not exported by analytics_server: " + ", ".join(missing))


# ---- container


def containerfile_arg(path, name):
    text = re.sub(r"\\\n", " ", open(path, encoding="utf-8").read())
    m = re.search(rf'^ARG {name}="([^"]*)"', text, re.M)
    if not m:
        sys.exit(f"{path}: no ARG {name}=\"...\"")
    return m.group(1).split()


def setup_packages(path):
    text = open(path, encoding="utf-8").read()
    m = re.search(r"^readonly PACKAGES=\((.*?)^\)", text, re.M | re.S)
    if not m:
        sys.exit(f"{path}: no PACKAGES=( ... ) list")
    return {word for line in m.group(1).splitlines()
            for word in line.split("#", 1)[0].split()}


def library_packages(binary):
    """The Debian package of each shared library the binary links."""
    paths = re.findall(r"=> (/\S+)", subprocess.run(["ldd", binary], check=True,
                                                    capture_output=True, text=True).stdout)
    # usrmerge: dpkg knows a library under /lib or /usr/lib, whichever its package ships, and
    # by the name of the link or of the file. One dpkg call for every spelling.
    spellings = {}
    for path in paths:
        names = {path, os.path.realpath(path)}
        names |= {n[4:] if n.startswith("/usr/") else "/usr" + n for n in names}
        spellings[path] = names
    out = subprocess.run(["dpkg", "-S", *sorted(set().union(*spellings.values()))],
                         capture_output=True, text=True).stdout
    owner_of = {}
    for line in out.splitlines():
        packages, sep, file = line.partition(": ")
        if sep:
            owner_of.setdefault(file, set()).update(
                p.strip().split(":")[0] for p in packages.split(","))
    owners = {}
    for path, names in spellings.items():
        found = set().union(*(owner_of.get(n, set()) for n in names))
        if not found:
            sys.exit(f"no Debian package owns {path} (linked by {binary})")
        owners[path] = found
    return owners


def container_packages(containerfile, setup_sh, binary):
    build = containerfile_arg(containerfile, "BUILD_PACKAGES")
    not_in_setup = sorted(set(build) - setup_packages(setup_sh))
    if not_in_setup:
        sys.exit(f"{containerfile} builds with {', '.join(not_in_setup)}, not in {setup_sh}")
    runtime = containerfile_arg(containerfile, "RUNTIME_PACKAGES")
    out = subprocess.run(["apt-cache", "depends", "--recurse", "--no-recommends",
                          "--no-suggests", "--no-conflicts", "--no-breaks", "--no-replaces",
                          "--no-enhances", *runtime], check=True, capture_output=True,
                         text=True).stdout
    closure = {line.strip() for line in out.splitlines() if not line.startswith(" ")}
    missing = []
    for path, owners in sorted(library_packages(binary).items()):
        # A sanitizer build (asan, tsan presets) links its runtime; the image never does.
        if any(re.match(r"lib(a|t|ub|l)san\d*$", o) for o in owners):
            continue
        if not owners & closure:
            missing.append(f"{path} ({', '.join(sorted(owners))})")
    if missing:
        sys.exit(f"{containerfile}: RUNTIME_PACKAGES leave out " + "; ".join(missing))
    print(f"{len(build)} build packages in setup.sh; {len(runtime)} runtime packages cover "
          f"every library of {os.path.basename(binary)}")


if __name__ == "__main__":
    commands = {"unit-argv": (unit_argv, 2), "expressions": (expressions, 2),
                "check-names": (check_names, 3), "container-packages": (container_packages, 3)}
    if len(sys.argv) < 2 or sys.argv[1] not in commands or \
            len(sys.argv) != 2 + commands[sys.argv[1]][1]:
        sys.exit(__doc__)
    commands[sys.argv[1]][0](*sys.argv[2:])
