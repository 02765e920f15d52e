#!/usr/bin/env bash
# Builds the one-folder bundle packaging/dist/builder-app/ with PyInstaller, then smoke-tests it.
#
#   packaging/build_bundle.sh             install PyInstaller if missing, build, smoke-test
#   packaging/build_bundle.sh --no-build  smoke-test the bundle already in packaging/dist/
#   packaging/build_bundle.sh --train     also train the digits example for one epoch in it
#
# PYTHON names the interpreter whose packages go into the bundle (default: python3). The
# PyInstaller version is the one pinned in pyproject.toml's `bundle` extra. Exits non-zero
# when the build or any smoke command fails. Not part of the test run: the bundle is ~2 GB
# and the build takes many minutes.
set -euo pipefail

cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
DIST=packaging/dist
BUNDLE=$DIST/builder-app/builder-app
build=1
train=0
for arg in "$@"; do
    case $arg in
        --no-build) build=0 ;;
        --train) train=1 ;;
        -h | --help) sed -n '2,10p' "$0"; exit 0 ;;
        *) echo "build_bundle.sh: unknown option $arg (see --help)" >&2; exit 2 ;;
    esac
done

if [ "$build" = 1 ]; then
    # The pins of pyproject.toml's `bundle` extra (PyInstaller and its hooks), installed
    # only when `import PyInstaller` fails or its version differs.
    mapfile -t pins < <("$PYTHON" - <<'EOF'
import tomllib
with open("pyproject.toml", "rb") as f:
    print("\n".join(tomllib.load(f)["project"]["optional-dependencies"]["bundle"]))
EOF
    )
    if ! "$PYTHON" - "${pins[@]}" <<'EOF'
import sys
from importlib.metadata import PackageNotFoundError, version
from packaging.requirements import Requirement
for pin in sys.argv[1:]:
    req = Requirement(pin)
    try:
        if not req.specifier.contains(version(req.name), prereleases=True):
            sys.exit(1)
    except PackageNotFoundError:
        sys.exit(1)
EOF
    then
        echo "build_bundle.sh: installing ${pins[*]}"
        "$PYTHON" -m pip install "${pins[@]}"
    fi
    # Qt's X11 plugin needs these; present on the build machine, they travel in the bundle.
    for lib in libxcb-cursor.so.0 libxcb-icccm.so.4 libxcb-keysyms.so.1 libxkbcommon-x11.so.0; do
        if ! ldconfig -p | grep -q "$lib"; then
            echo "build_bundle.sh: warning: $lib is missing here, so the bundle will need it on the" \
                "target (Debian/Ubuntu: apt-get install libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1" \
                "libxkbcommon-x11-0)" >&2
        fi
    done
    echo "build_bundle.sh: building $DIST/builder-app (many minutes)"
    "$PYTHON" -m PyInstaller --noconfirm --log-level WARN \
        --distpath "$DIST" --workpath packaging/build packaging/builder-app.spec
fi

if [ ! -x "$BUNDLE" ]; then
    echo "build_bundle.sh: $BUNDLE is missing; build it first" >&2
    exit 1
fi

OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-3}
failed=0
smoke() {
    echo "+ $BUNDLE $*"
    local start=$SECONDS
    if ! "$BUNDLE" "$@"; then
        echo "build_bundle.sh: FAILED: $BUNDLE $*" >&2
        failed=1
        return
    fi
    echo "  ok ($((SECONDS - start)) s)"
}

# The smoke commands (the README's "Build a standalone bundle" lists the same ones).
smoke --version
smoke render resources/examples/unet_groupnorm.kproj --png "$OUT"/unet.png
smoke validate resources/examples/siamese_digits.kproj
if [ "$train" = 1 ]; then
    smoke train resources/examples/digits_cnn.kproj --epochs 1
fi

if [ "$failed" = 0 ] && [ ! -s "$OUT"/unet.png ]; then
    echo "build_bundle.sh: FAILED: render wrote no PNG" >&2
    failed=1
fi
if [ "$failed" != 0 ]; then
    exit 1
fi
echo "build_bundle.sh: $DIST/builder-app is ready ($(du -sh "$DIST/builder-app" | cut -f1))"
