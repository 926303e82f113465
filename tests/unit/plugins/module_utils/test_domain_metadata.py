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
