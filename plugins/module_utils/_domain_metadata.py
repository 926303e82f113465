# Copyright (c) virtops.hypervisor contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Tags and key/value metadata of a domain, kept in its <metadata> under the collection's namespace.

    <metadata>
      <virtops:domain xmlns:virtops="urn:virtops:hypervisor:domain:1">
        <virtops:tag name="web"/>
        <virtops:meta name="role">db</virtops:meta>
        <virtops:cloud-init seed="sha256:..."/>
      </virtops:domain>
    </metadata>

libvirt_domain writes the element, libvirt_domain_info and the inventory plugin read it. Elements of
other namespaces in <metadata> (libosinfo, other tools) are never touched.

``cloud-init`` records the digest of the domain's cloud-init seed (only a domain with a seed has it). A
running domain's live XML keeps the element it booted with, so a live digest other than the definition's
means the guest has not read its current seed yet. It is no user metadata: describe() leaves it out, and
seed_digest() reads it.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

NAMESPACE = 'urn:virtops:hypervisor:domain:1'
PREFIX = 'virtops'
ELEMENT = '{%s}domain' % NAMESPACE
TAG = '{%s}tag' % NAMESPACE
META = '{%s}meta' % NAMESPACE
SEED = '{%s}cloud-init' % NAMESPACE


def empty():
    return {'tags': [], 'metadata': {}}


def find(root):
    """The virtops element of a domain XML root, or None."""
    metadata = root.find('metadata')
    return metadata.find(ELEMENT) if metadata is not None else None


def describe(root):
    """{'tags': sorted unique names, 'metadata': {name: value}} of a domain XML root."""
    elem = find(root)
    if elem is None:
        return empty()
    tags = sorted(set(tag.get('name') for tag in elem.findall(TAG) if tag.get('name')))
    metadata = dict((meta.get('name'), (meta.text or '').strip()) for meta in elem.findall(META) if meta.get('name'))
    return {'tags': tags, 'metadata': metadata}


def seed_digest(root):
    """The digest ('sha256:<hex>') of the cloud-init seed recorded in a domain XML root, or None."""
    elem = find(root)
    seed = elem.find(SEED) if elem is not None else None
    return seed.get('seed') if seed is not None else None


def element(tags, metadata, seed=None):
    """The virtops element for these tags, metadata and seed digest, children in a stable (sorted) order."""
    elem = ET.Element(ELEMENT)
    for name in sorted(set(tags or ())):
        ET.SubElement(elem, TAG, {'name': name})
    for name, value in sorted((metadata or {}).items()):
        ET.SubElement(elem, META, {'name': name}).text = value
    if seed:
        ET.SubElement(elem, SEED, {'seed': seed})
    return elem


def fragment(tags, metadata, seed=None):
    """The element without namespace, as virDomainSetMetadata takes it (libvirt adds key and URI)."""
    elem = ET.Element('domain')
    for child in element(tags, metadata, seed):
        ET.SubElement(elem, child.tag.split('}', 1)[1], child.attrib).text = child.text
    return ET.tostring(elem, encoding='unicode')


def is_empty(wanted):
    return not wanted['tags'] and not wanted['metadata'] and not wanted.get('seed')


def apply(root, wanted):
    """Put the wanted {'tags', 'metadata', 'seed' (optional)} into a domain XML root; an empty one removes
    the element.

    The existing element is replaced in place (its position among other tools' metadata kept), and left
    alone when it already says the same, so an unchanged definition compares equal.
    """
    if (describe(root) == {'tags': sorted(set(wanted['tags'])), 'metadata': dict(wanted['metadata'])}
            and seed_digest(root) == wanted.get('seed')):
        return
    metadata = root.find('metadata')
    current = find(root)
    if is_empty(wanted):
        if current is not None:
            metadata.remove(current)
            if not len(metadata):
                root.remove(metadata)
        return
    new = element(wanted['tags'], wanted['metadata'], wanted.get('seed'))
    if metadata is None:
        metadata = ET.Element('metadata')
        root.insert(_metadata_index(root), metadata)
    if current is not None:
        index = list(metadata).index(current)
        metadata.remove(current)
        metadata.insert(index, new)
    else:
        metadata.append(new)


def _metadata_index(root):
    """libvirt writes <metadata> after name, uuid, genid, title and description."""
    index = 0
    for position, child in enumerate(root):
        if child.tag in ('name', 'uuid', 'genid', 'title', 'description'):
            index = position + 1
    return index
