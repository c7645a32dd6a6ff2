# Sourced by scripts/serve and scripts/test: installs Debian packages that
# are missing (apt-get; sudo when not root), so a fresh machine needs only
# the Rust toolchain.
#
#   need_packages PACKAGE...   installs those of them not installed yet

need_packages() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" \
      || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  echo "faxmta: installing ${missing[*]}" >&2
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  # "No configuration": no main.cf is written, so the system's own Postfix
  # (a peer of the tests) does not start and take port 25.
  echo "postfix postfix/main_mailer_type select No configuration" \
    | $sudo debconf-set-selections 2>/dev/null || true
  # PostgreSQL: the tests run private instances (tests/peers/postgres.sh);
  # the package's own cluster is not created.
  $sudo mkdir -p /etc/postgresql-common/createcluster.d
  echo "create_main_cluster = false" \
    | $sudo tee /etc/postgresql-common/createcluster.d/faxmta-no-main.conf >/dev/null
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

# What building faxmta needs besides Rust: the software fax modem
# (spandsp) and libtiff, found with pkg-config (transports/fax/build.rs).
BUILD_PACKAGES=(pkg-config libspandsp-dev libtiff-dev)
