# shellcheck shell=bash
# The set-up every entry point shares (scripts/demo, scripts/test, scripts/bench, .ci/run): installs
# what a fresh Debian/Ubuntu machine lacks, idempotently, and returns at once when everything is there.
# Sourced, not run:
#
#   . "$ROOT/scripts/lib/setup.sh"
#   setup broker python          # any of: rust lint broker python protoc font
#
# Parts:
#   rust     cargo must be there (install Rust with rustup: https://rustup.rs); nothing is installed
#   lint     rustfmt and clippy (rustup component add, when rustup manages the toolchain)
#   broker   what scripts/pulsar-broker runs: Java 17+, Maven, curl, openssl, flock, python3
#   python   the project's virtual environment <repo>/.venv with the pinned packages of
#            scripts/lib/requirements.txt (the official client pulsar-client, lz4, zstandard),
#            Google's libsnappy (libsnappy1v5, read by the compression interoperability test);
#            exports PULSAR_TEST_PYTHON=<repo>/.venv/bin/python, the interpreter the tests and the
#            benchmark harness run
#   protoc   the protobuf compiler (protobuf-compiler), for the benchmarks' pulsar-rs comparison
#   font     a TrueType font for the benchmark charts (fonts-dejavu-core)
#
# System packages come from apt-get (through sudo when not root). The virtual environment is
# (re)built only when it is missing, broken, or older than requirements.txt; SETUP_PYTHON names the
# interpreter it is made from (default python3).

SETUP_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SETUP_VENV=$SETUP_ROOT/.venv
SETUP_REQUIREMENTS=$SETUP_ROOT/scripts/lib/requirements.txt

setup_say() { echo "setup: $*" >&2; }
setup_die() { echo "setup: $*" >&2; exit 1; }

# setup_apt PACKAGE... : apt-get install (one apt-get update per shell).
setup_apt() {
  command -v apt-get >/dev/null ||
    setup_die "missing: $* (no apt-get on this machine: install them by hand)"
  local sudo=()
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || setup_die "missing: $* (not root and no sudo: install them by hand)"
    sudo=(sudo)
  fi
  setup_say "apt-get install $*"
  if [ -z "${SETUP_APT_UPDATED:-}" ]; then
    "${sudo[@]}" apt-get update -q >&2
    SETUP_APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends "$@" >&2
}

setup_java_major() { java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1; }

# setup_have_lib SONAME : whether the dynamic loader finds SONAME.
setup_have_lib() {
  local ldconfig
  ldconfig=$(command -v ldconfig || echo /sbin/ldconfig)
  "$ldconfig" -p 2>/dev/null | grep -q "[[:space:]]$1[[:space:]]"
}

setup_rust() {
  command -v cargo >/dev/null || setup_die "cargo is missing: install Rust with rustup (https://rustup.rs)"
}

setup_lint() {
  setup_rust
  if command -v rustup >/dev/null; then
    cargo fmt --version >/dev/null 2>&1 || rustup component add rustfmt >&2
    cargo clippy --version >/dev/null 2>&1 || rustup component add clippy >&2
  fi
  cargo fmt --version >/dev/null 2>&1 || setup_die "rustfmt is missing"
  cargo clippy --version >/dev/null 2>&1 || setup_die "clippy is missing"
}

setup_broker() {
  local missing=() major
  major=$(setup_java_major 2>/dev/null || true)
  if ! command -v java >/dev/null || [ "${major:-0}" -lt 17 ]; then missing+=(openjdk-17-jdk-headless); fi
  command -v mvn >/dev/null || missing+=(maven)
  command -v curl >/dev/null || missing+=(curl ca-certificates)
  command -v openssl >/dev/null || missing+=(openssl)
  command -v flock >/dev/null || missing+=(util-linux)
  command -v python3 >/dev/null || missing+=(python3)
  if [ ${#missing[@]} -gt 0 ]; then
    setup_apt "${missing[@]}"
    major=$(setup_java_major)
    [ "${major:-0}" -ge 17 ] ||
      setup_die "java on PATH is version ${major:-unknown}; the broker needs 17+ (set JAVA or PATH)"
  fi
}

# The stamp: what the environment was built from (requirements and base interpreter).
setup_venv_stamp() {
  local base=$1
  { sha256sum "$SETUP_REQUIREMENTS" | cut -d' ' -f1; "$base" -c 'import sys; print(sys.version)'; } 2>/dev/null
}

setup_python() {
  setup_have_lib libsnappy.so.1 || setup_apt libsnappy1v5
  local base=${SETUP_PYTHON:-python3}
  command -v "$base" >/dev/null || setup_apt python3 python3-venv
  local py=$SETUP_VENV/bin/python stamp
  stamp=$(setup_venv_stamp "$base")
  if [ -x "$py" ] && [ "$(cat "$SETUP_VENV/.setup-stamp" 2>/dev/null)" = "$stamp" ] &&
    "$py" -c '' 2>/dev/null; then
    export PULSAR_TEST_PYTHON=$py
    return 0
  fi
  # One builder at a time (several entry points may start together).
  mkdir -p "$SETUP_ROOT/target"
  local lock
  exec {lock}>"$SETUP_ROOT/target/.venv-setup.lock"
  command -v flock >/dev/null && flock "$lock"
  if ! { [ -x "$py" ] && [ "$(cat "$SETUP_VENV/.setup-stamp" 2>/dev/null)" = "$stamp" ]; }; then
    setup_say "building the Python environment $SETUP_VENV"
    rm -rf "$SETUP_VENV"
    if ! "$base" -m venv "$SETUP_VENV" >/dev/null 2>&1; then
      # Debian's python3 ships venv's ensurepip separately
      rm -rf "$SETUP_VENV"
      setup_apt python3-venv
      "$base" -m venv "$SETUP_VENV" >&2 || setup_die "cannot create the virtual environment $SETUP_VENV"
    fi
    "$py" -m pip install -q --disable-pip-version-check -r "$SETUP_REQUIREMENTS" >&2 ||
      setup_die "pip install -r $SETUP_REQUIREMENTS failed"
    "$py" -c 'import pulsar, lz4.block, zstandard' ||
      setup_die "the packages of $SETUP_REQUIREMENTS do not import in $SETUP_VENV"
    echo "$stamp" >"$SETUP_VENV/.setup-stamp"
  fi
  exec {lock}>&-
  export PULSAR_TEST_PYTHON=$py
}

setup_protoc() {
  command -v protoc >/dev/null || setup_apt protobuf-compiler
}

setup_font() {
  [ -n "${PULSAR_BENCH_FONT:-}" ] && return 0
  local f
  # the places benches/src/report/charts.rs looks in
  for f in /usr/share/fonts/{truetype/dejavu,TTF,dejavu,dejavu-sans-fonts}/DejaVuSans.ttf \
    /usr/share/fonts/{truetype/liberation,liberation-sans}/LiberationSans-Regular.ttf \
    /usr/share/fonts/truetype/freefont/FreeSans.ttf; do
    [ -f "$f" ] && return 0
  done
  setup_apt fonts-dejavu-core
}

# setup PART... : the parts named (see the header), in order.
setup() {
  local part
  for part in "$@"; do
    case $part in
      rust | lint | broker | python | protoc | font) "setup_$part" ;;
      *) setup_die "unknown set-up part: $part" ;;
    esac
  done
}
