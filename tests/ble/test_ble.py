# SPDX-License-Identifier: MIT
"""Integration tests of the BLE layer against a private bus and the BlueZ mock.

Run one test with BLE_TEST=<name> (ctest does), all without it."""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from blefixture import Fixture, GATT, NUS, NUS_RX, NUS_TX  # noqa: E402

A = 'C0:FF:EE:00:00:01'
B = 'C0:FF:EE:00:00:02'
C = 'C0:FF:EE:00:00:03'
D = 'C0:FF:EE:00:00:04'
NUS_N = NUS.replace('-', '').upper()
NUS_TX_N = NUS_TX.replace('-', '').upper()
NUS_RX_N = NUS_RX.replace('-', '').upper()


def seq(e):
    return int.from_bytes(bytes.fromhex(e['value'])[:4], 'little')


class BleTest(unittest.TestCase):
    def setUp(self):
        self.f = Fixture()
        self.mock = self.f.mock

    def tearDown(self):
        rcs = self.f.close()
        # The harness exits cleanly (and, under ASan, without leaks).
        self.assertEqual(rcs, [0] * len(rcs))

    def ready(self, h, address):
        h.wait_state(address, 'ready', seen_ok=True)

    def connect(self, *addresses, args=()):
        h = self.f.harness(*args)
        h.wait_for(lambda e: e['event'] == 'adapter')
        h.call('desire', addresses=list(addresses))
        for a in addresses:
            self.ready(h, a)
        return h

    def subscribe(self, h, address, svc=NUS, chrc=NUS_TX):
        r = h.call('notify', address=address, service=svc, chrc=chrc, enable=True)
        self.assertEqual(r['error'], '0')
        self.assertTrue(self.mock.state(address)['notifying'][chrc])

    def notifications(self, h, n, address=A, timeout=20):
        out = []
        while len(out) < n:
            out.append(h.wait_for(lambda e: e['event'] == 'notification' and e['address'] == address, timeout))
        return out

    # ---- adapter ----

    def test_adapter_absent_then_powered_on(self):
        import dbus
        root = self.mock.conn.get_object('org.bluez', '/')
        dbus.Interface(root, 'org.bluez.Mock').RemoveAdapter('hci0')
        h = self.f.harness()
        h.wait_for(lambda e: e['event'] == 'bluez' and e['present'])
        r = h.call('scan', ms=200)
        self.assertEqual(r['error'], 'ENODEV')
        # An adapter appears switched off: AutoPowerOn=yes powers it on.
        dbus.Interface(root, 'org.bluez.Mock').AddAdapter('hci0', 'gateway')
        adapter = self.mock.conn.get_object('org.bluez', '/org/bluez/hci0')
        h.wait_for(lambda e: e['event'] == 'adapter' and e['path'] == '/org/bluez/hci0')
        self.mock.fx.FixAdapter('/org/bluez/hci0')
        dbus.Interface(adapter, 'org.freedesktop.DBus.Properties').Set('org.bluez.Adapter1', 'Powered',
                                                                       dbus.Boolean(False))
        h.wait_for(lambda e: e['event'] == 'adapter' and not e['powered'])
        # Switched off under a running gateway: reported, not fought.  A gateway that starts
        # and finds it off powers it on (AutoPowerOn=yes).
        h2 = self.f.harness()
        h2.wait_for(lambda e: e['event'] == 'adapter' and e['powered'])
        powered = dbus.Interface(adapter, 'org.freedesktop.DBus.Properties').Get('org.bluez.Adapter1', 'Powered')
        self.assertTrue(bool(powered))
        r = h2.call('scan', ms=200)
        self.assertEqual(r['error'], '0')

    def test_configured_adapter(self):
        import dbus
        root = self.mock.conn.get_object('org.bluez', '/')
        dbus.Interface(root, 'org.bluez.Mock').AddAdapter('hci1', 'second')
        self.mock.fx.FixAdapter('/org/bluez/hci1')
        h = self.f.harness('--adapter', 'hci1')
        e = h.wait_for(lambda e: e['event'] == 'adapter')
        self.assertEqual(e['path'], '/org/bluez/hci1')
        self.assertEqual(h.call('scan', ms=200)['error'], '0')
        self.assertEqual({x['path'] for x in self.mock.log() if x['method'].endswith('Discovery')},
                         {'/org/bluez/hci1'})
        # Without Adapter=, the first one.
        h2 = self.f.harness()
        self.assertEqual(h2.wait_for(lambda e: e['event'] == 'adapter')['path'], '/org/bluez/hci0')

    # ---- scan ----

    def test_scan(self):
        self.mock.add_device(A, rssi=-40, advertising=True, manufacturer_data={'89': '0102'})
        self.mock.add_device(B, rssi=-70, advertising=True, appear_on_discovery=True, name='sensor-b',
                             manufacturer_data={'89': 'aabb'}, service_data={'180f': '64'}, uuids=['180f', NUS],
                             address_type='random')
        self.mock.add_device(C, rssi=-60)  # known, not advertising: stale, not reported
        h = self.f.harness('--scan-rssi', '-90')
        h.wait_for(lambda e: e['event'] == 'adapter')
        # Two requests back to back: the second joins the first.
        i1 = h.send('scan', ms=800)
        i2 = h.send('scan', ms=400)
        r1 = h.wait_for(lambda e: e['event'] == 'scan' and e['id'] == i1)
        r2 = h.wait_for(lambda e: e['event'] == 'scan' and e['id'] == i2, seen_ok=True)
        self.assertEqual((r1['error'], r2['error']), ('0', '0'))
        # Each request got its results at its own end, from the one discovery session.
        self.assertLess(h.events.index(r2), h.events.index(r1))
        self.assertEqual(sorted(x['address'] for x in r2['results']), [A, B])
        by = {r['address']: r for r in r1['results']}
        self.assertEqual(sorted(by), [A, B])  # known A via PropertiesChanged, new B via InterfacesAdded
        b = by[B]
        self.assertEqual(b['name'], 'sensor-b')
        self.assertEqual(b['address_type'], 'random')
        self.assertIn(b['rssi'], (-70, -71, -72))
        self.assertEqual(b['manufacturer_data'], [{'company': 89, 'data': 'aabb'}])
        self.assertEqual(b['service_data'], [{'uuid': '180F', 'data': '64'}])
        self.assertEqual(b['uuids'], ['180F', NUS_N])
        self.assertEqual(by[A]['manufacturer_data'], [{'company': 89, 'data': '0102'}])
        log = self.mock.log()
        filt = [x for x in log if x['method'] == 'SetDiscoveryFilter']
        self.assertEqual(len(filt), 1)
        self.assertEqual(filt[0]['filter'], {'Transport': 'le', 'DuplicateData': True, 'RSSI': -90})
        self.assertEqual([x['method'] for x in log if x['method'].endswith('Discovery')],
                         ['StartDiscovery', 'StopDiscovery'])

    def test_scan_cap(self):
        for i in range(6):
            self.mock.add_device('C0:FF:EE:00:01:%02X' % i, rssi=-50, advertising=True,
                                 appear_on_discovery=(i % 2 == 0))
        h = self.f.harness('--max-scan-results', '3')
        h.wait_for(lambda e: e['event'] == 'adapter')
        r = h.call('scan', ms=600)
        self.assertEqual(r['error'], '0')
        self.assertEqual(len(r['results']), 3)
        self.assertEqual(len({x['address'] for x in r['results']}), 3)
        # A second scan is capped the same way.
        r = h.call('scan', ms=600)
        self.assertEqual(len(r['results']), 3)

    # ---- connection and GATT model ----

    def test_connect_gatt_model(self):
        self.mock.add_device(A)
        h = self.connect(A)
        g = h.call('gatt', address=A)
        self.assertEqual(g['state'], 'ready')
        self.assertEqual(g['services'], [
            # Values read before READY; not the write-only characteristic, nor the CCCDs.
            {'uuid': '180F', 'primary': True, 'characteristics': [
                {'uuid': '2A19', 'path': '180F/2A19', 'properties': 0x02 | 0x10, 'value': '64',
                 'descriptors': [{'uuid': '2902', 'path': '180F/2A19/2902'}]}]},
            {'uuid': NUS_N, 'primary': True, 'characteristics': [
                {'uuid': NUS_RX_N, 'path': NUS_N + '/' + NUS_RX_N, 'properties': 0x04 | 0x08, 'descriptors': []},
                {'uuid': NUS_TX_N, 'path': NUS_N + '/' + NUS_TX_N, 'properties': 0x02 | 0x10, 'value': '00',
                 'descriptors': [{'uuid': '2901', 'path': NUS_N + '/' + NUS_TX_N + '/2901', 'value': b'TX'.hex()},
                                 {'uuid': '2902', 'path': NUS_N + '/' + NUS_TX_N + '/2902'}]}]},
        ])
        states = [e['new'] for e in h.events if e['event'] == 'state' and e['address'] == A]
        self.assertEqual(states, ['connecting', 'resolving', 'ready'])
        st = self.mock.state(A)
        self.assertTrue(st['connected'] and st['resolved'])

    def _reads(self):
        return [e for e in self.mock.log() if e.get('method') == 'ReadValue']

    def test_discovery_read_count_cap(self):
        """80 readable characteristics: 64 ReadValue calls (BLE_DISCOVERY_READS_MAX), the rest without value."""
        gatt = [{'uuid': 'aa%02x' % s, 'characteristics': [
            {'uuid': 'bb%02x' % c, 'flags': ['read'], 'value': '%02x' % c} for c in range(40)]} for s in range(2)]
        self.mock.add_device(A, gatt=gatt)
        h = self.connect(A)
        g = h.call('gatt', address=A)
        chrcs = [c for s in g['services'] for c in s['characteristics']]
        self.assertEqual(len(chrcs), 80)
        self.assertEqual(len([c for c in chrcs if 'value' in c]), 64)
        # Model order: the first service's 40, then 24 of the second.
        self.assertEqual([c['value'] for c in g['services'][0]['characteristics']], ['%02x' % c for c in range(40)])
        self.assertEqual(len(self._reads()), 64)

    def test_discovery_read_byte_cap(self):
        """20 characteristics of 512 bytes: reads stop when 8 KiB (BLE_DISCOVERY_BYTES_MAX) are held."""
        gatt = [{'uuid': 'aa00', 'characteristics': [
            {'uuid': 'bb%02x' % c, 'flags': ['read'], 'value': ('%02x' % c) * 512} for c in range(20)]}]
        self.mock.add_device(A, gatt=gatt)
        h = self.connect(A)
        g = h.call('gatt', address=A)
        values = [c.get('value') for c in g['services'][0]['characteristics']]
        self.assertEqual(values[:16], [('%02x' % c) * 512 for c in range(16)])
        self.assertEqual(values[16:], [None] * 4)
        self.assertEqual(len(self._reads()), 16)

    def test_discovery_link_lost_no_ready(self):
        """The link drops during the reads: the device goes back to backoff without ever being READY for that
        connection, and the next connection reads everything."""
        gatt = [{'uuid': '180f', 'characteristics': [
            {'uuid': '2a19', 'flags': ['read'], 'value': '64', 'read_drops_link': 1},
            {'uuid': '2a1a', 'flags': ['read'], 'value': '65'}]}]
        self.mock.add_device(A, gatt=gatt)
        h = self.connect(A)
        states = [e['new'] for e in h.events if e['event'] == 'state' and e['address'] == A]
        self.assertEqual(states, ['connecting', 'resolving', 'backoff', 'idle', 'connecting', 'resolving', 'ready'])
        g = h.call('gatt', address=A)
        self.assertEqual([c['value'] for c in g['services'][0]['characteristics']], ['64', '65'])
        self.assertEqual(len(self._reads()), 3)

    # ---- notifications and reads ----

    def test_notify_10000_in_order(self):
        self.mock.add_device(A)
        h = self.connect(A)
        self.subscribe(h, A)
        sent = self.mock.notify(A, NUS, NUS_TX, 10000, start=0, size=20)
        self.assertEqual(sent, 10000)
        got = self.notifications(h, 10000)
        self.assertEqual([seq(e) for e in got], list(range(10000)))
        self.assertTrue(all(e['service'] == NUS_N and e['chrc'] == NUS_TX_N for e in got))
        self.assertTrue(all(len(e['value']) == 40 for e in got))

    def test_read_is_not_notification(self):
        self.mock.add_device(A)
        h = self.connect(A)
        self.subscribe(h, A)
        self.mock.set_value(A, NUS, NUS_TX, 'abcdef01')
        r = h.call('read', address=A, service=NUS_N, chrc=NUS_TX_N)
        self.assertEqual((r['error'], r['value']), ('0', 'abcdef01'))
        # Unsubscribed characteristic: its read's Value signal is no notification either.
        r = h.call('read', address=A, service='180F', chrc='2A19')
        self.assertEqual((r['error'], r['value']), ('0', '64'))
        # Real notifications still pass, and are the first notifications seen at all.
        self.mock.notify(A, NUS, NUS_TX, 3, start=7, size=4)
        got = self.notifications(h, 3)
        self.assertEqual([seq(e) for e in got], [7, 8, 9])
        notes = [e for e in h.events if e['event'] == 'notification']
        self.assertEqual(len(notes), 3)
        # Reads of unknown characteristics are refused by UUID lookup.
        r = h.call('read', address=A, service='180F', chrc='2A1A')
        self.assertEqual(r['error'], 'ENOENT')
        # Same characteristic UUID under the wrong service: not found (the service UUID counts).
        r = h.call('read', address=A, service='180F', chrc=NUS_TX_N)
        self.assertEqual(r['error'], 'ENOENT')

    def test_notifications_during_read(self):
        # Value signals that arrive while a read is in flight are held; the last one equal to
        # the read's result is its echo, the others are notifications, delivered in order.
        self.mock.add_device(A)
        h = self.connect(A)
        self.subscribe(h, A)
        self.mock.set_value(A, NUS, NUS_TX, 'abcdef01')
        self.mock.notify_during_next_read(A, NUS, NUS_TX, 5, 40)
        r = h.call('read', address=A, service=NUS_N, chrc=NUS_TX_N)
        self.assertEqual((r['error'], r['value']), ('0', 'abcdef01'))
        got = [e for e in h.events if e['event'] == 'notification']
        self.assertEqual([seq(e) for e in got], [40, 41, 42, 43, 44])
        self.assertNotIn('abcdef01', [e['value'] for e in got])

    def test_acquire_notify(self):
        self.mock.add_device(A)
        h = self.connect(A, args=('--acquire-notify',))
        r = h.call('notify', address=A, service=NUS, chrc=NUS_TX, enable=True)
        self.assertEqual(r['error'], '0')
        methods = [x['method'] for x in self.mock.log() if x['method'] in ('AcquireNotify', 'StartNotify')]
        self.assertEqual(methods, ['AcquireNotify'])
        self.assertEqual(self.mock.notify(A, NUS, NUS_TX, 1000, start=0), 1000)
        self.assertEqual([seq(e) for e in self.notifications(h, 1000)], list(range(1000)))
        # bluetoothd drops the socket: acquired again with no outside action.
        self.assertTrue(self.mock.drop_acquired(A, NUS, NUS_TX))
        deadline = time.time() + 5
        while [x['method'] for x in self.mock.log()].count('AcquireNotify') < 2 and time.time() < deadline:
            time.sleep(0.05)
        self.mock.notify(A, NUS, NUS_TX, 10, start=5000)
        self.assertEqual([seq(e) for e in self.notifications(h, 10)], list(range(5000, 5010)))
        # Disabling closes the socket, which releases the subscription.
        r = h.call('notify', address=A, service=NUS, chrc=NUS_TX, enable=False)
        self.assertEqual(r['error'], '0')
        deadline = time.time() + 5
        while 'ReleaseAcquired' not in [x['method'] for x in self.mock.log()] and time.time() < deadline:
            time.sleep(0.05)
        self.assertIn('ReleaseAcquired', [x['method'] for x in self.mock.log()])
        self.assertNotIn('StartNotify', [x['method'] for x in self.mock.log()])

    # ---- writes ----

    def test_writes(self):
        self.mock.add_device(A)
        h = self.connect(A)
        rx = None
        r = h.call('write', address=A, service=NUS_N, chrc=NUS_RX_N, value='0102', mode='auto')
        self.assertEqual(r['error'], '0')
        r = h.call('write', address=A, service=NUS_N, chrc=NUS_RX_N, value='0304', mode='request')
        self.assertEqual(r['error'], '0')
        r = h.call('write', address=A, service=NUS_N, chrc=NUS_RX_N, value='05', mode='command')
        self.assertEqual(r['error'], '0')
        writes = [(x['value'], x['type']) for x in self.mock.log() if x['method'] == 'WriteValue']
        self.assertEqual(writes, [('0102', 'request'), ('0304', 'request'), ('05', 'command')])
        rx = [x['path'] for x in self.mock.log() if x['method'] == 'WriteValue'][0]
        # TX has no write flags: refused before reaching BlueZ.
        r = h.call('write', address=A, service=NUS_N, chrc=NUS_TX_N, value='00', mode='command')
        self.assertEqual(r['error'], 'EOPNOTSUPP')
        # Many queued writes: serialised, all in order, none InProgress.
        ids = [h.send('write', address=A, service=NUS_N, chrc=NUS_RX_N, value='%02x' % i, mode='request')
               for i in range(20)]
        for i in ids:
            self.assertEqual(h.wait_for(lambda e, i=i: e.get('id') == i)['error'], '0')
        vals = [x['value'] for x in self.mock.log() if x['method'] == 'WriteValue'][3:]
        self.assertEqual(vals, ['%02x' % i for i in range(20)])
        # Values are capped at 512 bytes (ATT's maximum attribute length).
        r = h.call('write', address=A, service=NUS_N, chrc=NUS_RX_N, value='ab' * 512, mode='request')
        self.assertEqual(r['error'], '0')
        r = h.call('write', address=A, service=NUS_N, chrc=NUS_RX_N, value='ab' * 513, mode='request')
        self.assertEqual(r['error'], 'EINVAL')
        self.assertEqual(len([x for x in self.mock.log() if x['method'] == 'WriteValue']), 24)
        # An ATT error from the peer is mapped.
        self.mock.inject(rx, 'WriteValue', 'org.bluez.Error.Failed', 'Operation failed with ATT error: 0x0e')
        r = h.call('write', address=A, service=NUS_N, chrc=NUS_RX_N, value='ff')
        self.assertEqual((r['error'], r['error_name'], r['att_error']), ('EIO', 'org.bluez.Error.Failed', 14))
        # Descriptors: read one, write one, and the CCCD is never written directly.
        r = h.call('read_desc', address=A, service=NUS_N, chrc=NUS_TX_N, desc='2901')
        self.assertEqual((r['error'], r['value']), ('0', b'TX'.hex()))
        r = h.call('write_desc', address=A, service=NUS_N, chrc=NUS_TX_N, desc='2901', value='5859')
        self.assertEqual(r['error'], '0')
        r = h.call('write_desc', address=A, service=NUS_N, chrc=NUS_TX_N, desc='2902', value='0100')
        self.assertEqual(r['error'], 'EPERM')
        self.assertNotIn('0100', [x.get('value') for x in self.mock.log()])

    # ---- failures, backoff, reconnects ----

    def test_connect_failure_backoff_retry(self):
        self.mock.add_device(A)
        self.mock.inject(self.mock.path(A), 'Connect', 'org.bluez.Error.Failed', 'le-connection-abort-by-local')
        h = self.connect(A)
        states = [e['new'] for e in h.events if e['event'] == 'state' and e['address'] == A]
        self.assertEqual(states, ['connecting', 'backoff', 'idle', 'connecting', 'resolving', 'ready'])
        connects = [x for x in self.mock.log() if x['method'] == 'Connect']
        self.assertEqual(len(connects), 2)
        self.assertEqual(connects[0].get('injected'), 'org.bluez.Error.Failed')

    def test_connect_already_in_progress(self):
        # Both forms: LE "Failed: Operation already in progress" and BR/EDR "InProgress". The
        # attempt that never completes ends in the resolve timeout, then a retry succeeds.
        self.mock.add_device(A)
        self.mock.inject(self.mock.path(A), 'Connect', 'org.bluez.Error.Failed', 'Operation already in progress')
        self.mock.inject(self.mock.path(A), 'Connect', 'org.bluez.Error.InProgress', 'br-connection-busy')
        h = self.connect(A, args=('--connect-timeout', '1'))
        states = [e['new'] for e in h.events if e['event'] == 'state' and e['address'] == A]
        self.assertEqual(states, ['connecting', 'resolving', 'backoff', 'idle'] * 2 +
                         ['connecting', 'resolving', 'ready'])

    def test_connect_timeout(self):
        # Connect hangs longer than ConnectTimeoutSec: our own timeout, Disconnect to cancel,
        # backoff, and the retry succeeds.
        self.mock.add_device(A)
        self.mock.delay(self.mock.path(A), 'Connect', 2.5)
        h = self.connect(A, args=('--connect-timeout', '1'))
        states = [e['new'] for e in h.events if e['event'] == 'state' and e['address'] == A]
        self.assertEqual(states[:2], ['connecting', 'backoff'])
        self.assertEqual(states[-3:], ['connecting', 'resolving', 'ready'])
        methods = [x['method'] for x in self.mock.log() if x['path'] == self.mock.path(A)]
        self.assertIn('Disconnect', methods)

    def test_operation_timeout(self):
        self.mock.add_device(A)
        h = self.connect(A, args=('--op-timeout-ms', '500'))
        r = h.call('write', address=A, service=NUS_N, chrc=NUS_RX_N, value='01')
        self.assertEqual(r['error'], '0')
        rx = [x['path'] for x in self.mock.log() if x['method'] == 'WriteValue'][0]
        self.mock.delay(rx, 'WriteValue', 0.6)  # the write queued behind it has 0.4 s of margin
        i1 = h.send('write', address=A, service=NUS_N, chrc=NUS_RX_N, value='02')
        i2 = h.send('write', address=A, service=NUS_N, chrc=NUS_RX_N, value='03')
        r1 = h.wait_for(lambda e: e.get('id') == i1)
        self.assertEqual(r1['error'], 'ETIMEDOUT')
        # The queue goes on after a timeout.
        r2 = h.wait_for(lambda e: e.get('id') == i2, timeout=5)
        self.assertEqual(r2['error'], '0')
        self.assertEqual([x['value'] for x in self.mock.log() if x['method'] == 'WriteValue'], ['01', '02', '03'])

    def test_write_commands_pipelined(self):
        # Write commands go out together, up to 4 in flight; a write request waits until they are
        # answered and goes alone; completions come in the order of the calls.  The mock stalls on
        # the first command for longer than the operation timeout: the commands sent with it time
        # out with it, the ones sent after it succeed.
        self.mock.add_device(A)
        h = self.connect(A, args=('--op-timeout-ms', '1000'))
        r = h.call('write', address=A, service=NUS_N, chrc=NUS_RX_N, value='00', mode='command')
        self.assertEqual(r['error'], '0')
        rx = [x['path'] for x in self.mock.log() if x['method'] == 'WriteValue'][0]
        self.mock.delay(rx, 'WriteValue', 1.6)
        ids = [h.send('write', address=A, service=NUS_N, chrc=NUS_RX_N, value='%02x' % i, mode='command')
               for i in range(1, 6)]
        ids.append(h.send('write', address=A, service=NUS_N, chrc=NUS_RX_N, value='06', mode='request'))
        ids.append(h.send('write', address=A, service=NUS_N, chrc=NUS_RX_N, value='07', mode='command'))
        last = h.wait_for(lambda e: e.get('id') == ids[-1], timeout=10)
        done = [e for e in h.events if e.get('id') in ids]
        self.assertEqual([e['id'] for e in done], ids)
        self.assertEqual([e['error'] for e in done], ['ETIMEDOUT'] * 4 + ['0', '0', '0'])
        self.assertEqual(last['error'], '0')
        writes = [(x['value'], x['type']) for x in self.mock.log() if x['method'] == 'WriteValue'][1:]
        self.assertEqual(writes, [('%02x' % i, 'command') for i in range(1, 6)] + [('06', 'request'),
                                                                                     ('07', 'command')])

    def test_device_disappears_and_returns(self):
        self.mock.add_device(A)
        h = self.connect(A)
        self.subscribe(h, A)
        self.mock.remove_device(A)
        h.wait_state(A, 'backoff')
        time.sleep(0.5)
        self.mock.add_device(A)
        h.wait_state(A, 'ready')
        # Re-subscribed with no outside action.
        deadline = time.time() + 5
        while not self.mock.state(A)['notifying'].get(NUS_TX) and time.time() < deadline:
            time.sleep(0.05)
        self.mock.notify(A, NUS, NUS_TX, 5, start=100)
        self.assertEqual([seq(e) for e in self.notifications(h, 5)], [100, 101, 102, 103, 104])

    def test_bluetoothd_restart(self):
        self.mock.add_device(A)
        self.mock.add_device(B)
        h = self.connect(A, B)
        self.subscribe(h, A)
        self.subscribe(h, B)
        self.mock.kill()
        h.wait_for(lambda e: e['event'] == 'bluez' and not e['present'])
        h.wait_state(A, 'idle', seen_ok=True)
        self.mock.start()
        h.wait_for(lambda e: e['event'] == 'bluez' and e['present'])
        mark = len(h.events)
        h.wait_state(A, 'ready')
        if not any(e['event'] == 'state' and e['address'] == B and e['new'] == 'ready' for e in h.events[mark:]):
            h.wait_state(B, 'ready')
        for a in (A, B):
            deadline = time.time() + 5
            while not self.mock.state(a)['notifying'].get(NUS_TX) and time.time() < deadline:
                time.sleep(0.05)
            self.assertTrue(self.mock.state(a)['notifying'][NUS_TX])
        self.mock.notify(A, NUS, NUS_TX, 50, start=1000)
        self.assertEqual([seq(e) for e in self.notifications(h, 50)], list(range(1000, 1050)))

    def test_bluetoothd_absent_at_start(self):
        self.mock.add_device(A)
        self.mock.kill()
        h = self.f.harness()
        h.call('desire', addresses=[A])
        r = h.call('scan', ms=100)
        self.assertEqual(r['error'], 'EHOSTDOWN')
        time.sleep(0.3)
        self.mock.start()
        h.wait_for(lambda e: e['event'] == 'bluez' and e['present'])
        self.ready(h, A)

    def test_desired_unknown_device_connects(self):
        # B is unknown to BlueZ until it is seen advertising: a background scan finds it.
        self.mock.add_device(B, appear_on_discovery=True, advertising=True, remember=False)
        h = self.f.harness()
        h.wait_for(lambda e: e['event'] == 'adapter')
        self.assertFalse(self.mock.state(B)['exists'])
        h.call('desire', addresses=[B])
        self.ready(h, B)
        self.assertIn('StartDiscovery', [x['method'] for x in self.mock.log()])
        # Created for us: removed from BlueZ when no longer desired.
        h.call('desire', addresses=[])
        deadline = time.time() + 5
        while self.mock.state(B)['exists'] and time.time() < deadline:
            time.sleep(0.05)
        self.assertFalse(self.mock.state(B)['exists'])

    def test_undesired_device_disconnects(self):
        self.mock.add_device(A)
        self.mock.add_device(B, appear_on_discovery=True, advertising=True)
        h = self.connect(A)
        # B is desired before BlueZ knows it; a scan makes BlueZ create it, then it connects.
        h.call('desire', addresses=[A, B])
        r = h.call('scan', ms=300)
        self.assertIn(B, [x['address'] for x in r['results']])
        self.ready(h, B)
        h.call('desire', addresses=[])
        deadline = time.time() + 5
        while (self.mock.state(A).get('connected') or self.mock.state(B)['exists']) and time.time() < deadline:
            time.sleep(0.05)
        self.assertFalse(self.mock.state(A)['connected'])  # known before: disconnected, kept
        self.assertTrue(self.mock.state(A)['exists'])
        self.assertFalse(self.mock.state(B)['exists'])  # created for us: removed from BlueZ
        self.assertIn('Disconnect', [x['method'] for x in self.mock.log() if x['path'] == self.mock.path(A)])
        r = h.call('status')
        self.assertEqual(r['slots'], 0)

    def test_max_connections_lowered_by_reload(self):
        devs = [A, B, C]
        for a in devs:
            self.mock.add_device(a)
        h = self.connect(*devs)
        mark = len(h.events)
        h.call('set_max_connections', value=1)
        h.wait_state(C, 'idle', since=mark)
        h.wait_state(B, 'idle', since=mark)
        deadline = time.time() + 5
        while sum(self.mock.state(a)['connected'] for a in devs) > 1 and time.time() < deadline:
            time.sleep(0.05)
        self.assertEqual([a for a in devs if self.mock.state(a)['connected']], [A])  # the first desired stays
        self.assertEqual(h.call('status')['slots'], 1)
        mark = len(h.events)
        h.call('set_max_connections', value=3)
        h.wait_state(B, 'ready', since=mark)
        h.wait_state(C, 'ready', since=mark)

    def test_link_loss_frees_slot(self):
        # MaxConnections=1: A holds the slot, B waits.  A's link drops: A backs off, B gets the
        # slot, and A waits in the queue until B leaves.
        self.mock.add_device(A)
        self.mock.add_device(B)
        h = self.f.harness('--max-connections', '1', '--backoff-ms', '100,200')
        h.wait_for(lambda e: e['event'] == 'adapter')
        h.call('desire', addresses=[A, B])
        self.ready(h, A)
        self.subscribe(h, A)
        self.mock.link_loss(A)
        h.wait_state(A, 'backoff')
        self.ready(h, B)
        time.sleep(0.5)  # several backoff periods: A must still be waiting for the slot
        self.assertEqual(h.call('status')['slots'], 1)
        self.assertFalse(self.mock.state(A)['connected'])
        mark = len(h.events)
        h.call('desire', addresses=[A])
        h.wait_state(A, 'ready', since=mark)  # the second time
        # Reconnected after the link loss with the subscription made again (StartNotify is
        # repeated even though BlueZ keeps sessions across reconnects: it costs nothing there and
        # covers a cleared GATT cache).
        deadline = time.time() + 5
        starts = []
        while len(starts) < 2 and time.time() < deadline:
            starts = [x for x in self.mock.log()
                      if x['method'] == 'StartNotify' and x['path'].startswith(self.mock.path(A))]
            time.sleep(0.05)
        self.assertEqual(len(starts), 2)
        self.mock.notify(A, NUS, NUS_TX, 3, start=9)
        self.assertEqual([seq(e) for e in self.notifications(h, 3)], [9, 10, 11])
        self.assertTrue(all(e['slots'] <= 1 for e in h.events if e['event'] == 'state'))

    def test_max_connections_queue(self):
        devs = [A, B, C, D]
        for a in devs:
            self.mock.add_device(a)
        h = self.f.harness('--max-connections', '2')
        h.wait_for(lambda e: e['event'] == 'adapter')
        h.call('desire', addresses=devs)
        self.ready(h, A)
        self.ready(h, B)
        time.sleep(0.5)
        self.assertEqual([a for a in devs if self.mock.state(a)['connected']], [A, B])
        h.call('desire', addresses=[B, C, D])  # A leaves: C takes its slot
        self.ready(h, C)
        time.sleep(0.3)
        self.assertEqual([a for a in devs if self.mock.state(a)['connected']], [B, C])
        h.call('desire', addresses=[D])  # B and C leave: D connects
        self.ready(h, D)
        self.assertTrue(all(e['slots'] <= 2 for e in h.events if e['event'] == 'state'))
        time.sleep(0.3)
        self.assertEqual([a for a in devs if self.mock.state(a)['connected']], [D])


if __name__ == '__main__':
    only = os.environ.get('BLE_TEST')
    argv = [sys.argv[0], '-v'] + (['BleTest.' + only] if only else [])
    unittest.main(argv=argv)
