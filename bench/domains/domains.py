"""Helper for bench/domains/run.sh, outside the measured runs (one libvirt connection each).

domains.py clean    destroy and undefine every bench-NNN and bench-run-NN domain
domains.py status   print how many bench domains exist and how many of them run
domains.py settle   wait (up to 120 s) until every running bench domain is idle (a TCG guest
                    that is still booting takes a whole core, which would skew the next run)
"""
import re
import sys
import time

import libvirt

URI = 'qemu:///system'
BENCH_NAME = re.compile(r'^bench-(run-)?[0-9]+$')
IDLE_SHARE = 0.15  # of one core, per guest
SETTLE_SECONDS = 120
SAMPLE_SECONDS = 2.0


def bench_domains(conn):
    return [dom for dom in conn.listAllDomains(0) if BENCH_NAME.match(dom.name())]


def clean(conn):
    for dom in bench_domains(conn):
        if dom.isActive():
            dom.destroy()
        if dom.isPersistent():
            dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
                              | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA)


def cpu_times(conn):
    return dict((dom.name(), dom.info()[4]) for dom in bench_domains(conn) if dom.isActive())


def settle(conn):
    deadline = time.monotonic() + SETTLE_SECONDS
    before = cpu_times(conn)
    while before and time.monotonic() < deadline:
        time.sleep(SAMPLE_SECONDS)
        after = cpu_times(conn)
        if not after:
            return
        busiest = max((after[name] - before.get(name, after[name])) / 1e9 / SAMPLE_SECONDS for name in after)
        if busiest < IDLE_SHARE:
            return
        before = after
    if before:
        sys.stderr.write('domains.py: bench guests still busy after %d s, going on\n' % SETTLE_SECONDS)


def main():
    if len(sys.argv) != 2 or sys.argv[1] not in ('clean', 'status', 'settle'):
        sys.exit(__doc__)
    conn = libvirt.open(URI)
    if sys.argv[1] == 'clean':
        clean(conn)
    elif sys.argv[1] == 'settle':
        settle(conn)
    else:
        domains = bench_domains(conn)
        print('%d %d' % (len(domains), sum(1 for dom in domains if dom.isActive())))


if __name__ == '__main__':
    main()
