"""Documents checked against the code: docs/configuration.md's key table against what
`telebridge --check-config` prints, the man page against `--help` (and that it renders without
warnings), and every relative link of README.md and docs/*.md."""

import json
import os
import re
import shutil
import subprocess

import pytest

import tb

DOCS = tb.ROOT / "docs"
# Printed by --check-config but not keys of the file: the --log-level flag, the masked secret.
NOT_FILE_KEYS = {"log_level", "auth.secret"}
# Keys whose default depends on the build: (what the docs must say, what the value must end with).
BUILD_DEFAULTS = {"listen.web_root": ("share/telebridge/web", "/share/telebridge/web")}


def effective_defaults(tmp_path):
    cfg = tmp_path / "empty.json"
    cfg.write_text("{}")
    env = dict(os.environ, TELEBRIDGE_JWT_SECRET="s" * 32)
    out = subprocess.run([str(tb.BRIDGE_BIN), "--config", str(cfg), "--check-config"], env=env,
                         capture_output=True, text=True, timeout=tb.PROCESS_TIMEOUT, check=True)
    return json.loads(out.stdout)


def flatten(doc):
    """{"listen": {"port": 8080}, "groups": {}} → {"listen.port": 8080, "groups": {}}."""
    out = {}
    for top, value in doc.items():
        if isinstance(value, dict) and top != "groups":
            out.update({f"{top}.{k}": v for k, v in value.items()})
        else:
            out[top] = value
    return out


def documented_defaults():
    """The rows of configuration.md's "Keys and defaults" table → {key: default cell}."""
    text = (DOCS / "configuration.md").read_text()
    table = text.split("## Keys and defaults", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([a-z_.]+)` \| (.+?) \|", table, re.M)
    assert rows, "no key table found"
    return dict(rows)


def test_configuration_table_matches_check_config(tmp_path):
    effective = flatten(effective_defaults(tmp_path))
    documented = documented_defaults()
    file_keys = set(effective) - NOT_FILE_KEYS
    assert set(documented) == file_keys, (
        f"undocumented: {sorted(file_keys - set(documented))}, "
        f"documented but unknown: {sorted(set(documented) - file_keys)}")
    for key, cell in documented.items():
        if key in BUILD_DEFAULTS:
            said, suffix = BUILD_DEFAULTS[key]
            assert said in cell, (key, cell)
            assert effective[key].endswith(suffix), (key, effective[key])
            continue
        literal = re.fullmatch(r"`(.+)`", cell)
        assert literal, f"{key}: the default must be one JSON literal in backticks: {cell}"
        assert json.loads(literal.group(1)) == effective[key], (key, cell, effective[key])


def test_a_changed_default_would_be_caught(tmp_path):
    """The comparison above is not vacuous: a file value shows up in --check-config."""
    cfg = tmp_path / "c.json"
    cfg.write_text('{"limits": {"max_connections": 7}}')
    env = dict(os.environ, TELEBRIDGE_JWT_SECRET="s" * 32)
    out = subprocess.run([str(tb.BRIDGE_BIN), "--config", str(cfg), "--check-config"], env=env,
                         capture_output=True, text=True, timeout=tb.PROCESS_TIMEOUT, check=True)
    assert json.loads(out.stdout)["limits"]["max_connections"] == 7
    assert documented_defaults()["limits.max_connections"] != "`7`"


MAN_PAGES = [("telebridge.1", tb.BRIDGE_BIN), ("telebridge-token.1", tb.TOKEN_BIN)]


def help_flags(binary):
    out = subprocess.run([str(binary), "--help"], capture_output=True, text=True,
                         timeout=tb.PROCESS_TIMEOUT, check=True).stdout
    return sorted(set(re.findall(r"--[a-z-]+", out)))


@pytest.mark.parametrize("page,binary", MAN_PAGES)
def test_man_page_documents_every_flag(page, binary):
    text = (DOCS / page).read_text()
    flags = help_flags(binary)
    assert len(flags) >= 5, flags
    for flag in flags:
        assert flag.replace("-", r"\-") in text, f"{flag} is not in docs/{page}"


@pytest.mark.parametrize("page", [p for p, _ in MAN_PAGES])
def test_man_page_renders_without_warnings(page):
    assert shutil.which("groff"), "groff is missing (Debian's groff-base, which man-db brings)"
    res = subprocess.run(["groff", "-man", "-ww", "-z", str(DOCS / page)],
                         capture_output=True, text=True, timeout=tb.PROCESS_TIMEOUT)
    assert res.returncode == 0 and res.stderr == "", res.stderr


@pytest.mark.parametrize("page", [p for p, _ in MAN_PAGES])
def test_man_l_shows_the_page(page):
    assert shutil.which("man"), "man is missing (Debian's man-db)"
    res = subprocess.run(["man", "-l", str(DOCS / page)], capture_output=True, text=True,
                         timeout=tb.PROCESS_TIMEOUT,
                         env=dict(os.environ, MANPAGER="cat", MANWIDTH="80"))
    assert res.returncode == 0, res.stderr
    for section in ("NAME", "SYNOPSIS", "OPTIONS", "EXIT STATUS", "SEE ALSO"):
        assert re.search(rf"^{section}$", res.stdout, re.M), section


def test_relative_links_resolve():
    for doc in [tb.ROOT / "README.md", *sorted(DOCS.glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text()):
            if re.match(r"[a-z]+:", target):
                continue
            assert (doc.parent / target).exists(), f"{doc.name}: broken link {target}"
