# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""_image_manager: what a refused resize says, and what diff mode shows of an image."""

from __future__ import annotations

from ansible_collections.virtops.hypervisor.plugins.module_utils import _image_manager as m

MIB = 1 << 20


def test_a_refused_grow_names_the_image_the_format_and_both_ways_out():
    message = m.resize_refused('/images/disk.vhdx', 'vhdx', 32 * MIB, 48 * MIB)
    assert message.startswith('cannot resize /images/disk.vhdx from 32 MiB to 48 MiB: qemu-img cannot resize vhdx '
                              'images (only qcow2 and raw).')
    assert 'convert it to qcow2 or raw first (src: /images/disk.vhdx, a new path, format: qcow2 or raw)' in message
    assert 'convert it to a new vhdx image with src: /images/disk.vhdx and size: 48 MiB' in message
    assert message.endswith('Nothing was changed.')


def test_a_refused_shrink_offers_no_conversion_to_a_smaller_size():
    message = m.resize_refused('/images/disk.vdi', 'vdi', 32 * MIB, 16 * MIB)
    assert 'convert it to qcow2 or raw first' in message
    assert 'and size:' not in message  # a conversion cannot make an image smaller


def test_summary_of_a_missing_and_of_an_existing_image():
    assert m.summary(None) == {'exists': False}
    info = {'format': 'vmdk', 'virtual_size': 32 * MIB, 'backing_file': None, 'backing_format': None,
            'subformat': 'streamOptimized', 'actual_size': 1}
    assert m.summary(info, {'mode': '0640'}) == {
        'exists': True, 'format': 'vmdk', 'virtual_size': 32 * MIB, 'backing_file': None, 'backing_format': None,
        'subformat': 'streamOptimized', 'mode': '0640'}
