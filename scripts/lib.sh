# Shared by scripts/try, scripts/test and .ci/run: make sure a Rust toolchain and the few
# Debian packages the build and tests use are present. Idempotent; installs only what is missing.

# Stops the calling script with a message that says what failed and what to do.
die() {
    echo "$(basename "$0"): $*" >&2
    exit 1
}

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_install() {
    missing=""
    for pkg in "$@"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing="$missing $pkg"
    done
    if [ -n "$missing" ]; then
        echo "installing:$missing" >&2
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
            as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing ||
            die "could not install$missing with apt-get (see above); install them yourself and run $0 again"
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
        # Downloaded first, then run: piped straight into sh, a failed download would run
        # nothing, "succeed", and leave the build to fail later with "cargo: not found".
        installer=$(mktemp) || die "could not create a temporary file for the Rust installer"
        if ! curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs -o "$installer"; then
            rm -f "$installer"
            die "could not download the Rust installer from https://sh.rustup.rs (no network, or a proxy in the way?). Install a stable Rust toolchain yourself (https://rustup.rs), put cargo on PATH, and run $0 again."
        fi
        sh "$installer" -y --profile minimal ||
            { rm -f "$installer"; die "the Rust installer failed (see above); install a stable Rust toolchain yourself (https://rustup.rs) and run $0 again"; }
        rm -f "$installer"
        PATH="$HOME/.cargo/bin:$PATH"
        command -v cargo >/dev/null 2>&1 ||
            die "the Rust installer ran, but there is no cargo in $HOME/.cargo/bin; put cargo on PATH and run $0 again"
    fi
    export PATH
}

# The path of a binary cargo built with PROFILE (release or debug): the build names the host's
# target explicitly (.cargo/config.toml), so it is under target/<host triple>/.
built_binary() {
    host=$(rustc -vV | sed -n 's/^host: //p')
    [ -n "$host" ] || die "rustc -vV did not name the host"
    echo "target/$host/$1/cw-exec"
}
