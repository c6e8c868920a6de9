#!/usr/bin/env bash
# Takes the README's screenshots from the real window: the panel under Xvfb with a private
# gnome-keyring, data seeded through the admin API, views opened with real clicks.
#
# Needs the Debian packages xvfb xauth imagemagick xdotool dbus gnome-keyring
# libsecret-tools, and python3 and curl.
# Usage: scripts/screenshots.sh [path/to/hookpanel]   (default: target/release/hookpanel)
#
# It runs itself three times: here (a throwaway HOME), inside a private D-Bus session (an
# unlocked keyring), inside Xvfb (the panel and the clicks).
set -euo pipefail
[ -z "${TRACE:-}" ] || set -x
here=$(cd "$(dirname "$0")" && pwd)

case "${1:-}" in
--in-dbus)
    echo -n screenshots | gnome-keyring-daemon --unlock --components=secrets >/dev/null
    exec xvfb-run -a -s "-screen 0 1280x800x24" "$here/screenshots.sh" --in-x
    ;;
--in-x)
    ;;
*)
    binary=$(realpath "${1:-$here/../target/release/hookpanel}")
    sandbox=$(mktemp -d)
    trap 'rm -rf "$sandbox"' EXIT
    mkdir -p -m700 "$sandbox/run"
    HOME="$sandbox" XDG_RUNTIME_DIR="$sandbox/run" BINARY="$binary" OUT="$here/../docs" \
        dbus-run-session -- "$here/screenshots.sh" --in-dbus
    echo "screenshots in docs/"
    exit 0
    ;;
esac

# --- inside Xvfb, with the keyring unlocked ---
mkdir -p "$OUT"
python3 "$here/receiver.py" 9000 &
receiver=$!
"$BINARY" >"$HOME/app.log" 2>&1 &
panel=$!
trap 'kill $panel $receiver 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q "admin API listening" "$HOME/app.log" && break; sleep 0.2; done
port=$(sed -n 's/.*local_addr=127.0.0.1:\([0-9]*\).*/\1/p' "$HOME/app.log" | head -1)
hp="http://127.0.0.1:$port/v1/admin"
key=$(secret-tool lookup service hookpanel username local/admin-key)

api() { curl -sf -H "Authorization: Bearer $key" -H "content-type: application/json" "$@" >/dev/null; }
webhook() { api -X POST "$hp/webhooks" -d "{\"name\": \"$1\", \"url\": \"$2\", \"events\": $3, \"owner\": \"$4\", \"rate_limit\": ${5:-null}}"; }
emit() { api -X POST "$hp/events" -d "$1"; }

webhook "ERP sync" "http://127.0.0.1:9000/ok" '["order.created", "order.cancelled", "payment.received"]' team-orders
webhook "Shipping partner" "http://127.0.0.1:9000/broken" '["order.fulfilled", "shipment.delivered"]' logistics 20
# Its secret rotated two hours' grace ago: the detail shows the previous one still signing.
shipping=$(curl -sf -H "Authorization: Bearer $key" "$hp/webhooks" |
    python3 -c 'import json,sys; print([w["id"] for w in json.load(sys.stdin)["items"] if w["name"] == "Shipping partner"][0])')
api -X POST "$hp/webhooks/$shipping/rotate-secret" -d '{"grace_seconds": 7200}'
webhook "Billing" "http://127.0.0.1:9000/flaky" '["payment.received"]' finance
webhook "Test endpoint" "http://127.0.0.1:$port/inbox/demo" '["*"]' me
for n in $(seq 1 12); do
    emit "{\"type\": \"order.created\", \"id\": \"ord_10$n-created\", \"data\": {\"order_id\": \"ord_10$n\", \"total\": \"$n.90\"}}"
    emit "{\"type\": \"order.fulfilled\", \"data\": {\"order_id\": \"ord_10$n\", \"carrier\": \"DHL\"}}"
done
for n in 1 2 3; do emit "{\"type\": \"payment.received\", \"data\": {\"amount\": \"$n.00\"}}"; done
sleep 4
# Keys for the Keys view: an on-call operator who has used theirs, a deployer who has not.
oncall=$(curl -sf -H "Authorization: Bearer $key" -H "content-type: application/json" \
    -X POST "$hp/keys" -d '{"name": "on-call", "role": "operator"}' |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')
api -X POST "$hp/keys" -d '{"name": "ci-deployer", "role": "admin"}'
curl -sf -H "Authorization: Bearer $oncall" -H "content-type: application/json" \
    -X POST "$hp/webhooks/$shipping/recover" -d "{\"since\": \"$(date -u -d '-1 hour' +%Y-%m-%dT%H:%M:%SZ)\"}" >/dev/null

window=$(xdotool search --name '^Hookpanel$' | head -1)
shot() { sleep 1.5; import -window "$window" "$OUT/$1.png"; }
click() { xdotool mousemove --window "$window" "$1" "$2" click 1; }

click 160 158; shot webhooks             # the list, the failing webhook selected: its rate limit, its previous secret
click 880 62; shot new-webhook           # the create dialog
click 476 642; sleep 0.5                # Cancel
click 340 18; sleep 2; click 460 158; sleep 1; shot failed   # failed deliveries, first one inspected
click 303 123; sleep 0.5                # Clear selection
click 197 123; sleep 2; shot resend-all   # "Resend all N matching": the confirmation names N and the webhooks
click 238 18; sleep 2; click 60 63; shot deliveries          # every delivery, the success-rate chart open
click 1028 248; xdotool windowfocus "$window"; xdotool type --delay 40 "ord_107"; sleep 2  # a payload search for one order
click 130 344; sleep 1; shot search      # its first delivery inspected: the order id highlighted in the payload
click 460 18; sleep 2; shot inbox
click 530 18; sleep 2; shot keys         # the admin keys, their roles and last use
click 590 18; sleep 2; shot activity     # the audit log, newest first
click 1235 18; shot profiles             # the profile manager
