#!/usr/bin/env bash
# Install Genesis Orchestrator as a systemd service. Idempotent: run it again after every
# `cargo build --release` to upgrade the binary; configuration the operator has edited is never
# overwritten (a differing new default is written beside it as *.new).
#
#   sudo deploy/install.sh [--binary PATH] [--instance NAME:PORT]... [--force-config] [--destdir DIR]
#
#   --binary PATH         binary to install (default: target/release/genesis of this checkout)
#   --instance NAME:PORT  also prepare genesis@NAME: /etc/genesis/NAME.toml listening on 127.0.0.1:PORT
#                         and an empty /etc/genesis/NAME.env (repeatable; existing files are kept)
#   --force-config        overwrite /etc/genesis/genesis.toml and agents.toml (old ones kept as *.bak)
#   --destdir DIR         stage everything under DIR instead of / (packaging, tests): no user is
#                         created, no ownership is set, systemd is not reloaded
#
# What it does: creates the system user/group `genesis`; installs /usr/local/bin/genesis;
# /etc/genesis (root:genesis 0750) with genesis.toml, agents.toml and genesis.env (0640); the units
# genesis.service and genesis@.service in /etc/systemd/system; the docs in /usr/local/share/doc/genesis;
# then `systemctl daemon-reload`. It neither enables nor starts anything. Uninstall: deploy/README.md.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/.." && pwd)"

binary="$repo/target/release/genesis"
destdir=""
force_config=0
instances=()

die() { echo "install.sh: $*" >&2; exit 1; }
say() { echo "==> $*"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --binary) [ $# -ge 2 ] || die "--binary needs a path"; binary="$2"; shift 2 ;;
    --instance) [ $# -ge 2 ] || die "--instance needs NAME:PORT"; instances+=("$2"); shift 2 ;;
    --force-config) force_config=1; shift ;;
    --destdir) [ $# -ge 2 ] || die "--destdir needs a directory"; destdir="${2%/}"; shift 2 ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done

staged=0
[ -n "$destdir" ] && staged=1
if [ "$staged" -eq 0 ] && [ "$(id -u)" -ne 0 ]; then
  die "run as root (sudo $0), or use --destdir DIR to stage the files"
fi

if [ ! -f "$binary" ] || [ ! -x "$binary" ]; then
  die "no executable at $binary: build it first (cargo build --release) or pass --binary PATH"
fi
for f in "$repo/config/genesis.toml" "$repo/config/agents.toml" "$here/genesis.env.example" \
         "$here/systemd/genesis.service" "$here/systemd/genesis@.service"; do
  [ -f "$f" ] || die "missing $f (run from a complete checkout)"
done

# Validate instance specs before changing anything.
for spec in "${instances[@]+"${instances[@]}"}"; do
  name="${spec%%:*}"; port="${spec#*:}"
  [[ "$spec" == *:* ]] || die "--instance $spec: expected NAME:PORT, e.g. node-2:9465"
  [[ "$name" =~ ^[A-Za-z0-9._-]{1,64}$ ]] || die "--instance $spec: the name must be 1-64 letters, digits, '.', '_' or '-' (it is the node id)"
  [ "$name" != "genesis" ] || die "--instance $spec: 'genesis' would clash with genesis.toml/genesis.env"
  if ! [[ "$port" =~ ^[0-9]{1,5}$ ]] || [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; then
    die "--instance $spec: bad port '$port'"
  fi
done

etc="$destdir/etc/genesis"
bindir="$destdir/usr/local/bin"
unitdir="$destdir/etc/systemd/system"
docdir="$destdir/usr/local/share/doc/genesis"
statedir="$destdir/var/lib/genesis"

# install(1) with ownership only for a real install.
put() { # put MODE OWNER:GROUP SRC DEST
  local mode="$1" owner="$2" src="$3" dest="$4"
  if [ "$staged" -eq 1 ]; then install -m "$mode" "$src" "$dest"
  else install -m "$mode" -o "${owner%%:*}" -g "${owner##*:}" "$src" "$dest"; fi
}
mkdir_owned() { # mkdir_owned MODE OWNER:GROUP DIR
  local mode="$1" owner="$2" dir="$3"
  if [ "$staged" -eq 1 ]; then install -d -m "$mode" "$dir"
  else install -d -m "$mode" -o "${owner%%:*}" -g "${owner##*:}" "$dir"; fi
}

# A config file: install if absent; if the operator's copy differs from the shipped one, keep it and
# write the shipped one beside it as NAME.new (or overwrite with --force-config, keeping NAME.bak).
put_config() { # put_config SRC DEST
  local src="$1" dest="$2"
  if [ ! -e "$dest" ]; then
    put 0640 root:genesis "$src" "$dest"; say "installed $dest"
  elif cmp -s "$src" "$dest"; then
    rm -f "$dest.new"; say "unchanged $dest"
  elif [ "$force_config" -eq 1 ]; then
    cp -p "$dest" "$dest.bak"; put 0640 root:genesis "$src" "$dest"; rm -f "$dest.new"
    say "replaced $dest (previous one in $dest.bak)"
  else
    put 0640 root:genesis "$src" "$dest.new"
    say "kept your $dest; the shipped version differs and is in $dest.new (compare: diff -u $dest $dest.new)"
  fi
}

# 1. User and group.
if [ "$staged" -eq 1 ]; then
  say "staged install in $destdir: not creating the genesis user"
else
  if ! getent group genesis >/dev/null; then groupadd --system genesis; say "created group genesis"; fi
  if ! getent passwd genesis >/dev/null; then
    useradd --system --gid genesis --home-dir /var/lib/genesis --no-create-home \
      --shell /usr/sbin/nologin --comment "Genesis Orchestrator" genesis
    say "created user genesis"
  else
    say "user genesis exists"
  fi
fi

# 2. Binary: copy beside the target, then rename over it (works while the old one is running).
mkdir -p "$bindir"
put 0755 root:root "$binary" "$bindir/.genesis.new"
mv -f "$bindir/.genesis.new" "$bindir/genesis"
say "installed $bindir/genesis ($("$bindir/genesis" --version 2>/dev/null || echo 'version unknown'))"

# 3. Configuration.
mkdir_owned 0750 root:genesis "$etc"
put_config "$repo/config/genesis.toml" "$etc/genesis.toml"
put_config "$repo/config/agents.toml" "$etc/agents.toml"
if [ ! -e "$etc/genesis.env" ]; then
  put 0640 root:genesis "$here/genesis.env.example" "$etc/genesis.env"
  say "installed $etc/genesis.env (template: every line commented out)"
else
  say "kept $etc/genesis.env"
fi
# Secrets may live in these: make sure the modes are right even on files from an older install.
if [ "$staged" -eq 0 ]; then
  chown root:genesis "$etc" "$etc"/*.toml "$etc"/*.env 2>/dev/null || true
  chmod 0750 "$etc"; chmod 0640 "$etc"/*.toml "$etc"/*.env 2>/dev/null || true
fi

# 4. Instances of genesis@.service: a config that differs from genesis.toml in [http] addr only.
for spec in "${instances[@]+"${instances[@]}"}"; do
  name="${spec%%:*}"; port="${spec#*:}"
  conf="$etc/$name.toml"
  if [ -e "$conf" ]; then
    say "kept $conf (instance $name)"
  else
    tmp="$(mktemp)"
    awk -v addr="127.0.0.1:$port" -v name="$name" '
      BEGIN { print "# genesis@" name ": a copy of genesis.toml listening on " addr " (written by install.sh)." }
      /^[[:space:]]*\[/ { in_http = ($0 ~ /^[[:space:]]*\[http\][[:space:]]*(#.*)?$/); if (in_http) seen = 1 }
      in_http && /^[[:space:]]*addr[[:space:]]*=/ { print "addr = \"" addr "\""; done = 1; next }
      { print }
      END { if (!seen) { print ""; print "[http]"; print "addr = \"" addr "\"" }
            else if (!done) { print "# [http] had no addr key: add addr = \"" addr "\" under [http]" > "/dev/stderr"; exit 3 } }
    ' "$etc/genesis.toml" > "$tmp" || { rm -f "$tmp"; die "could not derive $conf from $etc/genesis.toml"; }
    put 0640 root:genesis "$tmp" "$conf"; rm -f "$tmp"
    say "installed $conf (HTTP on 127.0.0.1:$port)"
  fi
  if [ ! -e "$etc/$name.env" ]; then
    tmp="$(mktemp)"
    printf '# Environment of genesis@%s, read after /etc/genesis/genesis.env (these lines win).\n' "$name" > "$tmp"
    put 0640 root:genesis "$tmp" "$etc/$name.env"; rm -f "$tmp"
    say "installed $etc/$name.env"
  fi
done

# 5. Units and docs.
mkdir -p "$unitdir" "$docdir"
put 0644 root:root "$here/systemd/genesis.service" "$unitdir/genesis.service"
put 0644 root:root "$here/systemd/genesis@.service" "$unitdir/genesis@.service"
say "installed $unitdir/genesis.service and genesis@.service"
for doc in OPERATIONS.md semantics.md; do
  if [ -f "$repo/docs/$doc" ]; then put 0644 root:root "$repo/docs/$doc" "$docdir/$doc"; fi
done
# On a real host systemd creates /var/lib/genesis (StateDirectory=), owned by genesis.
if [ "$staged" -eq 1 ]; then mkdir -p "$statedir"; fi

# 6. Reload systemd, check the configuration as the service user.
if [ "$staged" -eq 0 ]; then
  if [ -d /run/systemd/system ]; then
    systemctl daemon-reload; say "systemctl daemon-reload done"
  else
    say "systemd is not running here: skipped daemon-reload"
  fi
  if command -v runuser >/dev/null; then
    for conf in "$etc/genesis.toml" "${instances[@]+"${instances[@]/#/$etc/}"}"; do
      conf="${conf%%:*}"; [[ "$conf" == *.toml ]] || conf="$conf.toml"
      if ! runuser -u genesis -- "$bindir/genesis" --config "$conf" config check; then
        echo "WARNING: genesis config check failed for $conf (fix it before starting)" >&2
      fi
    done
  fi
fi

unit_list="genesis"
for spec in "${instances[@]+"${instances[@]}"}"; do unit_list="$unit_list genesis@${spec%%:*}"; done
cat <<EOF

Installed. Next steps:
  1. Edit $etc/genesis.env: set GENESIS_REDIS_URL (without it the node runs on the in-process bus and
     keeps nothing) and GENESIS_NODE_ID; webhooks and OTEL_EXPORTER_OTLP_ENDPOINT as needed.
  2. Review $etc/genesis.toml and $etc/agents.toml, then: genesis --config $etc/genesis.toml config check
  3. Start:   systemctl enable --now ${unit_list}
     (one node per host: genesis; several: genesis@NAME with deploy/install.sh --instance NAME:PORT)
  4. Check:   systemctl status genesis; journalctl -u genesis -f; curl -s 127.0.0.1:9464/readyz
Upgrade: cargo build --release && sudo deploy/install.sh && sudo systemctl restart ${unit_list}
Uninstall: see deploy/README.md.
EOF
