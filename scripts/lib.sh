# Shared by scripts/try, scripts/test and .ci/run: make sure a Rust toolchain and the few
# Debian packages the build and tests use are present. Idempotent; installs only what is missing.

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_install() {
    missing=""
    for pkg in "$@"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing="$missing $pkg"
    done
    if [ -n "$missing" ]; then
        echo "installing:$missing" >&2
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing
    fi
}

ensure_toolchain() {
    # gcc links Rust binaries; passwd provides useradd (the unprivileged test user);
    # util-linux provides setpriv/runuser; curl fetches rustup when cargo is missing.
    apt_install gcc libc6-dev passwd util-linux ca-certificates curl
    if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
        PATH="$HOME/.cargo/bin:$PATH"
    fi
    if ! command -v cargo >/dev/null 2>&1; then
        echo "installing the Rust toolchain with rustup" >&2
        curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
        PATH="$HOME/.cargo/bin:$PATH"
    fi
    export PATH
}
