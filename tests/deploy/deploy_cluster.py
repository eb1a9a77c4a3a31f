"""Reads the cluster's deploy files (deploy/compose, deploy/kubernetes) for deploy_cluster_test.sh.

  deploy_cluster.py check DEPLOY_DIR BINARY...
      The compose file and the Kubernetes manifests checked for consistency (below), every flag
      their command lines use checked against `BINARY --help` of the program it runs (BINARY's
      file name is the one of the image's entrypoint), and the cluster settings compared between
      the two. Prints one NATS configuration to test per line: PATH, then the KEY=VALUE
      environment it is read with, tab-separated (the ConfigMaps' copies are written next to
      DEPLOY_DIR's files in $DEPLOY_CLUSTER_TMP).
  deploy_cluster.py plan DEPLOY_DIR OUT_DIR BINARY...
      The compose topology rewritten to run on this machine: every address to 127.0.0.1 with a
      free port, every volume and mounted file to a directory under OUT_DIR, each program to the
      BINARY of the same name; nothing else changes. Writes, per service in start order (the
      depends_on order), OUT_DIR/plan/W-SERVICE.argv (one argument a line), .env (KEY=VALUE
      lines), .health (its healthcheck command, one argument a line) and .stop (the signal that
      stops it and the seconds it gets before SIGKILL), where W is its start
      wave: 0 without dependencies, else one after the wave of its last dependency (compose
      waits for those to be healthy). Prints each command line.

Kubernetes: selectors match the pod labels, every Service and NetworkPolicy port and every probe
names a container port, a PodDisruptionBudget (maxUnavailable 1) per StatefulSet, a headless
Service per StatefulSet, every $(VAR) of a command line and every $VAR of a mounted NATS
configuration is in the container's environment, --cluster-node is the pod's name, the NATS
routes and --cluster name every NATS pod by its stable DNS name and the right port, mounts name
volumes, non-root with a read-only root file system, probes and resources set.
Compose: every service has a restart policy and a healthcheck, dependencies, volumes, mounted
files and Containerfiles exist, published ports are on 127.0.0.1 only (the nodes run without
TLS) and distinct, node and server names are distinct.
Both: every analytics node runs with --init-admin 1 (tokens required from the first start), and
--insecure 1 only where it has no TLS (compose), never beside TLS (Kubernetes).
"""
import json
import os
import random
import re
import shlex
import socket
import subprocess
import sys

import yaml

# host:port in a command line or a configuration file (not "key: value", which has a space).
ADDRESS = re.compile(r"(?<![\w.-])([A-Za-z0-9][A-Za-z0-9.-]*):(\d{2,5})(?![\d.])")
LOCAL_HOSTS = {"0.0.0.0", "127.0.0.1", "localhost"}
SERVER_LISTEN_FLAGS = ("--listen", "--http-listen", "--metrics-listen")
CLUSTER_SETTINGS = ("cluster_stream", "cluster_replicas", "cluster_partitions",
                    "cluster_lease_ms", "cluster_exchange_ms")


def fail(message):
    sys.exit(f"deploy_cluster.py: {message}")


def load_yaml_documents(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


# ---- images: the Containerfile's ENTRYPOINT and CMD


def containerfile_instruction(path, name):
    """The JSON-array form of ENTRYPOINT or CMD (continuation lines joined), or None."""
    text = open(path, encoding="utf-8").read().replace("\\\n", " ")
    found = None
    for line in text.splitlines():
        if line.startswith(name + " "):
            found = json.loads(line[len(name):].strip())
    return found


class Image:
    def __init__(self, containerfile):
        self.containerfile = containerfile
        self.entrypoint = containerfile_instruction(containerfile, "ENTRYPOINT") or []
        self.cmd = containerfile_instruction(containerfile, "CMD") or []
        stop = re.findall(r"^STOPSIGNAL\s+(\S+)", open(containerfile, encoding="utf-8").read(),
                          re.M)
        self.stop_signal = stop[-1] if stop else "SIGTERM"
        if not self.entrypoint:
            fail(f"{containerfile}: no ENTRYPOINT in JSON form")

    def argv(self, args):
        """The process's argv: the entrypoint, then the given args or else the image's CMD."""
        return self.entrypoint + (self.cmd if args is None else list(args))


def flags_of(argv):
    """{flag name with '_': value} of a `--flag value` command line; a later flag wins."""
    flags, i = {}, 1
    while i < len(argv):
        if not argv[i].startswith("--"):
            fail(f"unexpected argument {argv[i]!r} in {argv}")
        if i + 1 < len(argv) and not argv[i + 1].startswith("--"):
            flags[argv[i][2:].replace("-", "_")] = argv[i + 1]
            i += 2
        else:
            flags[argv[i][2:].replace("-", "_")] = None
            i += 1
    return flags


def effective_settings(argv, read_file):
    """The server's settings: --config FILE's keys, overridden by the command line's flags."""
    flags = flags_of(argv)
    settings = {}
    if flags.get("config"):
        settings.update({k: str(v) for k, v in json.loads(read_file(flags["config"])).items()})
    settings.update({k: v for k, v in flags.items() if k != "config"})
    return settings


def check_access(where, settings):
    """Tokens from the first start (--init-admin 1); --insecure 1 only to run without TLS."""
    if str(settings.get("init_admin", "0")) != "1":
        fail(f"{where}: without --init-admin 1 the node serves without tokens until --init")
    if str(settings.get("insecure", "0")) == "1" and settings.get("tls_cert"):
        fail(f"{where}: --insecure 1 beside TLS and --init-admin accepts nothing needed")


def help_flags(binary):
    out = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=10)
    return set(re.findall(r"(?<![\w-])--([a-z][a-z0-9_-]*)", out.stdout + out.stderr))


def check_flags(where, argv, binaries, read_file):
    """Every flag of argv (and every key of its --config file) is in its program's --help."""
    program = os.path.basename(argv[0])
    if program not in binaries:
        fail(f"{where} runs {argv[0]}; the test was given no binary named {program}")
    known = help_flags(binaries[program])
    used = {f.replace("_", "-") for f in flags_of(argv)}
    config = flags_of(argv).get("config")
    if config and program == "analytics_server":
        used |= {k.replace("_", "-") for k in json.loads(read_file(config))}
    unknown = sorted(used - known)
    if unknown:
        fail(f"{where}: {program} --help does not list --{', --'.join(unknown)}")
    return len(used)


def binaries_by_name(paths):
    return {os.path.basename(p): os.path.abspath(p) for p in paths}


# ---- compose


class Compose:
    def __init__(self, deploy):
        self.dir = os.path.join(deploy, "compose")
        self.path = os.path.join(self.dir, "compose.yaml")
        self.doc = load_yaml_documents(self.path)[0]
        self.services = self.doc.get("services") or fail(f"{self.path}: no services")
        self.images = {}  # image name -> Image, from the services that build it
        for name, service in self.services.items():
            build = service.get("build")
            if build:
                containerfile = os.path.join(self.dir, build.get("context", "."),
                                             build.get("dockerfile", "Dockerfile"))
                if not os.path.isfile(containerfile):
                    fail(f"{self.path}: {name} builds {containerfile}, which does not exist")
                self.images[service.get("image", name)] = Image(os.path.normpath(containerfile))

    def image(self, name):
        image = self.services[name].get("image")
        if image not in self.images:
            fail(f"{self.path}: {name} runs image {image!r}, which no service builds here")
        return self.images[image]

    def argv(self, name):
        return self.image(name).argv(self.services[name].get("command"))

    def mounts(self, name):
        """[(target, kind, source)]: kind 'volume' (a named volume) or 'bind' (a path here)."""
        out = []
        for spec in self.services[name].get("volumes", []):
            parts = spec.split(":")
            source, target = parts[0], parts[1]
            if source.startswith((".", "/")):
                path = os.path.normpath(os.path.join(self.dir, source))
                if not os.path.exists(path):
                    fail(f"{self.path}: {name} mounts {source}, which does not exist")
                out.append((target, "bind", path))
            else:
                if source not in (self.doc.get("volumes") or {}):
                    fail(f"{self.path}: {name} mounts volume {source}, not under volumes:")
                out.append((target, "volume", source))
        return out

    def read_mounted(self, name):
        def read(path):
            for target, kind, source in self.mounts(name):
                if kind == "bind" and path == target:
                    return open(source, encoding="utf-8").read()
            fail(f"{self.path}: {name} reads {path}, which it does not mount")
        return read

    def environment(self, name):
        env = self.services[name].get("environment") or {}
        if isinstance(env, list):
            env = dict(e.split("=", 1) for e in env)
        return {k: str(v) for k, v in env.items()}

    def waves(self):
        """{service: its start wave}: 0 without dependencies, else one after its last one."""
        wave = {}

        def visit(name, path):
            if name in path:
                fail(f"{self.path}: depends_on cycle through {name}")
            if name not in wave:
                deps = self.services[name].get("depends_on") or []
                for dep in deps:
                    if dep not in self.services:
                        fail(f"{self.path}: {name} depends on {dep}, which is not a service")
                wave[name] = max([visit(d, path | {name}) + 1 for d in deps], default=0)
            return wave[name]

        for name in self.services:
            visit(name, set())
        return wave

    def check(self, binaries):
        node_names, server_names, published = {}, {}, {}
        flags = 0
        for name, service in self.services.items():
            for key in ("restart", "healthcheck"):
                if key not in service:
                    fail(f"{self.path}: {name} has no {key}")
            for network in service.get("networks") or []:
                if network not in (self.doc.get("networks") or {}):
                    fail(f"{self.path}: {name} is on network {network}, not under networks:")
            for port in service.get("ports") or []:
                parts = str(port).split(":")
                # The nodes run without TLS: nothing may be published beyond this host.
                if len(parts) != 3 or parts[0] != "127.0.0.1":
                    fail(f"{self.path}: {name} publishes {port}, not on 127.0.0.1")
                if parts[1] in published:
                    fail(f"{self.path}: {name} and {published[parts[1]]} both publish {parts[1]}")
                published[parts[1]] = name
            argv = self.argv(name)
            flags += check_flags(f"{self.path}: {name}", argv, binaries, self.read_mounted(name))
            if os.path.basename(argv[0]) == "analytics_server":
                settings = effective_settings(argv, self.read_mounted(name))
                check_access(f"{self.path}: {name}", settings)
                node = settings.get("cluster_node")
                if not node or node in node_names:
                    fail(f"{self.path}: {name}'s --cluster-node {node!r} is missing or taken")
                node_names[node] = name
            for var, value in self.environment(name).items():
                if var.endswith("SERVER_NAME"):
                    if value in server_names:
                        fail(f"{self.path}: {name} and {server_names[value]} are both {value}")
                    server_names[value] = name
        self.waves()
        return flags

    def nats_configs(self):
        """[(path, env)] of every NATS configuration a service mounts, with its environment."""
        out = []
        for name in self.services:
            if os.path.basename(self.argv(name)[0]) != "nats-server":
                continue
            config = flags_of(self.argv(name)).get("config")
            for target, kind, source in self.mounts(name):
                if kind == "bind" and target == config:
                    out.append((source, self.environment(name)))
        return out

    def analytics_settings(self):
        for name in self.services:
            argv = self.argv(name)
            if os.path.basename(argv[0]) == "analytics_server":
                return effective_settings(argv, self.read_mounted(name))
        fail(f"{self.path}: no analytics_server service")


_handed_out = set()


def free_port():
    """A loopback port free now, outside the kernel's ephemeral range, never the same one twice.

    As tests/support/server_process.cc's FreeLoopbackPort, for the same reason: the services
    bind their ports seconds after this plan, and a port from the ephemeral range (a bind to
    port 0 here) can go to any connect() or bind(0) on the machine meanwhile. CI saw a node
    fail so ("cannot listen on 127.0.0.1:33299") beside the TSan suite. Outside the range only
    another pick like this one can take it, which the random choice and the bind check make rare.
    """
    low, high = 32768, 60999
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = (int(x) for x in f.read().split())
    except (OSError, ValueError):
        pass
    first, last = 10000, low - 1
    if 65535 - high > low - 10000:  # the larger span outside the range
        first, last = high + 1, 65535
    if last - first + 1 < 1000:  # no room outside: anywhere, still checked and never repeated
        first, last = 1024, 65535
    pick = random.SystemRandom()
    for _ in range(200):
        port = pick.randint(first, last)
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    fail(f"no free loopback port in {first}-{last} after 200 tries")


def plan(deploy, out_dir, binaries):
    compose = Compose(deploy)
    waves = compose.waves()
    order = sorted(compose.services, key=lambda n: (waves[n], n))
    # What each service reads: its command line, its mounted files, its healthcheck.
    texts = {}
    for name in order:
        health = compose.services[name]["healthcheck"]["test"]
        if health[0] == "CMD-SHELL":
            health = ["sh", "-c", health[1]]
        elif health[0] == "CMD":
            health = health[1:]
        files = {t: open(s, encoding="utf-8").read()
                 for t, k, s in compose.mounts(name) if k == "bind" and os.path.isfile(s)}
        texts[name] = {"argv": compose.argv(name), "files": files, "health": health}
    # The ports each service listens on: its addresses on a local host.
    ports = {}
    for name, t in texts.items():
        for text in t["argv"] + list(t["files"].values()) + t["health"]:
            for host, port in ADDRESS.findall(text):
                if host in LOCAL_HOSTS:
                    ports.setdefault(name, {}).setdefault(int(port), free_port())

    def rewrite(name, text):
        def address(m):
            host, port = m.group(1), int(m.group(2))
            owner = name if host in LOCAL_HOSTS else host
            if owner not in compose.services:
                fail(f"{compose.path}: {name} uses {m.group(0)}: {host} is not a service")
            if port not in ports.get(owner, {}):
                fail(f"{compose.path}: {name} uses {m.group(0)}, a port {owner} does not listen on")
            return f"127.0.0.1:{ports[owner][port]}"
        text = ADDRESS.sub(address, text)
        for target, kind, source in compose.mounts(name):
            local = os.path.join(out_dir, name, os.path.basename(target.rstrip("/")) or "root")
            text = re.sub(r"(?<![\w/.-])" + re.escape(target) + r"(?=$|[/\s\"',\]])", local,
                          text)
        return text

    plan_dir = os.path.join(out_dir, "plan")
    os.makedirs(plan_dir)
    for name in order:
        os.makedirs(os.path.join(out_dir, name))
        for target, kind, source in compose.mounts(name):
            local = os.path.join(out_dir, name, os.path.basename(target.rstrip("/")))
            if kind == "volume":
                os.makedirs(local)
            else:
                with open(local, "w", encoding="utf-8") as f:
                    f.write(rewrite(name, texts[name]["files"][target]))
        argv = [rewrite(name, a) for a in texts[name]["argv"]]
        program = os.path.basename(argv[0])
        if program not in binaries:
            fail(f"{name} runs {argv[0]}; the test was given no binary named {program}")
        argv[0] = binaries[program]
        stem = os.path.join(plan_dir, f"{waves[name]}-{name}")
        with open(stem + ".argv", "w", encoding="utf-8") as f:
            f.write("".join(a + "\n" for a in argv))
        with open(stem + ".env", "w", encoding="utf-8") as f:
            f.write("".join(f"{k}={v}\n" for k, v in compose.environment(name).items()))
        # How compose stops it: the signal, then SIGKILL after the grace period (10 s default).
        grace = str(compose.services[name].get("stop_grace_period", "10s"))
        seconds = int(grace[:-1]) * (60 if grace.endswith("m") else 1)
        with open(stem + ".stop", "w", encoding="utf-8") as f:
            f.write(f"{compose.services[name].get('stop_signal', compose.image(name).stop_signal)}"
                    f" {seconds}\n")
        with open(stem + ".health", "w", encoding="utf-8") as f:
            f.write("".join(rewrite(name, a) + "\n" for a in texts[name]["health"]))
        print(f"{name}: {shlex.join(argv)}")


# ---- Kubernetes


def matches(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


class Kubernetes:
    def __init__(self, deploy, compose):
        self.dir = os.path.join(deploy, "kubernetes")
        kustomization = load_yaml_documents(os.path.join(self.dir, "kustomization.yaml"))[0]
        listed = kustomization.get("resources") or []
        present = sorted(f for f in os.listdir(self.dir)
                         if f.endswith(".yaml") and f != "kustomization.yaml")
        if sorted(listed) != present:
            fail(f"{self.dir}/kustomization.yaml lists {listed}; the directory has {present}")
        self.objects = []
        for file in listed:
            for doc in load_yaml_documents(os.path.join(self.dir, file)):
                self.objects.append((file, doc))
        self.compose = compose
        self.kustomize_images = {i["name"] for i in kustomization.get("images") or []}

    def of_kind(self, kind):
        return [(f, o) for f, o in self.objects if o["kind"] == kind]

    def named(self, kind, name):
        found = [o for f, o in self.of_kind(kind) if o["metadata"]["name"] == name]
        if len(found) != 1:
            fail(f"{self.dir}: expected one {kind} {name}, found {len(found)}")
        return found[0]

    def pods(self):
        """[(statefulset, its pod template labels, its containers)]"""
        return [(o, o["spec"]["template"]["metadata"]["labels"],
                 o["spec"]["template"]["spec"]["containers"]) for f, o in self.of_kind("StatefulSet")]

    def pod_of(self, where, selector):
        """The one StatefulSet whose pods the selector selects."""
        found = [p for p in self.pods() if matches(selector, p[1])]
        if len(found) != 1:
            fail(f"{where}: selector {selector} selects {len(found)} StatefulSets' pods, not 1")
        return found[0]

    @staticmethod
    def port_of(where, containers, port):
        """The containerPort a Service, probe or policy port (a name or a number) refers to."""
        for c in containers:
            for p in c.get("ports") or []:
                if port in (p.get("name"), p["containerPort"]):
                    return p["containerPort"]
        fail(f"{where}: port {port!r} is none of the container ports")

    def argv(self, container):
        image = container["image"]
        if image not in self.compose.images:
            fail(f"{self.dir}: image {image} is built by no compose service")
        if image not in self.kustomize_images:
            fail(f"{self.dir}/kustomization.yaml: images: does not name {image}")
        if "command" in container:
            fail(f"{self.dir}: {container['name']} replaces its image's entrypoint")
        return self.compose.images[image].argv(container.get("args"))

    def mounted_files(self, sts, container):
        """{path in the container: (ConfigMap name, key, text)} of its ConfigMap volumes."""
        volumes = {v["name"]: v for v in sts["spec"]["template"]["spec"].get("volumes") or []}
        out = {}
        for mount in container.get("volumeMounts") or []:
            config_map = (volumes.get(mount["name"]) or {}).get("configMap")
            if config_map:
                data = self.named("ConfigMap", config_map["name"]).get("data") or {}
                for key, text in data.items():
                    out[os.path.join(mount["mountPath"], key)] = (config_map["name"], key, text)
        return out

    def check(self, binaries, readme_text):
        flags = 0
        stateful_sets = self.pods()
        if not stateful_sets:
            fail(f"{self.dir}: no StatefulSet")
        for sts, labels, containers in stateful_sets:
            name = sts["metadata"]["name"]
            where = f"{self.dir}: StatefulSet {name}"
            spec = sts["spec"]
            if not matches(spec["selector"]["matchLabels"], labels):
                fail(f"{where}: selector does not match its pod labels")
            headless = self.named("Service", spec["serviceName"])
            if headless["spec"].get("clusterIP") != "None":
                fail(f"{where}: serviceName {spec['serviceName']} is not headless")
            self.pod_of(f"Service {spec['serviceName']}", headless["spec"]["selector"])
            pdbs = [o for f, o in self.of_kind("PodDisruptionBudget")
                    if matches(o["spec"]["selector"]["matchLabels"], labels)]
            if len(pdbs) != 1 or pdbs[0]["spec"].get("maxUnavailable") != 1:
                fail(f"{where}: needs one PodDisruptionBudget with maxUnavailable 1")
            pod = spec["template"]["spec"]
            if (pod.get("securityContext") or {}).get("runAsNonRoot") is not True:
                fail(f"{where}: the pod must set runAsNonRoot")
            volume_names = {v["name"] for v in pod.get("volumes") or []} | \
                {v["metadata"]["name"] for v in spec.get("volumeClaimTemplates") or []}
            for v in pod.get("volumes") or []:
                secret = (v.get("secret") or {}).get("secretName")
                if secret and secret not in readme_text:
                    fail(f"{where} mounts Secret {secret}; deploy/README.md does not say so")
            for c in containers:
                cwhere = f"{where} container {c['name']}"
                security = c.get("securityContext") or {}
                if security.get("readOnlyRootFilesystem") is not True or \
                        security.get("allowPrivilegeEscalation") is not False:
                    fail(f"{cwhere}: needs readOnlyRootFilesystem and no privilege escalation")
                if not (c.get("resources") or {}).get("requests") or \
                        not c["resources"].get("limits"):
                    fail(f"{cwhere}: needs resource requests and limits")
                for mount in c.get("volumeMounts") or []:
                    if mount["name"] not in volume_names:
                        fail(f"{cwhere}: mounts {mount['name']}, which is no volume")
                for probe in ("readinessProbe", "livenessProbe"):
                    if probe not in c:
                        fail(f"{cwhere}: has no {probe}")
                for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                    if probe in c:
                        self.port_of(f"{cwhere} {probe}", [c], c[probe]["httpGet"]["port"])
                argv = self.argv(c)
                env = {e["name"]: e for e in c.get("env") or []}
                for arg in argv:
                    for var in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", arg):
                        if var not in env:
                            fail(f"{cwhere}: {arg} uses $({var}), which env does not set")
                files = self.mounted_files(sts, c)
                for path, (config_map, key, text) in files.items():
                    for var in re.findall(r"\$([A-Za-z_][A-Za-z0-9_]*)", text):
                        if var not in env:
                            fail(f"ConfigMap {config_map} {key} uses ${var}, which {cwhere}'s "
                                 f"env does not set")

                def read(path):
                    if path not in files:
                        fail(f"{cwhere} reads {path}, which no ConfigMap mounts")
                    return files[path][2]
                flags += check_flags(cwhere, argv, binaries, read)
                program = os.path.basename(argv[0])
                if program == "analytics_server":
                    self.check_analytics(cwhere, sts, c, argv, env)
                elif program == "nats-server":
                    self.check_nats(cwhere, sts, c, read(flags_of(argv)["config"]))
        for kind in ("Service", "NetworkPolicy"):
            for file, o in self.of_kind(kind):
                where = f"{file}: {kind} {o['metadata']['name']}"
                selector = o["spec"]["selector"] if kind == "Service" else \
                    o["spec"]["podSelector"]["matchLabels"]
                sts, labels, containers = self.pod_of(where, selector)
                if kind == "Service":
                    for p in o["spec"]["ports"]:
                        self.port_of(where, containers, p.get("targetPort", p["port"]))
                    continue
                for rule in o["spec"].get("ingress") or []:
                    for p in rule.get("ports") or []:
                        self.port_of(where, containers, p["port"])
                    for peer in rule.get("from") or []:
                        peer_labels = peer["podSelector"]["matchLabels"]
                        if not any(matches(peer_labels, l) for _, l, _ in stateful_sets) and \
                                not all(f"{k}: \"{v}\"" in readme_text
                                        for k, v in peer_labels.items()):
                            fail(f"{where}: admits pods labelled {peer_labels}: no StatefulSet "
                                 "has them and deploy/README.md does not name them")
        return flags

    def stable_names(self, where, url_hosts, service_port_target):
        """Every host is POD.SERVICE of a StatefulSet's pod, all of its pods are named, and the
        port reaches service_port_target (a container port)."""
        seen = set()
        for host, port in url_hosts:
            pod, _, service_name = host.partition(".")
            service = self.named("Service", service_name)
            sts, labels, containers = self.pod_of(f"{where}: {host}", service["spec"]["selector"])
            prefix, _, ordinal = pod.rpartition("-")
            if prefix != sts["metadata"]["name"] or not ordinal.isdigit() or \
                    int(ordinal) >= sts["spec"]["replicas"]:
                fail(f"{where}: {host} is not a pod of StatefulSet {sts['metadata']['name']}")
            target = [self.port_of(where, containers, p.get("targetPort", p["port"]))
                      for p in service["spec"]["ports"] if p["port"] == int(port)]
            if target != [service_port_target]:
                fail(f"{where}: {host}:{port} does not reach port {service_port_target}")
            seen.add(int(ordinal))
        if seen and seen != set(range(sts["spec"]["replicas"])):
            fail(f"{where}: names pods {sorted(seen)} of {sts['spec']['replicas']}")
        return sts

    def check_analytics(self, where, sts, container, argv, env):
        settings = effective_settings(argv, lambda p: fail(f"{where}: no --config expected"))
        node = settings.get("cluster_node") or ""
        var = re.fullmatch(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", node)
        check_access(where, settings)
        field = ((env.get(var.group(1)) or {}).get("valueFrom") or {}).get("fieldRef", {}) \
            if var else {}
        if field.get("fieldPath") != "metadata.name":
            fail(f"{where}: --cluster-node must be $(VAR) with VAR the pod's metadata.name")
        for flag in SERVER_LISTEN_FLAGS:
            port = int(settings[flag[2:].replace("-", "_")].rsplit(":", 1)[1])
            self.port_of(f"{where} {flag}", [container], port)
        http_port = int(settings["http_listen"].rsplit(":", 1)[1])
        probe = container["readinessProbe"]["httpGet"]
        if probe["path"] != "/healthz" or \
                self.port_of(where, [container], probe["port"]) != http_port:
            fail(f"{where}: readinessProbe must be /healthz on the HTTP port {http_port}")
        if settings.get("tls_cert") and probe.get("scheme") != "HTTPS":
            fail(f"{where}: the HTTP port serves TLS: the probes need scheme HTTPS")
        hosts = [ADDRESS.fullmatch(u[len("nats://"):]).groups()
                 for u in settings["cluster"].split(",")]
        nats = self.stable_names(f"{where} --cluster", hosts, self.nats_port(hosts, "listen"))
        if int(settings.get("cluster_replicas", 3)) > nats["spec"]["replicas"]:
            fail(f"{where}: --cluster-replicas is more than the NATS servers")

    def nats_port(self, hosts, key):
        """The port a NATS server's configuration listens on for clients or routes."""
        service = self.named("Service", hosts[0][0].partition(".")[2])
        sts, _, containers = self.pod_of("nats", service["spec"]["selector"])
        for c in containers:
            for path, (cm, k, text) in self.mounted_files(sts, c).items():
                port = nats_listen_port(text, key)
                if port:
                    return port
        fail(f"no NATS configuration with {key}")

    def check_nats(self, where, sts, container, config):
        for key in ("listen", "cluster", "http"):
            self.port_of(f"{where} ({key})", [container], nats_listen_port(config, key))
        routes = re.findall(r"nats-route://([A-Za-z0-9.-]+):(\d+)", config)
        if not routes:
            fail(f"{where}: its configuration has no routes")
        self.stable_names(f"{where} routes", routes, nats_listen_port(config, "cluster"))

    def analytics_settings(self):
        for sts, labels, containers in self.pods():
            for c in containers:
                argv = self.argv(c)
                if os.path.basename(argv[0]) == "analytics_server":
                    return effective_settings(argv, lambda p: fail("no --config expected"))
        fail(f"{self.dir}: no analytics_server container")

    def nats_configs(self, out_dir):
        """[(path, env)]: each ConfigMap's NATS configuration written to out_dir, with the
        environment of the first pod that mounts it (its fieldRef metadata.name: pod 0)."""
        out = []
        for sts, labels, containers in self.pods():
            for c in containers:
                if os.path.basename(self.argv(c)[0]) != "nats-server":
                    continue
                env = {e["name"]: f"{sts['metadata']['name']}-0" for e in c.get("env") or []
                       if ((e.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath")
                       == "metadata.name"}
                for path, (config_map, key, text) in self.mounted_files(sts, c).items():
                    local = os.path.join(out_dir, f"configmap-{config_map}-{key}")
                    with open(local, "w", encoding="utf-8") as f:
                        f.write(text)
                    out.append((local, env))
        return out


def nats_listen_port(config, key):
    """listen (clients), http (monitoring) or cluster's listen (routes) of a NATS config."""
    if key == "cluster":
        block = re.search(r"^cluster\s*\{(.*?)^\}", config, re.S | re.M)
        config = block.group(1) if block else ""
        m = re.search(r"^\s*listen\s*[:=]\s*\S*?:(\d+)\s*$", config, re.M)
    else:  # a top-level key: not indented
        m = re.search(rf"^{key}\s*[:=]\s*\S*?:(\d+)\s*$", config, re.M)
    return int(m.group(1)) if m else None


def check(deploy, binaries):
    compose = Compose(deploy)
    kube = Kubernetes(deploy, compose)
    readme = open(os.path.join(deploy, "README.md"), encoding="utf-8").read()
    flags = compose.check(binaries) + kube.check(binaries, readme)
    a, b = compose.analytics_settings(), kube.analytics_settings()
    differ = [k for k in CLUSTER_SETTINGS if a.get(k) != b.get(k)]
    if differ:
        fail("compose and Kubernetes differ in " +
             ", ".join(f"{k} ({a.get(k)} / {b.get(k)})" for k in differ))
    print(f"# {len(compose.services)} compose services and {len(kube.objects)} Kubernetes "
          f"objects consistent; {flags} flag uses known to --help; cluster settings equal",
          file=sys.stderr)
    tmp = os.environ.get("DEPLOY_CLUSTER_TMP") or fail("DEPLOY_CLUSTER_TMP is not set")
    for path, env in compose.nats_configs() + kube.nats_configs(tmp):
        print("\t".join([path] + [f"{k}={v}" for k, v in env.items()]))


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "check":
        check(sys.argv[2], binaries_by_name(sys.argv[3:]))
    elif len(sys.argv) >= 5 and sys.argv[1] == "plan":
        plan(sys.argv[2], sys.argv[3], binaries_by_name(sys.argv[4:]))
    else:
        sys.exit(__doc__)
