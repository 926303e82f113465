# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Tags and metadata in the domain's <metadata>: read, written, other tools' elements left alone."""

from __future__ import annotations

from ansible_collections.virtops.hypervisor.plugins.module_utils import _domain_metadata as md
from ansible_collections.virtops.hypervisor.plugins.module_utils import _domain_xml as dx

# virt-install writes libosinfo's element; libvirt 9.0 returns it like this.
WITH_OSINFO = """<domain type='qemu'>
  <name>web1</name>
  <uuid>a3f63993-8e44-4b16-bb5d-e197c0d743e9</uuid>
  <metadata>
    <libosinfo:libosinfo xmlns:libosinfo="http://libosinfo.org/xmlns/libvirt/domain/1.0">
      <libosinfo:os id="http://debian.org/debian/12"/>
    </libosinfo:libosinfo>
  </metadata>
  <memory unit='KiB'>262144</memory>
  <devices/>
</domain>
"""

TAGGED = """<domain type='qemu'>
  <name>web1</name>
  <metadata>
    <virtops:domain xmlns:virtops="urn:virtops:hypervisor:domain:1">
      <virtops:tag name="zone-a"/>
      <virtops:tag name="web"/>
      <virtops:meta name="role">db</virtops:meta>
    </virtops:domain>
  </metadata>
  <devices/>
</domain>
"""


def test_a_domain_without_the_element_has_no_tags_or_metadata():
    assert md.describe(dx.parse(WITH_OSINFO)) == {'tags': [], 'metadata': {}}


def test_tags_are_read_sorted_and_metadata_as_a_dict():
    assert md.describe(dx.parse(TAGGED)) == {'tags': ['web', 'zone-a'], 'metadata': {'role': 'db'}}


def test_written_element_reads_back_and_keeps_other_namespaces():
    root = dx.parse(WITH_OSINFO)
    md.apply(root, {'tags': ['web', 'web', 'a'], 'metadata': {'role': 'db & <cache>'}})
    text = dx.to_string(root)
    again = dx.parse(text)
    assert md.describe(again) == {'tags': ['a', 'web'], 'metadata': {'role': 'db & <cache>'}}
    assert "<libosinfo:os id='http://debian.org/debian/12'/>" in text
    assert "xmlns:virtops='urn:virtops:hypervisor:domain:1'" in text
    assert dx.to_string(again) == text


def test_metadata_is_placed_after_the_name_and_uuid():
    root = dx.parse("<domain><name>a</name><uuid>u</uuid><memory>1</memory></domain>")
    md.apply(root, {'tags': ['x'], 'metadata': {}})
    assert [child.tag for child in root] == ['name', 'uuid', 'metadata', 'memory']


def test_an_unchanged_element_is_left_as_it_is():
    root = dx.parse(TAGGED)
    before = dx.canonical(root)
    md.apply(root, {'tags': ['zone-a', 'web'], 'metadata': {'role': 'db'}})
    assert dx.canonical(root) == before


def test_empty_tags_and_metadata_remove_the_element_and_an_empty_metadata():
    root = dx.parse(TAGGED)
    md.apply(root, md.empty())
    assert root.find('metadata') is None
    root = dx.parse(WITH_OSINFO)
    md.apply(root, md.empty())
    assert len(root.find('metadata')) == 1


def test_element_and_fragment_share_the_layout():
    elem = md.element(['b', 'a'], {'k': 'v'})
    assert elem.tag == '{urn:virtops:hypervisor:domain:1}domain'
    assert [child.get('name') for child in elem] == ['a', 'b', 'k']
    assert md.fragment(['b', 'a'], {'k': 'v'}) == (
        '<domain><tag name="a" /><tag name="b" /><meta name="k">v</meta></domain>')


def test_the_seed_digest_is_kept_apart_from_tags_and_metadata():
    root = dx.parse(TAGGED)
    assert md.seed_digest(root) is None
    md.apply(root, {'tags': ['web'], 'metadata': {'role': 'db'}, 'seed': 'sha256:ab'})
    again = dx.parse(dx.to_string(root))
    assert md.seed_digest(again) == 'sha256:ab'
    assert md.describe(again) == {'tags': ['web'], 'metadata': {'role': 'db'}}
    assert "<virtops:cloud-init seed='sha256:ab'/>" in dx.to_string(again)


def test_a_seed_digest_alone_keeps_the_element_and_none_removes_it():
    root = dx.parse(WITH_OSINFO)
    md.apply(root, {'tags': [], 'metadata': {}, 'seed': 'sha256:ab'})
    assert md.seed_digest(root) == 'sha256:ab' and md.describe(root) == md.empty()
    md.apply(root, {'tags': [], 'metadata': {}, 'seed': None})
    assert md.find(root) is None and 'libosinfo' in dx.to_string(root)


def test_the_live_fragment_carries_the_digest_given():
    assert md.fragment(['web'], {}, 'sha256:ab') == '<domain><tag name="web" /><cloud-init seed="sha256:ab" /></domain>'
    assert 'cloud-init' not in md.fragment(['web'], {})
