#!/usr/bin/env bash
# Validate the deployment files (CI calls this; it builds nothing and starts nothing):
#   * promtool: check config, check rules, the rule unit tests, and every PromQL query of the Grafana
#     dashboard (parsed as recording rules)
#   * systemd-analyze: verify both units (ExecStart pointed at /bin/true in a temporary copy, since the
#     binary is not installed), and `security --offline=yes` with exposure at most 4.9 ("OK")
#   * bash -n and, when installed, shellcheck on the scripts
#   * docker compose config, when Docker Compose v2 is installed
# A check whose tool is missing is skipped with a message. With --install-tools, missing tools are
# installed first from Debian packages (prometheus for promtool, systemd, shellcheck).
# Exit status: non-zero if any check failed. Last line: "deploy: N passed, N failed, N skipped".
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

passed=0; failed=0; skipped=0
ok()   { passed=$((passed + 1)); echo "ok    $*"; }
bad()  { failed=$((failed + 1)); echo "FAIL  $*"; }
skip() { skipped=$((skipped + 1)); echo "skip  $*"; }
have() { command -v "$1" >/dev/null 2>&1; }
indent() { while IFS= read -r line; do echo "      $line"; done; }
run() { # run DESCRIPTION COMMAND...: pass if it exits 0, else fail and show its output
  local desc="$1" out; shift
  if out="$("$@" 2>&1)"; then ok "$desc"; else bad "$desc"; indent <<<"$out"; fi
}

if [ "${1:-}" = "--install-tools" ]; then
  pkgs=()
  have promtool || pkgs+=(prometheus)
  have systemd-analyze || pkgs+=(systemd)
  have shellcheck || pkgs+=(shellcheck)
  if [ ${#pkgs[@]} -gt 0 ]; then
    echo "== installing ${pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null \
      || echo "could not install ${pkgs[*]}: the checks that need them are skipped"
  fi
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# --- Prometheus -------------------------------------------------------------------------------------
if have promtool; then
  run "promtool check config deploy/prometheus/prometheus.yml" promtool check config deploy/prometheus/prometheus.yml
  run "promtool check rules deploy/prometheus/alerts.yml" promtool check rules deploy/prometheus/alerts.yml
  run "promtool test rules deploy/prometheus/alerts_test.yml" promtool test rules deploy/prometheus/alerts_test.yml
else
  skip "promtool not found (apt-get install prometheus): Prometheus config and rules not checked"
fi

# --- Grafana dashboard: valid JSON, and every query parses as PromQL --------------------------------
if have python3; then
  if python3 - deploy/grafana/dashboards/genesis.json "$tmp/dashboard_rules.yml" <<'EOF'
import json, sys
dash = json.load(open(sys.argv[1]))
exprs = []
def walk(panels):
    for p in panels:
        walk(p.get("panels", []))
        for t in p.get("targets", []):
            if t.get("expr"):
                exprs.append((p.get("title", "?"), t["expr"]))
walk(dash["panels"])
ids = [p["id"] for p in dash["panels"]]
assert len(ids) == len(set(ids)), "duplicate panel ids"
assert dash.get("uid"), "dashboard has no uid"
subst = {"$__rate_interval": "5m", "$__interval": "1m", "$instance": ".*", "$agent": ".*", "$topic": ".*"}
with open(sys.argv[2], "w") as f:
    f.write("groups:\n  - name: dashboard\n    rules:\n")
    for i, (title, e) in enumerate(exprs):
        for k, v in subst.items():
            e = e.replace(k, v)
        assert "$" not in e, f"unknown variable in panel {title!r}: {e}"
        f.write(f"      - record: dashboard:q{i}\n        expr: {json.dumps(e)}\n")
print(f"      {len(exprs)} queries in {len(dash['panels'])} panels")
EOF
  then
    ok "dashboard JSON deploy/grafana/dashboards/genesis.json"
    if have promtool; then
      run "dashboard queries parse (promtool)" promtool check rules "$tmp/dashboard_rules.yml"
    else
      skip "promtool not found: dashboard queries not parsed"
    fi
  else
    bad "dashboard JSON deploy/grafana/dashboards/genesis.json"
  fi
else
  skip "python3 not found: dashboard not checked"
fi

# --- systemd units ----------------------------------------------------------------------------------
if have systemd-analyze; then
  units="$tmp/units"; mkdir -p "$units"
  for f in deploy/systemd/genesis.service deploy/systemd/genesis@.service; do
    sed 's#^ExecStart=/usr/local/bin/genesis #ExecStart=/bin/true #' "$f" > "$units/$(basename "$f")"
  done
  ln -s genesis@.service "$units/genesis@node-2.service"
  for u in genesis.service genesis@node-2.service; do
    out="$(systemd-analyze verify --man=no "$units/$u" 2>&1)"; rc=$?
    # Lines about other units of this machine are not ours to fix; any line about ours is a failure.
    if [ $rc -eq 0 ] && ! grep -q genesis <<<"$out"; then ok "systemd-analyze verify $u"
    else bad "systemd-analyze verify $u"; indent <<<"$out"; fi
  done
  if systemd-analyze security --help 2>/dev/null | grep -q -- '--offline'; then
    cp deploy/systemd/genesis@.service "$tmp/genesis@node-2.service"
    for u in deploy/systemd/genesis.service "$tmp/genesis@node-2.service"; do
      score="$(systemd-analyze security --offline=yes --no-pager "$u" 2>/dev/null | grep -o 'exposure level for .*' | sed 's/^exposure level for [^:]*: //')"
      run "systemd-analyze security --offline=yes --threshold=49 $(basename "$u") (exposure ${score:-?})" \
        systemd-analyze security --offline=yes --threshold=49 --no-pager "$u"
    done
  else
    skip "systemd-analyze security --offline needs systemd >= 252: exposure not measured"
  fi
else
  skip "systemd-analyze not found (apt-get install systemd): units not verified"
fi

# --- scripts ----------------------------------------------------------------------------------------
for s in deploy/install.sh deploy/check.sh; do
  run "bash -n $s" bash -n "$s"
done
if have shellcheck; then
  run "shellcheck deploy/install.sh deploy/check.sh" shellcheck deploy/install.sh deploy/check.sh
else
  skip "shellcheck not found: scripts only syntax-checked"
fi

# --- compose ----------------------------------------------------------------------------------------
if have docker && docker compose version >/dev/null 2>&1; then
  run "docker compose config" docker compose -f deploy/compose/docker-compose.yml --profile app config --quiet
else
  skip "Docker Compose v2 not found: deploy/compose/docker-compose.yml not checked"
fi

echo "deploy: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
