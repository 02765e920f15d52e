"""What the package declares it ships is there."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_declared_package_data_file_exists():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    declared = config["tool"]["setuptools"]["package-data"]
    assert "py.typed" in declared["builder_app"]  # the package says it is typed (PEP 561)
    for package, patterns in declared.items():
        folder = ROOT / package.replace(".", "/")
        for pattern in patterns:
            assert list(folder.glob(pattern)), f"{package}: {pattern} is declared but missing"


# -- packaging/: the bundle spec, the desktop entry, the AppStream metainfo -------------- #

PACKAGING = ROOT / "packaging"
BUNDLE_PROGRAM = "packaging/dist/builder-app/builder-app"
ICON_SIZES = (48, 128, 256)


def _desktop_entry() -> dict[str, str]:
    import configparser

    parser = configparser.ConfigParser(interpolation=None, delimiters=("=",))
    parser.optionxform = str  # keys are case-sensitive
    parser.read(PACKAGING / "builder-app.desktop", encoding="utf-8")
    return dict(parser["Desktop Entry"])


def _png_size(path: Path) -> tuple[int, int]:
    import struct

    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def _run_tool(*command: str):
    import shutil
    import subprocess

    import pytest

    if shutil.which(command[0]) is None:
        pytest.skip(f"{command[0]} is not installed (Debian: desktop-file-utils, appstream)")
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def test_the_spec_is_python_that_builds_the_entry_point_with_the_resources():
    import ast

    source = (PACKAGING / "builder-app.spec").read_text(encoding="utf-8")
    tree = ast.parse(source)
    calls = {node.func.id for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}
    assert {"Analysis", "PYZ", "EXE", "COLLECT"} <= calls  # a one-folder bundle (COLLECT)
    assert '"entry.py"' in source and (PACKAGING / "entry.py").is_file()
    for folder in ("resources/icons", "resources/examples"):  # where builder_app.ui.theme looks
        assert f'"{folder}"' in source
    assert 'collect_submodules("builder_app")' in source and 'collect_data_files("builder_app")' in source


def test_the_entry_point_supports_frozen_children_before_importing_the_app():
    import ast

    tree = ast.parse((PACKAGING / "entry.py").read_text(encoding="utf-8"))
    main = next(node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "main")
    first = ast.unparse(main.body[0])
    assert first == "multiprocessing.freeze_support()"


def test_the_entry_point_runs_code_like_python_dash_c_and_the_cli_otherwise():
    import subprocess
    import sys

    entry = str(PACKAGING / "entry.py")
    done = subprocess.run(
        [sys.executable, entry, "-c", "import sys; print(sys.argv)", "a", "b"],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['-c', 'a', 'b']"  # export --check's child reads sys.argv[1:]
    done = subprocess.run([sys.executable, entry, "--version"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    from builder_app import __version__

    assert done.stdout.strip() == f"builder-app {__version__}"


def test_the_desktop_entry_starts_the_command_with_an_icon_in_every_size():
    entry = _desktop_entry()
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert entry["Type"] == "Application"
    assert entry["Exec"].split()[0] in config["project"]["scripts"]  # builder-app, as pip installs it
    assert entry["Terminal"] == "false"
    hicolor = PACKAGING / "icons" / "hicolor"
    assert (hicolor / "scalable" / "apps" / f"{entry['Icon']}.svg").is_file()
    for size in ICON_SIZES:
        assert _png_size(hicolor / f"{size}x{size}" / "apps" / f"{entry['Icon']}.png") == (size, size)


def test_desktop_file_validate_accepts_the_desktop_entry():
    done = _run_tool("desktop-file-validate", str(PACKAGING / "builder-app.desktop"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "error" not in (done.stdout + done.stderr).lower()


def test_the_project_mime_type_is_the_desktop_entrys():
    import xml.etree.ElementTree as ET

    ns = {"m": "http://www.freedesktop.org/standards/shared-mime-info"}
    mime = ET.parse(PACKAGING / "builder-app-mime.xml").getroot().find("m:mime-type", ns)
    assert mime.find("m:glob", ns).get("pattern") == "*.kproj"
    assert _desktop_entry()["MimeType"].rstrip(";").split(";") == [mime.get("type")]


def test_the_metainfo_names_the_desktop_entry_icon_binary_and_version():
    import xml.etree.ElementTree as ET

    from builder_app import __version__

    path = next(PACKAGING.glob("*.metainfo.xml"))
    component = ET.parse(path).getroot()
    assert component.get("type") == "desktop-application"
    assert path.name == f"{component.findtext('id')}.metainfo.xml"
    assert component.findtext("launchable") == "builder-app.desktop"
    assert component.findtext("icon") == _desktop_entry()["Icon"]
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert component.findtext("provides/binary") in config["project"]["scripts"]
    assert component.findtext("project_license") == config["project"]["license"]
    assert component.find("releases/release").get("version") == __version__ == config["project"]["version"]


def test_appstreamcli_accepts_the_metainfo():
    done = _run_tool("appstreamcli", "validate", "--no-net", str(next(PACKAGING.glob("*.metainfo.xml"))))
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_bundle_extra_pins_pyinstaller():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    pins = config["project"]["optional-dependencies"]["bundle"]
    assert any(pin.startswith("pyinstaller==") for pin in pins)  # the version the spec was built with


def test_the_build_scripts_smoke_commands_are_the_readmes():
    import re

    script = (PACKAGING / "build_bundle.sh").read_text(encoding="utf-8")
    # The unconditional smoke commands (column 0); `--train` adds an indented one.
    smoke = [line.split(None, 1)[1].replace('"$OUT"/', "") for line in script.splitlines() if line.startswith("smoke ")]
    assert smoke == [
        "--version",
        "render resources/examples/unet_groupnorm.kproj --png unet.png",
        "validate resources/examples/siamese_digits.kproj",
    ]
    for command in smoke:
        for path in re.findall(r"resources/\S+", command):
            assert (ROOT / path).is_file(), f"build_bundle.sh smoke-tests a missing {path}"
    for readme in (ROOT / "packaging" / "README.md", ROOT / "README.md"):
        text = readme.read_text(encoding="utf-8")
        assert "packaging/build_bundle.sh" in text, f"{readme} does not say how to build the bundle"
        for command in smoke:
            assert f"{BUNDLE_PROGRAM} {command}" in text, f"{readme} does not show `{BUNDLE_PROGRAM} {command}`"
