"""A credential's `files:`: what a valid entry gives, every refusal with FILE:LINE and its fix, the
template and mode rules, and the parsed-profile cache keeping the files."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from runwrap.errors import ProfileError
from runwrap.profile import cache as profile_cache
from runwrap.profile.files import Refusal, parse_mode, parse_template, render, template_fields
from runwrap.profile.lookup import find, load
from runwrap.profile.model import FileSpec
from runwrap.secret import Secret

GOOD = """\
credentials:
  - domain: db.internal
    env: {PGUSER: username}
    files:
      PGPASSFILE: {template: "127.0.0.1:*:*:{{username}}:{{ password }}\\n", mode: "0600"}
      SSH_KEY:    {field: notes}
      KUBECONFIG: {field: kube.config, mode: 0440, path: true}
  - id: only-files
    files:
      TOKEN_FILE: {field: password, mode: 600}
"""


def write(folder: Path, text: str, name: str = "p.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def refusal(tmp_path: Path, text: str) -> str:
    with pytest.raises(ProfileError) as info:
        load(write(tmp_path, text))
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'p.yaml'}:") and " — " in message and "\n" not in message
    return message.split(":", 1)[1]


def test_a_valid_profile_gives_typed_files(tmp_path):
    first, second = load(write(tmp_path, GOOD)).credentials
    assert dict(first.env) == {"PGUSER": "username"}
    assert dict(first.files) == {
        "PGPASSFILE": FileSpec(template="127.0.0.1:*:*:{{username}}:{{ password }}\n", mode=0o600, line=5),
        "SSH_KEY": FileSpec(field="notes", line=6),
        "KUBECONFIG": FileSpec(field="kube.config", mode=0o440, path=True, line=7),
    }
    assert first.files["SSH_KEY"].mode == 0o400  # the default
    assert first.fields == ["kube.config", "notes", "password", "username"]  # all the listener is asked for
    assert dict(second.env) == {} and dict(second.files) == {"TOKEN_FILE": FileSpec(field="password", mode=0o600,
                                                                                   line=10)}


@pytest.mark.parametrize(("text", "expected"), [
    ("  - domain: a.example\n    files:\n      F: {field: notes, template: \"{{password}}\"}\n",
     "4: the file F has both template: and field: — give exactly one of them"),
    ("  - domain: a.example\n    files:\n      F: {mode: \"0600\"}\n",
     "4: the file F has neither template: nor field: — give exactly one of them"),
    ("  - domain: a.example\n    files:\n      F: {template: \"x {{password\"}\n",
     "4: F: the template has a {{ at character 3 with no }} after it — close it as {{field}}, or write {{{{"),
    ("  - domain: a.example\n    files:\n      F: {template: \"{{password | b64}}\"}\n",
     "4: F: the template's '{{password | b64}}' is not a field (templates substitute {{field}} only)"),
    ("  - domain: a.example\n    files:\n      F: {template: \"no fields {{{{here}}\"}\n",
     "4: F: the template names no field, so the file would hold no secret"),
    ("  - domain: a.example\n    files:\n      F: {field: notes, mode: rw-------}\n",
     "4: F: mode 'rw-------' is not an octal file mode — write mode: \"0400\""),
    ("  - domain: a.example\n    files:\n      F: {field: notes, mode: \"0644\"}\n",
     "4: F: mode 0644 gives other users access to the secret file"),
    ("  - domain: a.example\n    files:\n      F: {field: notes, mode: \"0660\"}\n",
     "4: F: mode 0660 lets the group write the secret file"),
    ("  - domain: a.example\n    files:\n      F: {field: notes, mode: \"0700\"}\n",
     "4: F: mode 0700 makes the secret file executable"),
    ("  - domain: a.example\n    files:\n      F: {field: notes, mode: \"4600\"}\n",
     "4: F: mode '4600' is not an octal file mode"),
    ("  - domain: a.example\n    files:\n      F: {field: notes, mode: \"0200\"}\n",
     "4: F: mode 0200 does not let the command read its own file"),
    ("  - domain: a.example\n    files:\n      F: {field: 2fa}\n",
     '4: "2fa" is not a field name — write an item key'),
    ("  - domain: a.example\n    files:\n      F: {field: notes, path: yes please}\n",
     "4: path of F is text — write path: true or path: false"),
    ("  - domain: a.example\n    files:\n      F: {feild: notes}\n",
     '4: unknown key "feild" in the file F — did you mean "field"?'),
    ("  - domain: a.example\n    files:\n      2F: {field: notes}\n",
     '4: "2F" is not a valid variable name'),
    ("  - domain: a.example\n    files: {}\n", "3: a credential's files is empty"),
    ("  - domain: a.example\n    env: {F: password}\n    files:\n      F: {field: notes}\n",
     "5: F is also set by this credential — rename one of them"),
    ("  - domain: a.example\n    env: {F: password}\n  - domain: b.example\n    files:\n      F: {field: notes}\n",
     "6: F is also set by the credential on line 2 — rename one of them"),
    ("  - domain: a.example\n    files:\n      F: {field: notes}\n  - domain: b.example\n    env: {F: password}\n",
     "6: F is also set by the credential on line 2 — rename one of them"),
    ("  - domain: a.example\n    files:\n      F: {field: notes}\n      G: {field: notes}\n"
     "  - domain: b.example\n    files:\n      G: {field: password}\n",
     "8: G is also set by the credential on line 2 — rename one of them"),
    ("  - domain: a.example\n    files:\n      F: {field: notes}\nenv:\n  set:\n    F: x\n",
     "4: F is also set in env.set — rename one of them"),
    ("  - domain: a.example\n", "2: a credential has no env: — add env: with lines VAR: field"),
])
def test_bad_entries_are_refused_with_the_line_and_the_fix(tmp_path, text, expected):
    assert expected in refusal(tmp_path, "credentials:\n" + text)


def test_templates_substitute_fields_and_nothing_else():
    assert parse_template("a {{x}} b {{ y.z }}{{{{c}} {{x}}") == ("a ", "x", " b ", "y.z", "{{c}} ", "x", "")
    assert template_fields("{{b}}{{a}}{{b}}") == ("b", "a")
    values = {"x": Secret("X1"), "y.z": Secret("ünï")}
    assert render(parse_template("a {{x}} b {{ y.z }}{{{{c}} {{x}}"), values).reveal() == "a X1 b ünï{{c}} X1"
    for bad in ("{{", "{{x", "{{}}", "{{x y}}", "{{ {{x}} }}", "plain text", "{{{{x}}"):
        with pytest.raises(Refusal):
            parse_template(bad)


def test_the_mode_rule():
    allowed = {text: parse_mode(text) for text in ("0400", "400", "0o400", "0600", "0440", "0640")}
    assert allowed == {"0400": 0o400, "400": 0o400, "0o400": 0o400, "0600": 0o600, "0440": 0o440, "0640": 0o640}
    for mode in range(0o1000):
        text = f"0{mode:03o}"
        if mode in (0o400, 0o600, 0o440, 0o640):
            assert parse_mode(text) == mode
        else:
            with pytest.raises(Refusal):
                parse_mode(text)


def test_the_cache_keeps_the_files(tmp_path, monkeypatch):
    monkeypatch.setattr(profile_cache, "_SETTLE_NS", 0)
    write(tmp_path / "profiles", GOOD)
    environ = {"RUNWRAP_HOME": str(tmp_path / "home")}
    parsed = find("p", environ=environ, cwd=tmp_path)
    (entry,) = (tmp_path / "home" / "cache" / "profiles").glob("*.json")
    data = json.loads(entry.read_text())
    assert data["format"][0] == 2
    data["profile"]["description"] = "from the cache"  # so a hit is seen to be one
    entry.write_text(json.dumps(data))
    cached = find("p", environ=environ, cwd=tmp_path)
    assert cached.description == "from the cache"
    assert cached.credentials == parsed.credentials and cached.credentials[0].files["KUBECONFIG"].path is True


DOCS = [Path(__file__).resolve().parents[2] / name for name in ("README.md", "docs/files.md", "docs/integrations.md")]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_profile_with_files_in_the_docs_is_valid(tmp_path, doc):
    blocks = [block.split("```", 1)[0] for block in doc.read_text().split("```yaml\n")[1:]]
    with_files = [block for block in blocks if "files:" in block and "credentials:" in block]
    assert with_files
    for block in with_files:
        profile = load(write(tmp_path, block.replace("# profiles/deploy.yaml\n", "")))
        assert any(spec.files for spec in profile.credentials)
