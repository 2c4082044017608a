#!/usr/bin/env bash
# capture.sh - record real TCP bulk traffic for the pipeline's bundled traces.
#
# iperf3 between two private network namespaces joined by one veth pair, captured with tcpdump on
# the receiver (server) side.  All traffic stays inside the namespaces (10.99.0.0/24 only; no route
# leaves them).  The modeled host is the server namespace: 10.99.0.2 (or 10.99.0.11, .12, ... with
# --servers N > 1, one address per modeled guest) receives; the client 10.99.0.1 sends.
#
# Run as root.  Idempotent: stale namespaces from an earlier run are removed first, and a trap
# removes them (and the veth pair, and any tcpdump/iperf3 it started) on exit or Ctrl-C.  The pcap
# is written to a temporary name and renamed only when the capture succeeded.
#
# Recipe: ../shared/traces/MANIFEST.md, "Capture recipe".
set -euo pipefail

usage() {
    cat <<'EOF'
usage: sudo traces/capture.sh [options]
  --out FILE         output pcap (default traces/iperf3_mtu<MTU>_snap<SNAP>.pcap)
  --mtu N            MTU of both veth ends (default 1500; e.g. 552 for SOSP 2003's small-MTU case)
  --duration S       iperf3 run time in whole seconds (default 1)
  --bytes N          send N bytes per stream instead of running --duration seconds (iperf3 -n,
                     e.g. 8M); with --rate 0 this is an unpaced bulk transfer (like ttcp/netperf)
  --rate R           iperf3 target rate per stream, iperf3 -b syntax (default 100M; 0 = unlimited)
  --parallel P       parallel TCP streams per server address (iperf3 -P, default 1)
  --servers N        server addresses in the server namespace (default 1 = 10.99.0.2;
                     N > 1 = 10.99.0.11 .. 10.99.0.(10+N), one concurrent client per address)
  --offloads on|off  TSO/GSO/GRO on both veth ends (default off: MSS-sized frames; on: super-segments)
  --snaplen N        tcpdump snaplen in bytes (default 96)
  --json-dir DIR     where to keep iperf3's client JSON (default: next to --out)
  -h, --help         this text
Needs: ip (iproute2), ethtool, tcpdump, iperf3.
EOF
}

MTU=1500
DURATION=1
BYTES=""
RATE=100M
PARALLEL=1
SERVERS=1
OFFLOADS=off
SNAPLEN=96
OUT=""
JSON_DIR=""
ORIG_ARGS=("$@")

while [[ $# -gt 0 ]]; do
    case "$1" in
        --out) OUT=$2; shift 2 ;;
        --mtu) MTU=$2; shift 2 ;;
        --duration) DURATION=$2; shift 2 ;;
        --bytes) BYTES=$2; shift 2 ;;
        --rate) RATE=$2; shift 2 ;;
        --parallel) PARALLEL=$2; shift 2 ;;
        --servers) SERVERS=$2; shift 2 ;;
        --offloads) OFFLOADS=$2; shift 2 ;;
        --snaplen) SNAPLEN=$2; shift 2 ;;
        --json-dir) JSON_DIR=$2; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "capture.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
done

die() { echo "capture.sh: $*" >&2; exit 2; }
is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }
is_uint "$MTU" && (( MTU >= 68 && MTU <= 65535 )) || die "--mtu must be an integer in 68..65535, got '$MTU'"
is_uint "$DURATION" && (( DURATION >= 1 )) || die "--duration must be a whole number of seconds >= 1, got '$DURATION'"
is_uint "$PARALLEL" && (( PARALLEL >= 1 && PARALLEL <= 128 )) || die "--parallel must be in 1..128, got '$PARALLEL'"
is_uint "$SERVERS" && (( SERVERS >= 1 && SERVERS <= 50 )) || die "--servers must be in 1..50, got '$SERVERS'"
is_uint "$SNAPLEN" && (( SNAPLEN >= 64 )) || die "--snaplen must be an integer >= 64, got '$SNAPLEN'"
[[ -z $BYTES || $BYTES =~ ^[0-9]+[KMG]?$ ]] || die "--bytes must look like 8M or 500K, got '$BYTES'"
[[ $RATE =~ ^[0-9]+(\.[0-9]+)?[KMGkmg]?$ ]] || die "--rate must look like 100M, 1G or 0, got '$RATE'"
[[ $OFFLOADS == on || $OFFLOADS == off ]] || die "--offloads must be 'on' or 'off', got '$OFFLOADS'"

[[ $(id -u) -eq 0 ]] || die "must run as root (network namespaces, veth, tcpdump)"
missing=()
for tool in ip ethtool tcpdump iperf3; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if (( ${#missing[@]} )); then
    die "missing tools: ${missing[*]}; install with: apt-get update && apt-get install -y --no-install-recommends tcpdump iperf3 ethtool iproute2"
fi

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [[ -z $OUT ]]; then
    suffix=""
    (( SERVERS > 1 )) && suffix="_${SERVERS}guests"
    [[ $OFFLOADS == on ]] && suffix="${suffix}_tso"
    OUT="$HERE/iperf3_mtu${MTU}${suffix}_snap${SNAPLEN}.pcap"
fi
OUT_DIR=$(cd "$(dirname "$OUT")" && pwd) || die "output directory of '$OUT' does not exist"
OUT="$OUT_DIR/$(basename "$OUT")"
[[ -z $JSON_DIR ]] && JSON_DIR=$OUT_DIR
STEM=$(basename "$OUT" .pcap)

# Fixed names so that a re-run (or a run after a crash) finds and removes leftovers.
NS_C=plcap_client
NS_S=plcap_server
VETH_C=plcap_veth_c
VETH_S=plcap_veth_s
CLIENT_ADDR=10.99.0.1
if (( SERVERS == 1 )); then
    SERVER_ADDRS=(10.99.0.2)
else
    SERVER_ADDRS=()
    for ((i = 1; i <= SERVERS; i++)); do SERVER_ADDRS+=("10.99.0.$((10 + i))"); done
fi
BASE_PORT=5201

WORK=$(mktemp -d "${TMPDIR:-/tmp}/plcap.XXXXXX")
PIDS=()
TMP_PCAP=""

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    ip netns del "$NS_C" 2>/dev/null || true
    ip netns del "$NS_S" 2>/dev/null || true   # deleting a namespace also deletes its veth end
    ip link del "$VETH_C" 2>/dev/null || true
    rm -rf "$WORK"
    if [[ -n $TMP_PCAP ]]; then rm -f "$TMP_PCAP"; fi   # never leave a half-written capture
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Remove leftovers of an earlier run, then build the two namespaces and the veth pair.
cleanup
WORK=$(mktemp -d "${TMPDIR:-/tmp}/plcap.XXXXXX")
ip netns add "$NS_C"
ip netns add "$NS_S"
ip link add "$VETH_C" type veth peer name "$VETH_S"
ip link set "$VETH_C" netns "$NS_C"
ip link set "$VETH_S" netns "$NS_S"
for ns in "$NS_C" "$NS_S"; do
    # IPv4 only: no IPv6 router/neighbour solicitations in the capture.
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    ip -n "$ns" link set lo up
done
ip -n "$NS_C" addr add "$CLIENT_ADDR/24" dev "$VETH_C"
for a in "${SERVER_ADDRS[@]}"; do ip -n "$NS_S" addr add "$a/24" dev "$VETH_S"; done
ip -n "$NS_C" link set "$VETH_C" mtu "$MTU" up
ip -n "$NS_S" link set "$VETH_S" mtu "$MTU" up
ip netns exec "$NS_C" ethtool -K "$VETH_C" tso "$OFFLOADS" gso "$OFFLOADS" gro "$OFFLOADS"
ip netns exec "$NS_S" ethtool -K "$VETH_S" tso "$OFFLOADS" gso "$OFFLOADS" gro "$OFFLOADS"

# Capture on the receiver; -Z root because Debian's tcpdump otherwise drops to user 'tcpdump'.
TMP_PCAP="$OUT_DIR/.${STEM}.pcap.partial"
rm -f "$TMP_PCAP"
ip netns exec "$NS_S" tcpdump -i "$VETH_S" -s "$SNAPLEN" -Z root -n -w "$TMP_PCAP" 2>"$WORK/tcpdump.err" &
TCPDUMP_PID=$!
PIDS+=("$TCPDUMP_PID")

# One one-shot iperf3 server per address (own port each), then all clients at once.
for i in "${!SERVER_ADDRS[@]}"; do
    ip netns exec "$NS_S" iperf3 -s -1 -B "${SERVER_ADDRS[$i]}" -p $((BASE_PORT + i)) >"$WORK/server$i.log" 2>&1 &
    PIDS+=("$!")
done
sleep 1   # tcpdump and the servers are listening
if [[ -n $BYTES ]]; then AMOUNT=(-n "$BYTES"); else AMOUNT=(-t "$DURATION"); fi
CLIENT_PIDS=()
for i in "${!SERVER_ADDRS[@]}"; do
    ip netns exec "$NS_C" iperf3 -c "${SERVER_ADDRS[$i]}" -B "$CLIENT_ADDR" -p $((BASE_PORT + i)) \
        "${AMOUNT[@]}" -b "$RATE" -P "$PARALLEL" -J >"$WORK/client$i.json" 2>"$WORK/client$i.err" &
    CLIENT_PIDS+=("$!")
done
status=0
for pid in "${CLIENT_PIDS[@]}"; do wait "$pid" || status=1; done
sleep 1   # let the last ACKs and FINs reach the capture
kill -INT "$TCPDUMP_PID"
wait "$TCPDUMP_PID" || true
PIDS=()
if (( status != 0 )); then
    for i in "${!SERVER_ADDRS[@]}"; do cat "$WORK/client$i.err" "$WORK/client$i.json" >&2 || true; done
    rm -f "$TMP_PCAP"
    die "iperf3 client failed (see above)"
fi

# Keep iperf3's client JSON (one file per server address) next to the capture.
mkdir -p "$JSON_DIR"
for i in "${!SERVER_ADDRS[@]}"; do
    if (( SERVERS == 1 )); then dst="$JSON_DIR/$STEM.client.json"; else dst="$JSON_DIR/$STEM.client$((i + 1)).json"; fi
    cp "$WORK/client$i.json" "$dst"
done
mv -f "$TMP_PCAP" "$OUT"
TMP_PCAP=""

echo "capture.sh: wrote $OUT ($(stat -c %s "$OUT") bytes)"
echo "capture.sh: command: $0 ${ORIG_ARGS[*]}"
echo "capture.sh: date $(date -u +%Y-%m-%dT%H:%M:%SZ), kernel $(uname -r), $(iperf3 --version | head -1), $(tcpdump --version 2>&1 | head -1)"
echo "capture.sh: tcpdump: $(grep -E 'packets (captured|received|dropped)' "$WORK/tcpdump.err" | tr '\n' ';')"
