#!/usr/bin/env python3
"""deskvm's ACPI tables through ACPICA's iasl: tests/unit/test-acpi-tables --dump writes each table as a
file, `iasl -d` must disassemble every one without errors, the disassembly must say what Linux needs (PCI root
bridge, _PRT, ISA devices, _S5, CPUs in the MADT, PM block in the FADT, ECAM in the MCFG), and the DSDT must
recompile and disassemble to the same ASL again. The RSDP is checked here directly: iasl cannot load a bare
RSDP (it reads its bytes 4-7 as a table length). Env: DESKVM_BUILDDIR, DESKVM_SRCDIR."""
import os
import re
import shutil
import struct
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from deskvm_harness import BUILDDIR, tmpdir  # noqa: E402
from tap import Tap  # noqa: E402

t = Tap()
DUMPER = os.path.join(BUILDDIR, "tests", "unit", "test-acpi-tables")
IASL = shutil.which("iasl")
TABLES = ["DSDT", "FACP", "FACS", "APIC", "MCFG", "XSDT", "RSDT"]
TABLES_BASE, TABLES_END = 0xE0000, 0x100000


def run(cmd, cwd=None, timeout=60):
    return subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          stdin=subprocess.DEVNULL, timeout=timeout)


def iasl_errors(out):
    """Error lines of an iasl run (its summary line says "N Errors", which is not one)."""
    return [l for l in out.splitlines() if re.search(r"\bError\b", l) or "does not contain a valid" in l]


def dump(cpus):
    """Dumps the tables of a machine with `cpus` CPUs and disassembles each. Returns (dir, {sig: dsl})."""
    d = tmpdir()
    r = run([DUMPER, "--dump", d, "--cpus", str(cpus)])
    t.ok(r.returncode == 0, f"--cpus {cpus}: test-acpi-tables --dump succeeds", r.stdout)
    dsl = {}
    for sig in TABLES:
        r = run([IASL, "-d", f"{sig}.dat"], cwd=d)
        path = os.path.join(d, f"{sig}.dsl")
        good = r.returncode == 0 and not iasl_errors(r.stdout) and os.path.exists(path)
        t.ok(good, f"--cpus {cpus}: iasl -d {sig}.dat without errors", r.stdout)
        dsl[sig] = open(path).read() if os.path.exists(path) else ""
    return d, dsl


def field(text, name):
    """The value of `name : value` in a data table disassembly, or None."""
    m = re.search(r"^\[[0-9A-F]+h [0-9]+ +[0-9]+\] +" + re.escape(name) + r" : (.*)$", text, re.M)
    return m.group(1).strip() if m else None


def subtables(text):
    """A data table's subtables, as lists of (name, value) in order, split at each "Subtable Type" line."""
    out = []
    for line in text.splitlines():
        m = re.match(r"^\[[0-9A-F]+h [0-9]+ +[0-9]+\] +(.*?) : (.*)$", line)
        if not m:
            continue
        name, value = m.group(1).strip(), m.group(2).strip()
        if name == "Subtable Type":
            out.append([])
        if out:
            out[-1].append((name, value))
    return out


def device_block(dsl, name):
    """The text of `Device (name) { ... }` in an ASL listing, or ""."""
    m = re.search(r"Device \(" + re.escape(name) + r"\)\s*\{", dsl)
    if not m:
        return ""
    depth, i = 1, m.end()
    while i < len(dsl) and depth:
        depth += {"{": 1, "}": -1}.get(dsl[i], 0)
        i += 1
    return dsl[m.start():i]


def check_dsdt(dsl, cpus):
    t.ok('Name (_HID, EisaId ("PNP0A08")' in dsl and 'Name (_CID, EisaId ("PNP0A03")' in dsl,
         "DSDT: PCI0 is a PCI Express root bridge (PNP0A08, compatible PNP0A03)")
    pci0 = device_block(dsl, "PCI0")
    for what in ["_SEG, Zero", "_BBN, Zero", "_UID, Zero"]:
        t.ok(f"Name ({what})" in pci0, f"DSDT: PCI0 has {what}")
    crs = pci0[pci0.find("Name (_CRS"):pci0.find("Name (_PRT")]
    t.ok(re.search(r"WordBusNumber \(ResourceProducer.*?0x0000,\s*// Range Minimum\s*0x00FF,", crs, re.S),
         "DSDT: PCI0 decodes buses 0-255", crs)
    t.ok(re.search(r"0x0000,\s*// Range Minimum\s*0x0CF7,", crs) and
         re.search(r"0x0D00,\s*// Range Minimum\s*0xFFFF,", crs), "DSDT: PCI0 I/O windows around 0xCF8", crs)
    mem32 = r"DWordMemory \(ResourceProducer.*?0xC0000000,\s*// Range Minimum\s*0xFEBFFFFF,"
    t.ok(re.search(mem32, crs, re.S), "DSDT: PCI0 32-bit window 0xC0000000-0xFEBFFFFF", crs)
    t.ok("QWordMemory (ResourceProducer" in crs, "DSDT: PCI0 has a 64-bit window", crs)

    m = re.search(r"Name \(_PRT, Package \((0x[0-9A-F]+)\)", pci0)
    t.ok(m and int(m.group(1), 16) == 128, "DSDT: _PRT declares 128 entries", m and m.group(0))
    entry = r"Package \(0x04\)\s*\{\s*(0x[0-9A-F]+),\s*(Zero|One|0x0[23]),\s*Zero,\s*(0x[0-9A-F]+)\s*\}"
    entries = re.findall(entry, pci0)
    num = {"Zero": 0, "One": 1}
    routes = {}
    for addr, pin, gsi in entries:
        a = int(addr, 16)
        routes[(a >> 16, num[pin] if pin in num else int(pin, 16), a & 0xFFFF)] = int(gsi, 16)
    want = {(s, p, 0xFFFF): 16 + (s + p) % 4 for s in range(32) for p in range(4)}
    t.eq(len(entries), 128, "DSDT: _PRT has 128 {slot, pin, 0, GSI} entries")
    t.ok(routes == want, "DSDT: _PRT routes slot s pin p to GSI 16 + (s + p) % 4",
         sorted(set(want.items()) ^ set(routes.items()))[:8])

    isa = [("COM1", "PNP0501", ["0x03F8", "0x08,", "{4}"]), ("RTC", "PNP0B00", ["0x0070", "0x02,", "{8}"]),
           ("KBD", "PNP0303", ["0x0060", "0x0064", "{1}"]), ("MOU", "PNP0F13", ["{12}"])]
    for name, hid, needles in isa:
        block = device_block(pci0, name)
        good = f'EisaId ("{hid}")' in block and all(n in block for n in needles)
        t.ok(good, f"DSDT: {name} ({hid}) with {', '.join(needles)}", block or "no such device")

    mres = device_block(dsl, "MRES")
    t.ok('EisaId ("PNP0C02")' in mres and re.search(r"0xB0000000,\s*// Address Base\s*0x10000000,", mres),
         "DSDT: motherboard resources reserve the ECAM window", mres)
    t.eq(len(re.findall(r'Name \(_HID, "ACPI0007"', dsl)), cpus, f"DSDT: {cpus} processor devices")
    t.ok(re.search(r"Name \(\\?_S5, Package \(0x04\)[^{]*\{\s*0x05,\s*0x05,\s*Zero,\s*Zero\s*\}", dsl),
         "DSDT: \\_S5 is {5, 5, 0, 0}")


def check_apic(dsl, cpus):
    t.eq(field(dsl, "Local Apic Address"), "FEE00000", f"APIC --cpus {cpus}: local APIC at FEE00000")
    subs = subtables(dsl)
    lapics = [dict(s) for s in subs if s[0][1].startswith("00 ")]
    t.eq(len(lapics), cpus, f"APIC --cpus {cpus}: {cpus} Processor Local APIC entries")
    t.ok(all(l["Processor ID"] == l["Local Apic ID"] == f"{i:02X}" for i, l in enumerate(lapics)),
         f"APIC --cpus {cpus}: processor UID = APIC ID = index", lapics)
    ioapics = [dict(s) for s in subs if s[0][1].startswith("01 ")]
    t.ok(len(ioapics) == 1 and ioapics[0]["Address"] == "FEC00000" and ioapics[0]["Interrupt"] == "00000000",
         f"APIC --cpus {cpus}: one I/O APIC at FEC00000, GSI base 0", ioapics)
    isos = {d["Source"]: d for d in (dict(s) for s in subs if s[0][1].startswith("02 "))}
    t.ok("00" in isos and isos["00"]["Interrupt"] == "00000002",
         f"APIC --cpus {cpus}: IRQ0 -> GSI 2 override", isos)
    sci = isos.get("09", {})
    t.ok(sci.get("Interrupt") == "00000009" and sci.get("Flags (decoded below)") == "000D",
         f"APIC --cpus {cpus}: SCI IRQ 9 -> GSI 9 level, active high", isos)
    nmis = [dict(s) for s in subs if s[0][1].startswith("04 ")]
    t.ok(len(nmis) == 1 and nmis[0]["Processor ID"] == "FF" and nmis[0]["Interrupt Input LINT"] == "01",
         f"APIC --cpus {cpus}: local APIC NMI on LINT1 of every processor", nmis)


def check_facp(dsl):
    want = {
        "PM1A Event Block Address": "00000600",
        "PM1A Control Block Address": "00000604",
        "PM Timer Block Address": "00000608",
        "GPE0 Block Address": "00000620",
        "SCI Interrupt": "0009",
        "SMI Command Port": "00000000",
        "Value to cause reset": "06",
        "Reset Register Supported (V2)": "1",
        "32-bit PM Timer (V1)": "1",
        "Hardware Reduced (V5)": "0",
        "Control Method Power Button (V1)": "0",
        "8042 Present on ports 60/64 (V2)": "1",
    }
    for name, value in want.items():
        got = field(dsl, name)
        if got is None:  # decoded flag lines have no offset prefix
            m = re.search(r"^\s*" + re.escape(name) + r" : (\S+)", dsl, re.M)
            got = m.group(1) if m else None
        t.eq(got, value, f"FACP: {name} = {value}")
    reset = dsl[dsl.find("Reset Register"):dsl.find("Value to cause reset")]
    t.ok("[SystemIO]" in reset and "0000000000000CF9" in reset, "FACP: reset register is I/O port 0xCF9",
         reset)
    x_evt = dsl[dsl.find("PM1A Event Block :"):dsl.find("PM1B Event Block :")]
    t.ok("[SystemIO]" in x_evt and "0000000000000600" in x_evt, "FACP: X_PM1a_EVT_BLK is I/O 0x600", x_evt)
    facs, dsdt = field(dsl, "FACS Address"), field(dsl, "DSDT Address")
    inside = lambda v: v is not None and TABLES_BASE <= int(v, 16) < TABLES_END  # noqa: E731
    t.ok(inside(facs) and inside(dsdt), "FACP: FACS and DSDT lie in 0xE0000-0xFFFFF", (facs, dsdt))


def check_rsdp(d):
    raw = open(os.path.join(d, "RSDP.dat"), "rb").read()
    t.eq(len(raw), 36, "RSDP: 36 bytes")
    if len(raw) != 36:
        return
    sig, csum, oem, rev, rsdt, length, xsdt, xcsum = struct.unpack("<8sB6sBIIQB3x", raw)
    t.eq(sig, b"RSD PTR ", "RSDP: signature")
    t.eq(rev, 2, "RSDP: revision 2")
    t.eq(sum(raw[:20]) & 0xFF, 0, "RSDP: checksum of the first 20 bytes")
    t.eq(sum(raw) & 0xFF, 0, "RSDP: extended checksum")
    t.ok(TABLES_BASE <= xsdt < TABLES_END and TABLES_BASE <= rsdt < TABLES_END,
         "RSDP: XSDT and RSDT in 0xE0000-0xFFFFF", (hex(xsdt), hex(rsdt)))


def check_recompile(d):
    """iasl compiles the disassembled DSDT, and the result disassembles to the same ASL."""
    r = run([IASL, "DSDT.dsl"], cwd=d)
    t.ok(r.returncode == 0 and re.search(r"\b0 Errors\b", r.stdout) and not iasl_errors(r.stdout),
         "DSDT: the disassembly recompiles without errors", r.stdout)
    if re.search(r"\b[1-9][0-9]* Warnings\b", r.stdout):
        t.diag(r.stdout)
    body = lambda s: s[s.find("DefinitionBlock"):]  # noqa: E731 - the part after the header comment
    first = open(os.path.join(d, "DSDT.dsl")).read()
    os.rename(os.path.join(d, "DSDT.aml"), os.path.join(d, "DSDT2.aml"))
    r = run([IASL, "-d", "DSDT2.aml"], cwd=d)
    second = open(os.path.join(d, "DSDT2.dsl")).read() if os.path.exists(os.path.join(d, "DSDT2.dsl")) else ""
    t.ok(r.returncode == 0 and body(first) == body(second), "DSDT: compile/disassemble round trip is stable",
         r.stdout)


def main():
    if not IASL:
        t.skip("iasl checks", "iasl not installed (Debian package acpica-tools)")
        return
    if not os.path.exists(DUMPER):
        t.ok(False, "tests/unit/test-acpi-tables is built", DUMPER)
        return
    d4, dsl4 = dump(4)
    check_dsdt(dsl4["DSDT"], 4)
    check_apic(dsl4["APIC"], 4)
    check_facp(dsl4["FACP"])
    t.eq(field(dsl4["MCFG"], "Base Address"), "00000000B0000000", "MCFG: ECAM base 0xB0000000")
    t.eq((field(dsl4["MCFG"], "Start Bus Number"), field(dsl4["MCFG"], "End Bus Number")), ("00", "FF"),
         "MCFG: buses 0-255")
    for sig in ("XSDT", "RSDT"):
        t.eq(len(re.findall(r"ACPI Table Address +\d+ :", dsl4[sig])), 3, f"{sig}: three entries")
    t.eq(field(dsl4["FACS"], "Length"), "00000040", "FACS: 64 bytes")
    check_rsdp(d4)
    check_recompile(d4)

    d1, dsl1 = dump(1)
    check_apic(dsl1["APIC"], 1)
    check_dsdt(dsl1["DSDT"], 1)
    d64, dsl64 = dump(64)
    check_apic(dsl64["APIC"], 64)
    t.eq(len(re.findall(r'Name \(_HID, "ACPI0007"', dsl64["DSDT"])), 64,
         "DSDT --cpus 64: 64 processor devices")
    for d in (d1, d4, d64):
        shutil.rmtree(d, ignore_errors=True)


t.run(main, "acpi iasl")
t.done()
