#!/usr/bin/env bash
# The cluster's deploy files (deploy/compose, deploy/kubernetes) against the real things:
# - every NATS configuration (compose's nats.conf per server, the Kubernetes ConfigMap's) passes
#   `nats-server -t`, read with the environment its container gives it;
# - every flag the compose services and the Kubernetes containers pass (the image's entrypoint
#   included, and the keys of compose's --config file) is in `analytics_server --help` (or
#   `nats-server --help`);
# - the manifests are consistent (deploy_cluster.py: selectors, ports, probes, PDBs, the
#   pod-name environment, stable DNS names of the NATS routes and --cluster, security context),
#   the compose file too, and both run the cluster with the same settings; `kubectl kustomize`
#   builds the manifests when kubectl is installed;
# - the compose topology runs for real on loopback: the three nats-server and three
#   analytics_server processes with compose's own configuration files and command lines, only
#   addresses (127.0.0.1, free ports), volumes (temporary directories) and binaries changed,
#   started in depends_on order with each wave's healthchecks passing first; a node made the
#   admin's token at its first start (--init-admin) and a call without it is refused; 3000
#   generated events replayed with it through all three nodes; GetMetrics' events_total is 3000 on every node, and
#   the nodes own every partition between them; every metric name of deploy/prometheus/alerts.yml
#   and the Grafana dashboard is in the nodes' /metrics, and the cluster alert's partition count
#   is the compose file's; the image's stop signal stops every process with status 0 within
#   compose's grace period.
# Usage: deploy_cluster_test.sh analytics_server event_reporter dashboard_client
set -euo pipefail
server=$(readlink -f "$1") reporter=$(readlink -f "$2") dashboard=$(readlink -f "$3")
nats=${RTA_NATS_SERVER:-/usr/sbin/nats-server}
here=$(cd "$(dirname "$0")" && pwd)
deploy=$(cd "$here/../../deploy" && pwd)
dir=$(mktemp -d)
pids=()
cleanup() {
  ((${#pids[@]})) && kill -KILL "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
readonly events=3000
start=$SECONDS
step() { echo "== [$((SECONDS - start)) s] $*"; }

[[ -x $nats ]] || { echo "$nats is not installed (bash deploy/setup.sh)"; exit 1; }
for tool in curl python3; do
  command -v "$tool" >/dev/null || { echo "$tool is not installed (bash deploy/setup.sh)"; exit 1; }
done
python3 -c 'import yaml' 2>/dev/null || { echo "PyYAML is not installed (bash deploy/setup.sh)"; exit 1; }
cluster() { python3 "$here/deploy_cluster.py" "$@"; }

step "consistency of the compose file and the manifests; flags against --help"
# Fails naming the first inconsistency; prints the NATS configurations to test.
DEPLOY_CLUSTER_TMP=$dir cluster check "$deploy" "$server" "$nats" >"$dir/nats_configs"

step "every NATS configuration with nats-server -t"
while IFS=$'\t' read -r -a line; do
  # The file, then the environment the container reads it with (its $VAR references).
  env "${line[@]:1}" "$nats" -t -c "${line[0]}" 2>&1 ||
    { echo "nats-server -t refuses ${line[0]} (with ${line[*]:1})"; exit 1; }
done <"$dir/nats_configs"

if command -v kubectl >/dev/null; then
  step "kubectl kustomize"
  kubectl kustomize "$deploy/kubernetes" >"$dir/kustomized.yaml"
  echo "$(grep -c '^kind:' "$dir/kustomized.yaml") objects"
else
  echo "SKIPPED: kubectl kustomize (kubectl is not installed)"
fi

step "the compose topology on loopback"
[[ $("$server" --help) == *--cluster-partitions* ]] ||
  { echo "$server has no cluster mode (--cluster-partitions): rebuild it"; exit 1; }
mkdir "$dir/run" "$dir/logs"
cluster plan "$deploy" "$dir/run" "$server" "$nats"

# healthy SERVICE PID: the service's own healthcheck (rewritten to its port) passes within 60 s
# (the analytics nodes wait up to 30 s for JetStream), while the process runs.
healthy() {
  local service=$1 pid=$2 deadline=$((SECONDS + 60))
  local -a health
  mapfile -t health <"$dir/run/plan/$service.health"
  until "${health[@]}" >/dev/null 2>&1; do
    if ! kill -0 "$pid" 2>/dev/null || ((SECONDS >= deadline)); then
      echo "${service#*-} is not healthy (${health[*]}):"; tail -n 30 "$dir/logs/$service.log"
      return 1
    fi
    sleep 0.2
  done
}
declare -A pid_of address_of metrics_of
for wave in $(ls "$dir/run/plan" | sed -n 's/^\([0-9]*\)-.*\.argv$/\1/p' | sort -nu); do
  started=()
  for file in "$dir/run/plan/$wave"-*.argv; do
    service=$(basename "$file" .argv)
    mapfile -t argv <"$file"
    mapfile -t environment <"${file%.argv}.env"
    env "${environment[@]}" "${argv[@]}" >"$dir/logs/$service.log" 2>&1 &
    pids+=($!)
    pid_of[$service]=$!
    started+=("$service")  # W-NAME: the start wave, then compose's service name
    if [[ ${argv[0]} == "$server" ]]; then
      # The last --listen / --metrics-listen wins, as in the server.
      for ((i = 1; i + 1 < ${#argv[@]}; i++)); do
        [[ ${argv[i]} == --listen ]] && address_of[$service]=${argv[i + 1]}
        [[ ${argv[i]} == --metrics-listen ]] && metrics_of[$service]=${argv[i + 1]}
      done
    fi
  done
  for service in "${started[@]}"; do healthy "$service" "${pid_of[$service]}"; done
  echo "[$((SECONDS - start)) s] healthy: ${started[*]#*-}"
done
nodes=("${!address_of[@]}")
((${#nodes[@]} == 3)) || { echo "expected 3 analytics nodes, the compose file has ${#nodes[@]}"; exit 1; }
servers=$(IFS=,; echo "${address_of[*]}")
# --init-admin: the node that found no user made the admin and its token file in its volume
# (several, if they started together); any one opens every node, and no call goes without one.
token_file=$(find "$dir/run" -name admin.token -print -quit)
[[ -n $token_file ]] || { echo "no node wrote admin.token (--init-admin)"; tail -n 20 "$dir"/logs/*.log; exit 1; }
if "$dashboard" --once --json --server "${address_of[${nodes[0]}]}" --timeout-ms 2000 >/dev/null 2>&1; then
  echo "a call without a token was answered: the nodes do not require tokens"; exit 1
fi
echo "token: $token_file (a call without one is refused)"

step "$events events through all three nodes ($servers)"
"$reporter" generate --events "$events" --seed 16 --output "$dir/events.jsonl" --quiet
summary=$(timeout 90 "$reporter" replay "$dir/events.jsonl" --server "$servers" \
  --token-file "$token_file" --quiet --json) ||
  { echo "replay failed: $summary"; tail -n 20 "$dir"/logs/*.log; exit 1; }
python3 -c 'import json,sys; s=json.loads(sys.argv[1]); assert s["accepted"]==int(sys.argv[2]) and s["failed"]==0, s' \
  "$summary" "$events"
echo "[$((SECONDS - start)) s] replay: $summary"

step "GetMetrics on every node: events_total = $events"
# events_total (window total) of one node's GetMetrics, as dashboard_client --once --json prints it.
events_total() {
  "$dashboard" --once --json --server "$1" --token-file "$token_file" --metrics events_total \
    --timeout-ms 2000 |
    python3 -c 'import json,sys; print(int(json.load(sys.stdin)["metrics"]["events_total"]["total"]))'
}
for service in "${nodes[@]}"; do
  deadline=$((SECONDS + 30))
  until [[ $(events_total "${address_of[$service]}" 2>/dev/null) == "$events" ]]; do
    if ((SECONDS >= deadline)); then
      echo "${service#*-} (${address_of[$service]}): events_total $(events_total "${address_of[$service]}" 2>&1), expected $events"
      tail -n 20 "$dir/logs/$service.log"; exit 1
    fi
    sleep 0.3
  done
  echo "[$((SECONDS - start)) s] ${service#*-}: events_total = $events"
done

step "the partitions are owned between the nodes"
partitions=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["cluster_partitions"])' \
  "$deploy/compose/analytics-cluster.json")
owned_total() {
  local total=0 owned
  for service in "${nodes[@]}"; do
    owned=$(curl -fsS --max-time 2 "http://${metrics_of[$service]}/metrics" |
      sed -n 's/^analytics_cluster_partitions_owned \([0-9.e+]*\)$/\1/p')
    total=$(python3 -c 'import sys; print(int(sum(float(x) for x in sys.argv[1:])))' $total ${owned:-0})
  done
  echo "$total"
}
deadline=$((SECONDS + 30))
until [[ $(owned_total) == "$partitions" ]]; do
  ((SECONDS < deadline)) || { echo "the nodes own $(owned_total) partitions, not $partitions"; exit 1; }
  sleep 0.3
done
echo "$partitions partitions owned"

step "the alerts and the dashboard against the nodes' /metrics"
# AnalyticsClusterPartitionsUnowned compares the nodes' sum with the partition count written in
# its expression (Prometheus has no metric of it): it must be the count the deploy files run.
rule=AnalyticsClusterPartitionsUnowned
alert_partitions=$(sed -n "/alert: $rule\$/,/for:/s/^ *< *\([0-9][0-9]*\)\$/\1/p" \
  "$deploy/prometheus/alerts.yml")
[[ $alert_partitions == "$partitions" ]] ||
  { echo "$rule expects ${alert_partitions:-no} partitions, the cluster has $partitions"; exit 1; }
# Every name used must be exported, the per-partition ones included (a single node has none).
for service in "${nodes[@]}"; do
  curl -fsS --max-time 2 "http://${metrics_of[$service]}/metrics"
done >"$dir/metrics.txt"
python3 "$here/deploy_files.py" check-names "$dir/metrics.txt" "$deploy/prometheus/alerts.yml" \
  "$deploy/grafana/analytics-server.json" >"$dir/names.txt"
echo "$rule expects $partitions partitions; $(wc -l <"$dir/names.txt") metric names, all exported"

step "stopped as compose stops them: the nodes, then NATS, each exits 0 in its grace period"
for wave in $(ls "$dir/run/plan" | sed -n 's/^\([0-9]*\)-.*\.argv$/\1/p' | sort -nur); do
  for file in "$dir/run/plan/$wave"-*.argv; do
    read -r signal grace <"${file%.argv}.stop"
    kill -s "${signal#SIG}" "${pid_of[$(basename "$file" .argv)]}"
  done
  for file in "$dir/run/plan/$wave"-*.argv; do
    service=$(basename "$file" .argv)
    read -r signal grace <"${file%.argv}.stop"
    deadline=$((SECONDS + grace))
    while kill -0 "${pid_of[$service]}" 2>/dev/null; do
      ((SECONDS < deadline)) || { echo "${service#*-} still runs $grace s after $signal"; exit 1; }
      sleep 0.1
    done
    status=0
    wait "${pid_of[$service]}" 2>/dev/null || status=$?
    ((status == 0)) || { echo "${service#*-} exited with $status"; tail -n 20 "$dir/logs/$service.log"; exit 1; }
  done
done
pids=()
echo "PASS ($((SECONDS - start)) s)"
