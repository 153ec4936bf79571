# SPDX-License-Identifier: MIT
"""The udev rule systemd/70-nrfcloud-gateway.rules.

bookworm's udev (252) has no `udevadm verify`, so the rule is checked three ways:
  * a syntax check of every line (keys, operators, quoting, GOTO targets);
  * an evaluation of the rule, with udev's matching semantics (ATTRS and
    SUBSYSTEMS on one parent, `|` alternatives, globs, GOTO/LABEL), against
    the USB attributes of the boards the rule documents: nRF9160 DK,
    nRF9161 DK, Thingy:91, Thingy:91 X, another Nordic device, an FTDI
    adapter, the Pi's UART;
  * where the test may make a private mount namespace (root), udev's own
    parser: `udevadm test` on the pty multiplexer with only this rule, its Pi
    pattern enabled, in a namespace whose /dev and /run are private tmpfs
    (udevadm test applies what it computes: never on the real /dev).
"""

import fnmatch
import os
import re
import shutil
import subprocess
import tempfile
import unittest

SOURCE = os.environ.get("NRFGW_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
RULE = os.path.join(SOURCE, "systemd", "70-nrfcloud-gateway.rules")

TOKEN = re.compile(r'\s*([A-Z_]+)(?:\{([^}]*)\})?\s*(==|!=|\+=|-=|:=|=)\s*"((?:[^"\\]|\\.)*)"\s*(,|$)')
MATCH_KEYS = {"ACTION", "SUBSYSTEM", "KERNEL", "SUBSYSTEMS", "ATTRS", "ENV", "ATTR", "DRIVERS", "KERNELS"}
ASSIGN_KEYS = {"ENV", "SYMLINK", "GROUP", "MODE", "OWNER", "GOTO", "LABEL", "IMPORT", "TAG", "RUN"}
WITH_ATTR = {"ATTRS", "ENV", "ATTR", "IMPORT"}


def parse(text):
    """[(lineno, [(key, attr, op, value)])]; raises AssertionError on a malformed line."""
    rules = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        pos, tokens = 0, []
        while pos < len(line):
            m = TOKEN.match(line, pos)
            if not m:
                raise AssertionError("line %d: cannot parse %r" % (n, line[pos:]))
            key, attr, op, value, sep = m.groups()
            if op in ("==", "!="):
                assert key in MATCH_KEYS, "line %d: %s is not a match key" % (n, key)
            else:
                assert key in ASSIGN_KEYS, "line %d: %s cannot be assigned" % (n, key)
            assert (attr is not None) == (key in WITH_ATTR), "line %d: %s{...} misused" % (n, key)
            tokens.append((key, attr, op, value))
            pos = m.end()
            if not sep:
                break
        assert pos == len(line.rstrip()) or not line[pos:].strip(), "line %d: trailing text" % n
        rules.append((n, tokens))
    labels = {v for _, toks in rules for k, _, _, v in toks if k == "LABEL"}
    for n, toks in rules:
        for k, _, _, v in toks:
            if k == "GOTO":
                assert v in labels, "line %d: GOTO %s has no LABEL" % (n, v)
    return rules


def glob_match(pattern, value):
    if value is None:
        return False
    return any(fnmatch.fnmatchcase(value, alt) for alt in pattern.split("|"))


class Device:
    """A tty with its parents: [(subsystem, {attr: value})], nearest first; env from usb_id."""

    def __init__(self, kernel, parents=(), usb_id=None, action="add"):
        self.kernel, self.parents, self.usb_id, self.action = kernel, list(parents), usb_id or {}, action
        self.env, self.links, self.group, self.mode = {}, [], None, None


def usb_tty(kernel, vid, pid, interface):
    return Device(kernel,
                  parents=[("usb", {"bInterfaceNumber": interface}), ("usb", {"idVendor": vid, "idProduct": pid})],
                  usb_id={"ID_VENDOR_ID": vid, "ID_MODEL_ID": pid, "ID_USB_INTERFACE_NUM": interface})


def evaluate(rules, dev):
    """Applies the rules to dev with udev's semantics for the keys the rule uses."""
    i = 0
    labels = {v: idx for idx, (_, toks) in enumerate(rules) for k, _, _, v in toks if k == "LABEL"}
    while i < len(rules):
        _, toks = rules[i]
        i += 1
        parent_keys = [(k, a, op, v) for k, a, op, v in toks if k in ("SUBSYSTEMS", "ATTRS")]
        ok = True
        for k, a, op, v in toks:
            if op not in ("==", "!="):
                continue
            if k == "ACTION":
                got = dev.action
            elif k == "SUBSYSTEM":
                got = "tty"
            elif k == "KERNEL":
                got = dev.kernel
            elif k == "ENV":
                got = dev.env.get(a, "")
            else:
                continue
            if glob_match(v, got) != (op == "=="):
                ok = False
                break
        if ok and parent_keys:
            # Every SUBSYSTEMS/ATTRS key of a rule must match on one and the same parent.
            def parent_ok(p):
                sub, attrs = p
                for k, a, op, v in parent_keys:
                    got = sub if k == "SUBSYSTEMS" else attrs.get(a)
                    if glob_match(v, got) != (op == "=="):
                        return False
                return True
            ok = any(parent_ok(p) for p in dev.parents)
        if not ok:
            continue
        for k, a, op, v in toks:
            if op in ("==", "!="):
                continue
            if k == "ENV":
                dev.env[a] = v
            elif k == "IMPORT" and a == "builtin" and v == "usb_id":
                dev.env.update(dev.usb_id)
            elif k == "SYMLINK":
                dev.links.append(v)
            elif k == "GROUP":
                dev.group = v
            elif k == "MODE":
                dev.mode = v
            elif k == "GOTO":
                i = labels[v]
    return dev


class UdevRuleTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with open(RULE) as f:
            cls.text = f.read()
        cls.rules = parse(cls.text)

    def run_on(self, dev, rules=None):
        return evaluate(rules or self.rules, dev)

    def assert_modem(self, dev):
        self.assertEqual(dev.links, ["nrf91"], dev.kernel)
        self.assertEqual(dev.group, "nrfcloud-gateway")
        self.assertEqual(dev.mode, "0660")
        self.assertEqual(dev.env.get("ID_MM_DEVICE_IGNORE"), "1")

    def assert_not_modem(self, dev, mm_ignored):
        self.assertEqual(dev.links, [], dev.kernel)
        self.assertIsNone(dev.group)
        self.assertEqual(dev.env.get("ID_MM_DEVICE_IGNORE") == "1", mm_ignored, dev.kernel)

    def test_at_port_of_each_board(self):
        # nRF9160 DK (J-Link OB, three VCOMs) and nRF9161 DK (two): VCOM0 is interface 00.
        self.assert_modem(self.run_on(usb_tty("ttyACM0", "1366", "1055", "00")))
        self.assert_modem(self.run_on(usb_tty("ttyACM3", "1366", "1051", "00")))
        # Thingy:91 and Thingy:91 X connectivity bridges: UART_0 is the first CDC ACM port.
        self.assert_modem(self.run_on(usb_tty("ttyACM1", "1915", "9100", "00")))
        self.assert_modem(self.run_on(usb_tty("ttyACM2", "1915", "910a", "00")))

    def test_other_ports_of_the_boards(self):
        for vid, pid, intf in (("1366", "1055", "02"), ("1366", "1055", "04"), ("1366", "1051", "02"),
                               ("1915", "9100", "02"), ("1915", "910a", "02")):
            self.assert_not_modem(self.run_on(usb_tty("ttyACM5", vid, pid, intf)), mm_ignored=True)

    def test_other_devices(self):
        # Another Nordic device (nRF52840 dongle): kept from ModemManager, no link.
        self.assert_not_modem(self.run_on(usb_tty("ttyACM0", "1915", "521f", "00")), mm_ignored=True)
        # An FTDI adapter, another J-Link, a real modem: untouched.
        self.assert_not_modem(self.run_on(usb_tty("ttyUSB0", "0403", "6001", "00")), mm_ignored=False)
        self.assert_not_modem(self.run_on(usb_tty("ttyACM0", "1366", "1015", "00")), mm_ignored=False)
        self.assert_not_modem(self.run_on(usb_tty("ttyACM0", "2c7c", "0125", "00")), mm_ignored=False)
        # The Pi's UART: only with the documented pattern enabled.
        self.assert_not_modem(self.run_on(Device("ttyAMA0", parents=[("amba", {})])), mm_ignored=False)
        # Removal: nothing.
        d = usb_tty("ttyACM0", "1915", "9100", "00")
        d.action = "remove"
        self.assert_not_modem(self.run_on(d), mm_ignored=False)

    def test_pi_uart_pattern(self):
        self.assertIn('\n#KERNEL=="ttyAMA0", ENV{NRFCLOUD_GATEWAY_MODEM}="1"\n', self.text)
        enabled = parse(self.text.replace('\n#KERNEL=="ttyAMA0"', '\nKERNEL=="ttyAMA0"'))
        self.assert_modem(self.run_on(Device("ttyAMA0", parents=[("amba", {})]), enabled))
        self.assert_not_modem(self.run_on(Device("ttyAMA1", parents=[("amba", {})]), enabled), mm_ignored=False)

    def test_parser_refuses_mistakes(self):
        for bad in ('KERNEL=="ttyACM*" SYMLINK+="x"', 'ATTRS{idVendor}="1915"', 'ENV=="1"', 'GOTO="nowhere"',
                    'SYMLINK+="nrf91'):
            with self.assertRaises(AssertionError, msg=bad):
                parse(bad + "\n")

    @unittest.skipUnless(shutil.which("udevadm") and shutil.which("unshare") and os.geteuid() == 0,
                         "needs root, udevadm and unshare")
    def test_udevadm_parses_it(self):
        with tempfile.TemporaryDirectory() as d:
            rules = os.path.join(d, "rules")
            os.mkdir(rules)
            with open(os.path.join(rules, "70-nrfcloud-gateway.rules"), "w") as f:
                # The Pi pattern, aimed at a tty every machine has.
                f.write(self.text.replace('\n#KERNEL=="ttyAMA0"', '\nKERNEL=="ptmx"'))
            script = ("set -e; mount --make-rprivate /; mount -t tmpfs none /dev; mknod -m 666 /dev/ptmx c 5 2; "
                      "mount -t tmpfs none /run; "
                      "for x in /etc/udev/rules.d /lib/udev/rules.d /usr/lib/udev/rules.d /usr/local/lib/udev/rules.d; "
                      "do [ -d $x ] && mount --bind %s $x; done; "
                      "udevadm test --action=add /sys/class/tty/ptmx" % rules)
            r = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=60)
            if r.returncode != 0 and ("unshare failed" in r.stderr or "Operation not permitted" in r.stderr):
                self.skipTest("no private mount namespace here: " + r.stderr.strip())
            out = r.stdout + r.stderr
            self.assertEqual(r.returncode, 0, out)
            self.assertIn("70-nrfcloud-gateway.rules", out)
            for bad in ("Invalid", "invalid", "Unknown key", "ignoring"):
                for line in out.splitlines():
                    if "70-nrfcloud-gateway.rules" in line and bad in line and "Unknown group" not in line:
                        self.fail("udev complains: " + line)
            self.assertIn("DEVLINKS=/dev/nrf91", out)
            self.assertIn("ID_MM_DEVICE_IGNORE=1", out)
            self.assertIn("NRFCLOUD_GATEWAY_MODEM=1", out)


if __name__ == "__main__":
    unittest.main(verbosity=2)
