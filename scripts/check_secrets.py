"""Fail when a key-like string is in the repository and not in ``.secrets.baseline`` (secrets come
only from the environment). Run by scripts/test.sh before pytest; `detect-secrets` (Yelp) does the
scanning with the plugins and filters recorded in the baseline.

Scans every file git knows or would add (tracked plus untracked-but-not-ignored), so a secret is
caught before it is committed. Unlike ``detect-secrets-hook`` it never rewrites the baseline: line
numbers moving is not a finding, only a new secret is (matched by file, type and hashed value).

    uv run python scripts/check_secrets.py            # exit 1 and list the new findings, else 0
    uv run python scripts/check_secrets.py --update   # re-scan and rewrite .secrets.baseline

After a reviewed false positive (a test fixture, a dev-only default refused in production), add it
with ``--update`` and mark it ``"is_secret": false`` (``detect-secrets audit .secrets.baseline``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from detect_secrets.core import baseline
from detect_secrets.core.secrets_collection import SecretsCollection

ROOT = Path(__file__).resolve().parent.parent
BASELINE = ".secrets.baseline"


def candidate_files() -> list[str]:
    """Tracked files plus untracked files .gitignore does not exclude, that exist on disk."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                         capture_output=True, check=True).stdout.decode()
    return sorted({f for f in out.split("\0") if f and f != BASELINE and (ROOT / f).is_file()})


def scan(files: list[str]) -> SecretsCollection:
    found = SecretsCollection()  # relative names (we run from ROOT), as the baseline records them
    found.scan_files(*files, num_processors=min(2, os.cpu_count() or 1))
    return found


def main(argv: list[str]) -> int:
    os.chdir(ROOT)
    known = baseline.load(baseline.load_from_file(BASELINE), BASELINE)  # also applies its plugins/filters
    found = scan(candidate_files())
    if "--update" in argv:
        # Keep the audit verdicts ("is_secret") of findings already reviewed.
        verdicts = {(s.filename, s.secret_hash, s.type): s.is_secret for _, s in known}
        for _, secret in found:
            secret.is_secret = verdicts.get((secret.filename, secret.secret_hash, secret.type), secret.is_secret)
        baseline.save_to_file(found, BASELINE)
        print(f"{BASELINE}: {sum(1 for _ in found)} findings recorded")
        return 0
    new = found - known
    if not new:
        print(f"detect-secrets: no new secrets ({sum(1 for _ in found)} known findings)")
        return 0
    print("detect-secrets found key-like strings that are not in .secrets.baseline:", file=sys.stderr)
    for filename, secret in sorted(new, key=lambda pair: (pair[0], pair[1].line_number or 0)):
        print(f"  {filename}:{secret.line_number}: {secret.type}", file=sys.stderr)
    print("Move real secrets to the environment (ODIM_* settings). A reviewed false positive: "
          "`uv run python scripts/check_secrets.py --update` and commit the baseline.", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
