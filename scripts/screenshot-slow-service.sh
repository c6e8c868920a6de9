#!/usr/bin/env bash
# Takes docs/slow-service.png: the panel managing a remote `hookpanel serve` through a
# proxy that holds every request 3 s (scripts/slow_proxy.py), so the status bar says the
# service is slow. Same packages as scripts/screenshots.sh.
# Usage: scripts/screenshot-slow-service.sh [path/to/hookpanel]   (default: target/release/hookpanel)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
case "${1:-}" in
--in-dbus)
    echo -n screenshots | gnome-keyring-daemon --unlock --components=secrets >/dev/null
    exec xvfb-run -a -s "-screen 0 1280x800x24" "$here/screenshot-slow-service.sh" --in-x
    ;;
--in-x) ;;
*)
    binary=$(realpath "${1:-$here/../target/release/hookpanel}")
    sandbox=$(mktemp -d)
    trap 'rm -rf "$sandbox"' EXIT
    mkdir -p -m700 "$sandbox/run"
    HOME="$sandbox" XDG_RUNTIME_DIR="$sandbox/run" BINARY="$binary" OUT="$here/../docs" \
        dbus-run-session -- "$here/screenshot-slow-service.sh" --in-dbus
    echo "screenshot in docs/slow-service.png"
    exit 0
    ;;
esac

# --- inside Xvfb, with the keyring unlocked ---
export HOOKPANEL_ENCRYPTION_KEY=$("$BINARY" keygen)
HOOKPANEL_ADMIN_KEY=hpk_slow_demo_key_0123456789abcdefghij "$BINARY" serve --listen 127.0.0.1:8791 \
    --db "sqlite://$HOME/remote.db" >/dev/null 2>&1 &
service=$!
python3 "$here/slow_proxy.py" 8792 http://127.0.0.1:8791 &
proxy=$!
"$BINARY" >"$HOME/app.log" 2>&1 &
panel=$!
trap 'kill $panel $proxy $service 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q "admin API listening" "$HOME/app.log" && break; sleep 0.2; done
sleep 3
window=$(xdotool search --name '^Hookpanel$' | head -1)
xdotool windowfocus --sync "$window"
click() { xdotool mousemove --window "$window" "$1" "$2" click 1; sleep 0.5; }
type() { xdotool type --delay 120 "$1"; }
click 1235 18; sleep 2                  # Profiles…
click 585 397; type staging
click 585 427; type http://127.0.0.1:8792
click 585 457; type hpk_slow_demo_key_0123456789abcdefghij
click 418 510; sleep 14                 # Save and connect: each request takes 3 s
click 238 18; sleep 12                  # Deliveries
import -window "$window" "$OUT/slow-service.png"
