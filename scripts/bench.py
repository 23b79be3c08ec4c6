"""The mssfs benchmark: every workload against a raw parallel S3 client, in the same run.

It starts its own SeaweedFS on loopback (``mssfs.devserver``), then runs each workload
several times through mssfs and through the baseline (boto3, the reference S3 client,
with the same part size and concurrency), and prints medians and the ratio
mssfs/baseline (higher is better for rates, lower for times). The machines are shared
and noisy: read the ratios, not single times; nothing here is a pass/fail test.

Workloads (``--only NAME`` selects some; ``--quick`` uses smaller sizes):

  client-upload, client-download   the store client's parallel transfer vs boto3
  mount-read                       cold ``dd bs=1M`` of a large object through the mount
                                   vs boto3 download_file
  mount-ls                         ``ls -l`` of 10,000 objects on a fresh mount vs a raw
                                   paginated listing
  mount-random                     random 4 KiB reads (cold, then with the disk cache
                                   warm) vs raw ranged GETs
  mount-write                      ``dd bs=1M`` of a large file until close returns vs
                                   boto3 upload_file (the source in the page cache, then
                                   read from disk)
  mount-small                      ``cp -r`` of 1,000 files of 4 KiB vs raw sequential
                                   put_object (with S3 requests per file)
  mount-tar                        ``tar x`` of a source tarball vs raw sequential puts
  mount-mv                         ``mv`` of a 100 MiB file vs raw copy + delete
  mount-memory                     peak RSS of the mount process reading and writing a
                                   4 GiB file
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config as BotoConfig

from mssfs.devserver import SeaweedServer
from mssfs.store import Credentials, StoreConfig
from mssfs.store.http import HttpStore
from mssfs.store.transfer import download_file, upload_file

# botocore issue 3755: after a zero-byte upload the next request can stall (DESIGN.md §10).
os.environ.setdefault("BOTO_EXPERIMENTAL__NO_EMPTY_CONTINUE", "true")

MiB = 1024 * 1024
PART = 8 * MiB
CONCURRENCY = 8


@dataclass
class Result:
    name: str
    unit: str  # "MB/s", "s", "IOPS", "MiB"
    mssfs: list[float] = field(default_factory=list)
    baseline: list[float] = field(default_factory=list)
    note: str = ""
    higher_is_better: bool = True

    def line(self) -> str:
        m = statistics.median(self.mssfs) if self.mssfs else float("nan")
        if not self.baseline:
            return f"{self.name:<34} mssfs {m:10.2f} {self.unit:<5} {self.note}"
        b = statistics.median(self.baseline)
        ratio = (m / b) if self.higher_is_better else (b / m if m else float("nan"))
        return (
            f"{self.name:<34} mssfs {m:10.2f} {self.unit:<5} baseline {b:10.2f} {self.unit:<5}"
            f" ratio {ratio:5.2f}x  (runs {len(self.mssfs)}{self.paired()}) {self.note}"
        )

    def paired(self) -> str:
        """Each run's own ratio (mssfs and baseline measured back to back) and their
        median: on a machine whose speed drifts between runs, the paired median is the
        steadier figure, and the spread says how far either can be trusted."""
        if len(self.mssfs) != len(self.baseline) or len(self.mssfs) < 2:
            return ""
        pairs = zip(self.mssfs, self.baseline, strict=True)
        ratios = [(m / b if self.higher_is_better else b / m) if m and b else float("nan")
                  for m, b in pairs]
        return (": " + " ".join(f"{r:.2f}" for r in ratios)
                + f"; paired median {statistics.median(ratios):.2f}x")


class Bench:
    def __init__(self, server: SeaweedServer, work: Path, runs: int, quick: bool) -> None:
        self.server = server
        self.work = work
        self.runs = runs
        self.quick = quick
        self.big = (256 if quick else 1024) * MiB
        creds = Credentials(server.access_key, server.secret_key)
        self.store = HttpStore(StoreConfig(endpoint=server.endpoint, credentials=creds))
        self.s3 = boto3.client(
            "s3",
            endpoint_url=server.endpoint,
            aws_access_key_id=server.access_key,
            aws_secret_access_key=server.secret_key,
            region_name="us-east-1",
            config=BotoConfig(max_pool_connections=32, s3={"addressing_style": "path"}),
        )
        self.tconf = TransferConfig(
            multipart_threshold=PART, multipart_chunksize=PART, max_concurrency=CONCURRENCY
        )
        self.results: list[Result] = []
        self._bucket_no = 0
        self._buckets: list[str] = []

    # -- helpers ------------------------------------------------------------------
    def bucket(self) -> str:
        self._bucket_no += 1
        name = f"bench-{os.getpid()}-{self._bucket_no}"
        self.store.create_bucket(name)
        self._buckets.append(name)
        # SeaweedFS allocates a bucket's volumes on its first write (measured: 200 ms
        # for that PUT, 2-3 ms for the next ones). Untimed, here: otherwise whichever
        # side writes first pays it, and that was always the mount (8% of a cp -r).
        self.store.put_object(name, ".warm", b"")
        self.store.delete_object(name, ".warm")
        return name

    def drop_buckets(self) -> None:
        """Empty and delete this workload's buckets: 3 runs of every workload would
        otherwise keep tens of GB in SeaweedFS's folder."""
        while self._buckets:
            bucket = self._buckets.pop()
            with contextlib.suppress(Exception):
                for upload in self.store.list_multipart_uploads(bucket):
                    self.store.abort_multipart_upload(bucket, upload.key, upload.upload_id)
                token = None
                while True:
                    page = self.store.list_objects(bucket, continuation_token=token)
                    keys = [o.key for o in page.objects]
                    for start in range(0, len(keys), 1000):
                        self.store.delete_objects(bucket, keys[start:start + 1000])
                    if page.next_token is None:
                        break
                    token = page.next_token
                self.store.delete_bucket(bucket)

    def random_file(self, size: int, name: str) -> Path:
        path = self.work / name
        if not path.exists() or path.stat().st_size != size:
            with open(path, "wb") as f:
                chunk = os.urandom(MiB)
                for _ in range(size // MiB):
                    f.write(chunk)
                    chunk = chunk[1:] + chunk[:1]
                f.write(os.urandom(size % MiB))
        return path

    def settle(self, out: Path) -> None:
        """Before a timed download: remove the previous output and write back dirty
        pages, so no client pays for the last one's 1 GiB of writeback (or for ext4's
        flush when a rename replaces a just-written file). Measured without this, the
        client that happened to go second ran at half speed, whichever it was."""
        out.unlink(missing_ok=True)
        os.sync()

    def drop_caches(self) -> None:
        """Drop the page cache, which also holds SeaweedFS's volume files and the
        source files: call it before both sides of a comparison, never one only (the
        side after a drop reads from disk; until this was fixed, the mount's cold read
        was timed against a boto3 download served from a warm page cache)."""
        subprocess.run(["sync"], check=False)
        with contextlib.suppress(OSError):
            Path("/proc/sys/vm/drop_caches").write_text("3\n")

    @contextlib.contextmanager
    def mount(self, bucket: str, *options: str) -> Iterator[tuple[Path, int]]:
        mnt = Path(tempfile.mkdtemp(prefix="mnt-", dir=self.work))
        env = dict(os.environ)
        env["MSS_ACCESS_KEY_ID"] = self.server.access_key
        env["MSS_SECRET_ACCESS_KEY"] = self.server.secret_key
        opts = ["-o", ",".join(options)] if options else []
        cmd = [sys.executable, "-m", "mssfs", "mount", bucket, str(mnt),
               "--endpoint", self.server.endpoint, "-f", *opts]
        with open(self.work / "mount.log", "ab") as log:
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log)
        try:
            deadline = time.monotonic() + 30
            while not os.path.ismount(mnt):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"mount failed, see {self.work / 'mount.log'}")
                time.sleep(0.05)
            yield mnt, proc.pid
        finally:
            subprocess.run(["fusermount3", "-u", str(mnt)], check=False,
                           stderr=subprocess.DEVNULL)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                subprocess.run(["fusermount3", "-uz", str(mnt)], check=False,
                               stderr=subprocess.DEVNULL)
                proc.wait()
            with contextlib.suppress(OSError):
                mnt.rmdir()

    def mount_stats(self, mnt: Path) -> dict:
        """The mount's counters (``mssfs stats --json``)."""
        out = subprocess.run([sys.executable, "-m", "mssfs", "stats", "--json", str(mnt)],
                             check=True, capture_output=True, text=True).stdout
        return json.loads(out)

    def timed(self, fn: Callable[..., object], *args: object, **kwargs: object) -> float:
        start = time.perf_counter()
        fn(*args, **kwargs)
        return time.perf_counter() - start

    def add(self, result: Result) -> None:
        self.results.append(result)
        print(result.line(), flush=True)

    def s3_requests(self) -> int:
        counts = self.server.request_counts()
        return int(sum(counts.values()))

    # -- workloads ----------------------------------------------------------------
    def client_transfer(self) -> None:
        bucket = self.bucket()
        src = self.random_file(self.big, "big.bin")
        mb = self.big / 1e6
        up = Result("client upload", "MB/s")
        down = Result("client download", "MB/s")
        out = self.work / "out.bin"
        for i in range(self.runs):
            up.mssfs.append(mb / self.timed(upload_file,
                self.store, bucket, f"m{i}", str(src), part_size=PART, concurrency=CONCURRENCY))
            up.baseline.append(mb / self.timed(self.s3.upload_file,
                str(src), bucket, f"b{i}", Config=self.tconf))
            self.settle(out)
            down.mssfs.append(mb / self.timed(download_file,
                self.store, bucket, f"m{i}", str(out), part_size=PART, concurrency=CONCURRENCY))
            self.settle(out)
            down.baseline.append(mb / self.timed(self.s3.download_file,
                bucket, f"b{i}", str(out), Config=self.tconf))
        out.unlink(missing_ok=True)
        up.note = down.note = f"{self.big // MiB} MiB, part {PART // MiB} MiB x{CONCURRENCY}"
        self.add(up)
        self.add(down)

    def mount_read(self) -> None:
        bucket = self.bucket()
        src = self.random_file(self.big, "big.bin")
        upload_file(self.store, bucket, "big.bin", str(src), part_size=PART)
        res = Result("mount cold sequential read", "MB/s")
        mb = self.big / 1e6
        out = self.work / "out.bin"
        fetched = []
        for _ in range(self.runs):
            with self.mount(bucket) as (mnt, _pid):
                self.drop_caches()
                res.mssfs.append(mb / self.timed(subprocess.run,
                    ["dd", f"if={mnt}/big.bin", "of=/dev/null", "bs=1M"],
                    check=True, capture_output=True))
                fetched.append(self.mount_stats(mnt)["bytes_received"] / self.big)
            self.settle(out)
            self.drop_caches()  # the same cold server for both
            res.baseline.append(mb / self.timed(self.s3.download_file,
                bucket, "big.bin", str(out), Config=self.tconf))
        out.unlink(missing_ok=True)
        res.note = (f"dd bs=1M of {self.big // MiB} MiB vs boto3 download_file; "
                    f"the mount fetched {max(fetched):.2f}x the object at most")
        self.add(res)

    def mount_ls(self) -> None:
        bucket = self.bucket()
        n = 2000 if self.quick else 10_000
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda i: self.store.put_object(bucket, f"d/f{i:05d}", b"x"), range(n)))
        res = Result(f"ls -l of {n} objects", "s", higher_is_better=False)
        for _ in range(self.runs):
            with self.mount(bucket) as (mnt, _pid):
                before = self.s3_requests()
                res.mssfs.append(self.timed(subprocess.run,
                    ["ls", "-l", f"{mnt}/d"], check=True, capture_output=True))
                requests = self.s3_requests() - before

            def raw() -> None:
                pages = self.s3.get_paginator("list_objects_v2")
                for _page in pages.paginate(Bucket=bucket, Prefix="d/", Delimiter="/"):
                    pass

            res.baseline.append(self.timed(raw))
        res.note = f"{requests} S3 requests on the last run"
        self.add(res)

    def _random_reads(self, path: Path, size: int, count: int,
                      opens: list[float] | None = None) -> float:
        """IOPS of ``count`` random 4 KiB preads; the time of the ``open`` itself (a
        passthrough open may check the cached file first) goes to ``opens``."""
        rng = random.Random(7)
        start = time.perf_counter()
        fd = os.open(path, os.O_RDONLY)
        if opens is not None:
            opens.append((time.perf_counter() - start) * 1000)
        try:
            start = time.perf_counter()
            for _ in range(count):
                os.pread(fd, 4096, rng.randrange(0, size - 4096) & ~4095)
            return count / (time.perf_counter() - start)
        finally:
            os.close(fd)

    def mount_random(self) -> None:
        bucket = self.bucket()
        size = 256 * MiB
        src = self.random_file(size, "rand.bin")
        upload_file(self.store, bucket, "rand.bin", str(src), part_size=PART)
        count = 2000
        cold = Result("random 4 KiB reads, cold", "IOPS")
        warm = Result("random 4 KiB reads, disk cache warm", "IOPS")
        served = Result("the same, -o no_passthrough", "IOPS")
        dropped = Result("random 4 KiB reads, disk cache on disk", "IOPS")
        first_open = Result("first open of the cached file", "ms", higher_is_better=False)
        cache_dir = self.work / "diskcache"
        cached = (f"cache_dir={cache_dir}", "cache_size=1G")
        for _ in range(self.runs):
            shutil.rmtree(cache_dir, ignore_errors=True)
            with self.mount(bucket, *cached) as (mnt, _pid):
                self.drop_caches()
                cold.mssfs.append(self._random_reads(mnt / "rand.bin", size, count))
                # Warm the disk cache with one sequential pass.
                subprocess.run(["dd", f"if={mnt}/rand.bin", "of=/dev/null", "bs=1M"],
                               check=True, capture_output=True)
            # (The 2,000 cold reads above touch nearly every 1 MiB block, so dd's open
            # may already find the file whole.) A fresh mount has an empty page cache
            # for its files, so without passthrough every read below reaches mssfs.
            # The cache's file is in the OS page cache here (as right after it was
            # written, or on any machine with memory to spare). The mount that handed
            # it to the kernel sealed it at unmount, so this open does not re-read it.
            with self.mount(bucket, *cached) as (mnt, _pid):
                warm.mssfs.append(self._random_reads(mnt / "rand.bin", size, count * 10,
                                                     first_open.mssfs))
            with self.mount(bucket, *cached, "no_passthrough") as (mnt, _pid):
                served.mssfs.append(self._random_reads(mnt / "rand.bin", size, count * 10))
            # Then with the page cache dropped, so each read waits for the disk.
            with self.mount(bucket, *cached) as (mnt, _pid):
                self.drop_caches()
                dropped.mssfs.append(self._random_reads(mnt / "rand.bin", size, count * 10))

            def raw(rng: random.Random) -> None:
                for _ in range(count):
                    off = rng.randrange(0, size - 4096) & ~4095
                    self.s3.get_object(Bucket=bucket, Key="rand.bin",
                                       Range=f"bytes={off}-{off + 4095}")["Body"].read()

            self.drop_caches()  # the same cold server as the mount's cold run
            cold.baseline.append(count / self.timed(raw, random.Random(7)))
        cold.note = "baseline: sequential raw ranged GETs of 4 KiB"
        warm.note = "fresh mount, passthrough; cache file in the OS page cache"
        served.note = "fresh mount, every read through mssfs (the disk cache's fd)"
        dropped.note = "fresh mount, passthrough; page cache dropped, reads from disk"
        first_open.note = ("256 MiB, sealed by the mount that filled it (an unsealed one is "
                           "read once to check its CRCs)")
        for result in (cold, warm, served, dropped, first_open):
            self.add(result)

    def warm_source(self, src: Path) -> None:
        """Drop the page cache, then read ``src`` back into it: the write workloads'
        source, for both sides. Read from disk instead (``drop_caches`` only), the
        source's read is not the same work for both: ``dd`` reads, then writes, one MiB
        at a time, while boto3 reads in eight threads; and on this VM the CPU that
        filling the page cache costs varies tenfold with what ran before (``dd`` alone,
        reading 1 GiB after a drop: 0.07 to 1.26 s, README "Performance"). The cold-source
        run is still measured, as its own row."""
        self.drop_caches()
        with open(src, "rb") as handle:
            while handle.read(8 * MiB):
                pass

    def mount_write(self) -> None:
        bucket = self.bucket()
        src = self.random_file(self.big, "big.bin")
        res = Result("mount sequential write", "MB/s")
        md5 = Result("mount write, upload_checksum=md5", "MB/s")
        cold = Result("mount write, source from disk", "MB/s")
        mb = self.big / 1e6

        def boto(result: Result, name: str) -> None:
            result.baseline.append(mb / self.timed(self.s3.upload_file,
                str(src), bucket, name, Config=self.tconf))

        def mount(result: Result, options: tuple[str, ...], name: str,
                  prepare: Callable[[], None]) -> None:
            with self.mount(bucket, *options) as (mnt, _pid):
                prepare()
                result.mssfs.append(mb / self.timed(subprocess.run,
                    ["dd", f"if={src}", f"of={mnt}/{name}", "bs=1M"],
                    check=True, capture_output=True))

        def warm() -> None:
            self.warm_source(src)

        # Untimed: the first upload to a new bucket is the slowest (SeaweedFS grows its
        # volumes; in a --quick run, boto3 at 106 MB/s then 207): the first side to run
        # would pay for it.
        self.s3.upload_file(str(src), bucket, "warmup", Config=self.tconf)
        for i in range(self.runs):
            # Each default mount run comes right after the boto3 run it is compared
            # with: a run measured faster right after another process had freed its
            # memory, so every pair is run in the same order. The MD5 mount comes
            # last; its ratio is only indicative.
            warm()
            boto(res, f"b{i}")
            mount(res, (), f"w{i}.bin", warm)
            mount(md5, ("upload_checksum=md5",), f"m{i}.bin", warm)
            self.drop_caches()
            boto(cold, f"c{i}")
            mount(cold, (), f"d{i}.bin", self.drop_caches)
        md5.baseline = list(res.baseline)
        res.note = (f"dd bs=1M of {self.big // MiB} MiB until close returns, the source in "
                    "the page cache for both sides")
        md5.note = "the same with Content-MD5; baseline: the same boto3 runs"
        cold.note = "the same, the source read from disk by both sides"
        self.add(res)
        self.add(md5)
        self.add(cold)

    def _small_tree(self, n: int) -> Path:
        tree = self.work / f"small-{n}"
        if not tree.exists():
            tree.mkdir()
            for i in range(n):
                (tree / f"f{i:04d}").write_bytes(os.urandom(4096))
        return tree

    def _raw_puts(self, bucket: str, root: Path, prefix: str) -> None:
        for path in sorted(root.rglob("*")):
            rel = path.relative_to(root).as_posix()
            if path.is_dir():
                self.s3.put_object(Bucket=bucket, Key=f"{prefix}{rel}/", Body=b"")
            else:
                self.s3.put_object(Bucket=bucket, Key=f"{prefix}{rel}", Body=path.read_bytes())

    def _raw_run(self, res: Result, files: int, bucket: str, root: Path, prefix: str) -> None:
        res.baseline.append(files / self.timed(self._raw_puts, bucket, root, prefix))

    def mount_small(self) -> None:
        n = 200 if self.quick else 1000
        tree = self._small_tree(n)
        res = Result(f"cp -r of {n} x 4 KiB files", "files/s")
        per_file = []
        for i in range(self.runs):
            bucket = self.bucket()
            if i % 2:  # the two sides swap places every run, as the write's do
                self._raw_run(res, n, bucket, tree, f"r{i}/")
            with self.mount(bucket) as (mnt, _pid):
                before = self.s3_requests()
                res.mssfs.append(n / self.timed(subprocess.run,
                    ["cp", "-r", str(tree), f"{mnt}/t{i}"], check=True))
                per_file.append((self.s3_requests() - before) / n)
            if not i % 2:
                self._raw_run(res, n, bucket, tree, f"r{i}/")
        res.note = f"{statistics.median(per_file):.2f} S3 requests per file"
        self.add(res)

    def _source_tarball(self) -> Path:
        tarball = self.work / "src.tar"
        if not tarball.exists():
            stdlib = Path(os.__file__).parent
            members = [p for p in sorted(stdlib.rglob("*.py")) if "site-packages" not in p.parts]
            limit = 400 if self.quick else 2000
            with tarfile.open(tarball, "w") as tar:
                for p in members[:limit]:
                    tar.add(p, arcname=str(p.relative_to(stdlib.parent)))
        return tarball

    def mount_tar(self) -> None:
        tarball = self._source_tarball()
        extracted = self.work / "src-extracted"
        if not extracted.exists():
            extracted.mkdir()
            subprocess.run(["tar", "xf", str(tarball), "-C", str(extracted)], check=True)
        files = sum(1 for p in extracted.rglob("*") if p.is_file())
        res = Result(f"tar x of {files} files", "files/s")
        for i in range(self.runs):
            bucket = self.bucket()
            if i % 2:
                self._raw_run(res, files, bucket, extracted, f"r{i}/")
            with self.mount(bucket) as (mnt, _pid):
                target = mnt / f"x{i}"
                target.mkdir()
                res.mssfs.append(files / self.timed(subprocess.run,
                    ["tar", "xf", str(tarball), "-C", str(target)], check=True))
            if not i % 2:
                self._raw_run(res, files, bucket, extracted, f"r{i}/")
        self.add(res)

    def mount_mv(self) -> None:
        bucket = self.bucket()
        src = self.random_file(100 * MiB, "mv.bin")
        res = Result("mv of a 100 MiB file", "s", higher_is_better=False)

        def raw(src: str, dst: str) -> None:
            self.s3.copy_object(Bucket=bucket, Key=dst,
                                CopySource={"Bucket": bucket, "Key": src})
            self.s3.delete_object(Bucket=bucket, Key=src)

        for i in range(self.runs):
            upload_file(self.store, bucket, f"a{i}", str(src), part_size=PART)
            upload_file(self.store, bucket, f"c{i}", str(src), part_size=PART)
            with self.mount(bucket) as (mnt, _pid):
                os.listdir(mnt)  # the mount is up; the timing starts at mv
                # Alternate which side copies first: the server's copy time depends on
                # what it just did (uploads above), not on the client.
                if i % 2:
                    res.baseline.append(self.timed(raw, f"c{i}", f"d{i}"))
                res.mssfs.append(self.timed(subprocess.run,
                    ["mv", f"{mnt}/a{i}", f"{mnt}/b{i}"], check=True))
                if not i % 2:
                    res.baseline.append(self.timed(raw, f"c{i}", f"d{i}"))
        res.note = "raw: boto3 copy_object + delete_object"
        self.add(res)

    def mount_memory(self) -> None:
        size = (1024 if self.quick else 4096) * MiB
        bucket = self.bucket()
        src = self.random_file(size, "huge.bin")
        read_peak = Result(f"peak RSS reading {size // MiB} MiB", "MiB", higher_is_better=False)
        write_peak = Result(f"peak RSS writing {size // MiB} MiB", "MiB", higher_is_better=False)
        with self.mount(bucket) as (mnt, pid):
            subprocess.run(["dd", f"if={src}", f"of={mnt}/huge.bin", "bs=1M"],
                           check=True, capture_output=True)
            write_peak.mssfs.append(peak_rss_mib(pid))
        with self.mount(bucket) as (mnt, pid):
            subprocess.run(["dd", f"if={mnt}/huge.bin", "of=/dev/null", "bs=1M"],
                           check=True, capture_output=True)
            read_peak.mssfs.append(peak_rss_mib(pid))
        read_peak.note = write_peak.note = "VmHWM of the mount process; budget 300 MiB"
        self.add(write_peak)
        self.add(read_peak)


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


WORKLOADS: dict[str, Callable[[Bench], None]] = {
    "client": Bench.client_transfer,
    "mount-read": Bench.mount_read,
    "mount-ls": Bench.mount_ls,
    "mount-random": Bench.mount_random,
    "mount-write": Bench.mount_write,
    "mount-small": Bench.mount_small,
    "mount-tar": Bench.mount_tar,
    "mount-mv": Bench.mount_mv,
    "mount-memory": Bench.mount_memory,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per workload (default 3)")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument("--only", action="append", choices=sorted(WORKLOADS),
                        help="run only these workloads (repeatable)")
    parser.add_argument("--work", default=".bench", help="working folder (default .bench)")
    args = parser.parse_args(argv)
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    names = args.only or list(WORKLOADS)
    print(f"mssfs bench: {', '.join(names)}; {args.runs} runs each; "
          f"{os.cpu_count()} CPUs; ratios are mssfs/baseline (>1 is better)", flush=True)
    with SeaweedServer(str(work / "seaweedfs")) as server:
        bench = Bench(server, work, args.runs, args.quick)
        for name in names:
            try:
                WORKLOADS[name](bench)
            except Exception as exc:  # a broken workload must not hide the others
                print(f"{name}: FAILED: {type(exc).__name__}: {exc}", flush=True)
            finally:
                bench.drop_buckets()
        print("\nsummary (medians):")
        for result in bench.results:
            print("  " + result.line())
    return 0


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    sys.exit(main())
