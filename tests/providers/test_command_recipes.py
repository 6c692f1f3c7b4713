"""The recipes in docs/providers.md, run as the command provider's program against stand-ins for
op, vault, aws and gopass that print what those tools print (values, exit statuses, error text)."""

from __future__ import annotations

import re
import sys
import textwrap
from pathlib import Path

import pytest

from runwrap.credential import Query
from runwrap.errors import NotFound
from runwrap.providers.command import CommandProvider

DOCS = Path(__file__).parent.parent.parent / "docs" / "providers.md"

# Each stand-in knows one secret for github.com and nothing else.
STANDINS = {
    "op": """
        args = sys.argv[1:]
        ref = args[-1]
        values = {"op://runwrap/github.com/username": "alice", "op://runwrap/github.com/password": "pw-op"}
        if args[0] != "read" or ref not in values:
            print(f'[ERROR] could not read secret {ref}: item not found', file=sys.stderr); sys.exit(1)
        sys.stdout.write(values[ref])
    """,
    "vault": """
        path = sys.argv[-1]
        assert sys.argv[1:4] == ["kv", "get", "-format=json"] and sys.argv[4] == "-mount=secret"
        if path != "runwrap/github.com":
            print(f"No value found at secret/data/{path}", file=sys.stderr); sys.exit(2)
        print(json.dumps({"request_id": "r", "lease_id": "", "lease_duration": 0, "renewable": False,
                          "data": {"data": {"username": "alice", "password": "pw-vault", "totp": "JBSWY3DPEHPK3PXP"},
                                   "metadata": {"version": 1}}, "warnings": None}))
    """,
    "aws": """
        secret_id = sys.argv[sys.argv.index("--secret-id") + 1]
        if secret_id != "runwrap/github.com":
            print("An error occurred (ResourceNotFoundException) when calling the GetSecretValue operation: "
                  "Secrets Manager can't find the specified secret.", file=sys.stderr); sys.exit(254)
        print(json.dumps({"username": "alice", "password": "pw-aws"}))
    """,
    "gopass": """
        name = sys.argv[-1]
        if name != "websites/github.com":
            print(f"Error: failed to retrieve secret '{name}': entry is not in the password store", file=sys.stderr)
            sys.exit(11)
        print("pw-gopass\\nuser: alice\\nurl: https://github.com\\notpauth://totp/x?secret=JBSWY3DPEHPK3PXP")
    """,
}
PASSWORDS = {"op": "pw-op", "vault": "pw-vault", "aws": "pw-aws", "gopass": "pw-gopass"}


def recipes() -> dict[str, str]:
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(), re.S)
    found = {}
    for block in blocks:
        match = re.search(r"^# runwrap-recipe: (\w+)$", block, re.M)
        if match:
            found[match.group(1)] = block
    return found


def test_the_docs_have_all_four_recipes() -> None:
    assert sorted(recipes()) == ["aws", "gopass", "op", "vault"]


@pytest.mark.parametrize("tool", sorted(STANDINS))
def test_recipe_works(tool: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    standin = bin_dir / tool
    standin.write_text(f"#!{sys.executable}\nimport json, sys\n" + textwrap.dedent(STANDINS[tool]))
    standin.chmod(0o700)
    recipe = tmp_path / f"{tool}-recipe"
    recipe.write_text(recipes()[tool].replace("#!/usr/bin/env python3", f"#!{sys.executable}", 1))
    recipe.chmod(0o700)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")

    provider = CommandProvider({"command": str(recipe)})
    item = provider.lookup(Query(domain="api.github.com"))
    assert (item.username, item.password.reveal()) == ("alice", PASSWORDS[tool])
    assert (item.credential_id, item.domain) == ("github.com", "github.com")
    assert provider.lookup(Query(id="github.com")).password.reveal() == PASSWORDS[tool]
    with pytest.raises(NotFound):
        provider.lookup(Query(domain="gitlab.com"))
