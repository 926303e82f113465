# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Copy the collections a requirements.yml (or galaxy.yml's `dependencies`) names from the ansible package
installed in this Python.

Ansible Galaxy is not reachable here; the `ansible` package pinned in requirements-dev.txt bundles
the collections the tests and benchmarks need. Usage (with .venv's python, which has that package):

    bundled-collections.py REQUIREMENTS_YML|GALAXY_YML DEST

copies each named collection to DEST/ansible_collections/<namespace>/<name> (replacing an older
copy; nothing is copied when the same version is there) after checking its version against the
requirement. Fails when a collection is missing or too old.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import yaml
from ansible.galaxy.dependency_resolution.versioning import meets_requirements

import ansible_collections


def bundled():
    for root in ansible_collections.__path__:
        if Path(root, 'ansible', 'posix').is_dir() or Path(root, 'community').is_dir():
            return Path(root)
    raise SystemExit('bundled-collections: the ansible package is not installed in %s' % sys.executable)


def version_of(path):
    manifest = path / 'MANIFEST.json'
    return json.loads(manifest.read_text())['collection_info']['version'] if manifest.is_file() else None


def main(requirements, dest):
    source_root = bundled()
    data = yaml.safe_load(Path(requirements).read_text())
    entries = data['collections'] if 'collections' in data else [
        {'name': name, 'version': version} for name, version in (data.get('dependencies') or {}).items()]
    for entry in entries:
        namespace, name = entry['name'].split('.')
        wanted = str(entry.get('version', '*'))
        source = source_root / namespace / name
        have = version_of(source)
        if have is None:
            raise SystemExit('bundled-collections: %s is not in the ansible package (%s)' % (entry['name'], source_root))
        if not meets_requirements(have, wanted):
            raise SystemExit('bundled-collections: the ansible package has %s %s, %s needs %s'
                             % (entry['name'], have, requirements, wanted))
        target = Path(dest) / 'ansible_collections' / namespace / name
        if version_of(target) == have:
            continue
        if target.exists():
            shutil.rmtree(str(target))
        shutil.copytree(str(source), str(target), ignore=shutil.ignore_patterns('__pycache__'))
        print('bundled-collections: %s %s -> %s' % (entry['name'], have, target))


if __name__ == '__main__':
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    main(*sys.argv[1:])
