#!/usr/bin/env bash
# Installs everything the appliance and its tests need on a fresh Debian machine:
# Debian packages (CJK fonts for the sample generator, unpaper as a benchmark baseline, chromium
# for the browser tests, shellcheck/nftables/samba-common-bin for the firmware_scripts checks,
# nodejs when no node is installed), uv, the
# Python environment in .venv/ (locked), and the native extension (built by maturin via uv).
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(fonts-wqy-zenhei fonts-arphic-uming unpaper chromium postgresql shellcheck nftables samba-common-bin)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# node runs the UI's pure-JS unit tests; any node >= 18 will do (Debian's, if none is installed).
command -v node >/dev/null 2>&1 || missing+=(nodejs)
if ((${#missing[@]})); then
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  echo "bootstrap: installing Debian packages: ${missing[*]}"
  "${sudo_cmd[@]}" apt-get update -q
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "bootstrap: the Rust toolchain (cargo) is missing; install it with rustup first" >&2
  exit 1
fi

# uv is run as a module of the machine's Python 3.11, so no PATH or shim set-up is needed.
if ! python3 -m uv --version >/dev/null 2>&1; then
  echo "bootstrap: installing uv"
  python3 -m pip install --quiet --disable-pip-version-check "uv>=0.5"
fi
if ! cargo clippy --version >/dev/null 2>&1 || ! cargo fmt --version >/dev/null 2>&1; then
  echo "bootstrap: adding the clippy and rustfmt components"
  rustup component add clippy rustfmt
fi

# --locked: the environment is exactly uv.lock. The native extension is rebuilt whenever a Rust
# source changes (tool.uv.cache-keys in pyproject.toml).
python3 -m uv sync --locked --python python3.11
.venv/bin/python - <<'PY'
import importlib.metadata as m, sys
try:
    m.version("opencv-python")
except m.PackageNotFoundError:
    sys.exit(0)
sys.exit("bootstrap: opencv-python (the GUI build) is installed; only opencv-python-headless may provide cv2")
PY
