"""Checks the images `make images` wrote to target/images (OCI archives):
what is in them, who they run as, their labels, their sizes against the
targets, and that a second build gives the same digests.

    python3 tests/images/check_images.py [--rebuild]

--rebuild runs `scripts/build-images.sh --no-cargo` again into a scratch copy
of the digests and compares (the binaries are not rebuilt: their own
reproducibility is a property of the dist profile and the remapped paths, see
scripts/build-images.sh). Prints `N passed, N failed`.
"""

import gzip
import io
import json
import os
import re
import subprocess
import sys
import tarfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "target/images")
MiB = 1024 * 1024
# name: (binary, compressed limit, unpacked limit), from issue 15's targets.
IMAGES = {
    "tollgate-proxy": ("/tollgate-proxy", 10 * MiB, 25 * MiB),
    "tollgate-operator": ("/tollgate-operator", 20 * MiB, 50 * MiB),
}

results = []


def check(name, fn):
    try:
        detail = fn()
        results.append(True)
        print(f"ok   - {name}" + (f": {detail}" if detail else ""))
    except Exception as e:  # noqa: BLE001
        results.append(False)
        print(f"FAIL - {name}: {e}")


def workspace_version():
    with open(os.path.join(ROOT, "Cargo.toml")) as f:
        text = f.read()
    section = text.split("[workspace.package]", 1)[1]
    return re.search(r'^version = "([^"]+)"', section, re.M).group(1)


class Archive:
    def __init__(self, path):
        self.tar = tarfile.open(path)

    def blob(self, digest):
        algo, hexd = digest.split(":")
        return self.tar.extractfile(f"blobs/{algo}/{hexd}").read()

    def manifest(self):
        index = json.loads(self.tar.extractfile("index.json").read())
        assert len(index["manifests"]) == 1, "one image per archive"
        desc = index["manifests"][0]
        return desc, json.loads(self.blob(desc["digest"]))


def image_checks(name, binary, max_gz, max_raw):
    path = os.path.join(OUT, f"{name}.tar")
    ar = Archive(path)
    desc, manifest = ar.manifest()
    config = json.loads(ar.blob(manifest["config"]["digest"]))
    version = workspace_version()

    def digest_file():
        with open(os.path.join(OUT, f"{name}.digest")) as f:
            recorded = f.read().strip()
        assert recorded == desc["digest"], f"{recorded} != archive {desc['digest']}"

    def ref_name():
        ref = desc.get("annotations", {}).get("org.opencontainers.image.ref.name", "")
        assert ref.endswith(f"/{name}:{version}") or ref == version, ref

    def runs_as():
        c = config["config"]
        assert c.get("User") == "65532:65532", c.get("User")
        assert c.get("Entrypoint") == [binary], c.get("Entrypoint")
        assert config["os"] == "linux" and config["architecture"] == "amd64"

    def labels():
        lab = config["config"].get("Labels", {})
        want = {
            "org.opencontainers.image.version": version,
            "org.opencontainers.image.licenses": "Apache-2.0",
            "org.opencontainers.image.title": name,
        }
        for k, v in want.items():
            assert lab.get(k) == v, f"{k}={lab.get(k)!r}, want {v!r}"
        assert lab.get("org.opencontainers.image.source", "").startswith("https://")
        assert re.fullmatch(r"[0-9a-f]{40}|unknown", lab.get("org.opencontainers.image.revision", "")), lab
        assert "io.buildah.version" not in lab, "no build-host label"

    contents = {}
    sizes = {"gz": 0, "raw": 0}

    def only_the_binary():
        assert len(manifest["layers"]) == 1, f"{len(manifest['layers'])} layers"
        layer = manifest["layers"][0]
        assert layer["mediaType"].endswith("tar+gzip"), layer["mediaType"]
        gz = ar.blob(layer["digest"])
        raw = gzip.decompress(gz)
        sizes["gz"], sizes["raw"] = len(gz), len(raw)
        with tarfile.open(fileobj=io.BytesIO(raw)) as t:
            for m in t.getmembers():
                contents[m.name.lstrip("./")] = m
        files = [n for n, m in contents.items() if not m.isdir()]
        assert files == [binary.lstrip("/")], f"files in the image: {files}"
        m = contents[binary.lstrip("/")]
        assert m.mode & 0o777 == 0o555 and m.uid == 0, f"mode {oct(m.mode)} uid {m.uid}"

    def static_binary():
        m = contents[binary.lstrip("/")]
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress(ar.blob(manifest["layers"][0]["digest"])))) as t:
            elf = t.extractfile(m).read()
        assert elf[:4] == b"\x7fELF", "an ELF binary"
        # No PT_INTERP program header: nothing to load it, so it needs no libc.
        e_phoff = int.from_bytes(elf[32:40], "little")
        e_phentsize = int.from_bytes(elf[54:56], "little")
        e_phnum = int.from_bytes(elf[56:58], "little")
        types = [int.from_bytes(elf[e_phoff + i * e_phentsize : e_phoff + i * e_phentsize + 4], "little") for i in range(e_phnum)]
        assert 3 not in types, "has an ELF interpreter (dynamically linked)"
        assert b".symtab" not in elf, "not stripped"

    def sizes_within():
        assert sizes["gz"] <= max_gz, f"compressed {sizes['gz'] / MiB:.1f} MiB > {max_gz / MiB:.0f}"
        assert sizes["raw"] <= max_raw, f"unpacked {sizes['raw'] / MiB:.1f} MiB > {max_raw / MiB:.0f}"
        return f"{sizes['gz'] / MiB:.1f} MiB compressed, {sizes['raw'] / MiB:.1f} MiB unpacked"

    check(f"{name}: digest file matches the archive", digest_file)
    check(f"{name}: named <registry>/{name}:{version}", ref_name)
    check(f"{name}: user 65532, the binary as entrypoint", runs_as)
    check(f"{name}: OCI labels", labels)
    check(f"{name}: one layer holding only the binary", only_the_binary)
    check(f"{name}: static and stripped", static_binary)
    check(f"{name}: size", sizes_within)


def rebuild_same_digests():
    before = {n: open(os.path.join(OUT, f"{n}.digest")).read().strip() for n in IMAGES}
    subprocess.run([os.path.join(ROOT, "scripts/build-images.sh"), "--no-cargo"], check=True, capture_output=True)
    after = {n: open(os.path.join(OUT, f"{n}.digest")).read().strip() for n in IMAGES}
    assert before == after, f"{before} != {after}"
    return ", ".join(f"{n} {d[:19]}" for n, d in after.items())


def main():
    for name, (binary, gz, raw) in IMAGES.items():
        image_checks(name, binary, gz, raw)
    if "--rebuild" in sys.argv:
        check("a second build gives the same digests", rebuild_same_digests)
    print(f"{results.count(True)} passed, {results.count(False)} failed")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
