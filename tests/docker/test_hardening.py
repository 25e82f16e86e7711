"""Hardened by default (architecture.md invariants 3 and 4), checked from inside and outside."""

from __future__ import annotations

import pytest

from sandbox_kernel.sandbox.direct import AGENT_DIR
from sandbox_kernel.sandbox.docker_options import host_pids
from sandbox_kernel.sandbox.spec import Limits
from sandbox_kernel.sandbox.units import MiB

pytestmark = pytest.mark.docker

PODMAN_DEFAULT_CAPS = {"CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "NET_BIND_SERVICE",
                       "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"}


def py(session, code: str):
    r = session.execute_command(["python3", "-c", code])
    assert r.exit_code == 0, r.stderr
    return r.stdout


def _status(text: str) -> dict[str, str]:
    return {k: v.strip() for k, v in (line.split(":\t", 1) for line in text.splitlines()
                                      if ":\t" in line)}


def test_cell_code_is_not_root_and_not_the_agent(session) -> None:
    assert session.execute_command(["id", "-u"]).stdout == "1000\n"
    assert session.execute_command(["id", "-g"]).stdout == "1000\n"
    assert (session.agent["agent_uid"], session.agent["worker_uid"]) == (999, 1000)


def test_no_capabilities_no_new_privs_seccomp(session) -> None:
    status = _status(session.execute_command(["cat", "/proc/self/status"]).stdout)
    assert status["CapEff"] == status["CapPrm"] == status["CapAmb"] == "0000000000000000"
    assert status["CapBnd"] == "0000000000000000"  # the agent emptied it for all it starts
    assert status["NoNewPrivs"] == "1"
    assert status["Seccomp"] == "2"


def test_the_agent_holds_only_kill_setuid_setgid(manager, session) -> None:
    code, out = manager.backend.exec_in(session.container_id,
                                        ["cat", f"/proc/{session.agent['pid']}/status"])
    status = _status(out.decode())
    assert code == 0
    assert status["Uid"].split() == ["999"] * 4  # as the worker only while it touches files
    assert status["CapEff"] == status["CapPrm"] == "00000000000000e0"  # KILL SETGID SETUID
    assert status["CapInh"] == status["CapBnd"] == "0000000000000000"
    assert status.get("CapAmb", "0000000000000000") == "0000000000000000"  # gVisor: no line
    runtime = manager.backend.api.inspect_container(session.container_id)["HostConfig"]
    if runtime.get("Runtime") == "runsc":  # filters in its Sentry, profile off (docs/engines.md)
        assert "NoNewPrivs" not in status and status["Seccomp"] == "0"
    else:
        assert status["NoNewPrivs"] == "1" and status["Seccomp"] == "2"


def test_setuid_does_not_help(session) -> None:
    out = py(session, "import os, errno\ntry:\n    os.setuid(0)\n    print('ROOT')\n"
                      "except OSError as e:\n    print(errno.errorcode[e.errno])")
    assert out == "EPERM\n"
    r = session.execute_command(["sh", "-c", "find / -xdev -perm -4000 -type f 2>/dev/null"])
    assert r.stdout == "", f"setuid binaries in the image: {r.stdout}"


def test_root_filesystem_is_read_only(session) -> None:
    r = session.execute_command(["touch", "/x"])
    assert r.exit_code != 0
    assert "Read-only file system" in r.stderr
    out = py(session, "import errno\nfor p in ('/x', '/etc/passwd', '/opt/sandbox-kernel/x'):\n"
                      "    try:\n        open(p, 'a')\n        print(p, 'WRITABLE')\n"
                      "    except OSError as e:\n        print(p, errno.errorcode[e.errno])")
    # /etc/passwd is root-owned: the permission check comes before the read-only one
    assert out.splitlines() == ["/x EROFS", "/etc/passwd EACCES", "/opt/sandbox-kernel/x EROFS"]


def test_sandbox_and_tmp_writable_but_noexec(session) -> None:
    r = session.execute_command("echo ok > /sandbox/w && cat /sandbox/w && echo t > /tmp/w "
                                "&& cat /tmp/w")
    assert (r.exit_code, r.stdout) == (0, "ok\nt\n")
    r = session.execute_command("cp /bin/true /sandbox/t && chmod +x /sandbox/t && /sandbox/t")
    assert r.exit_code == 126 and "Permission denied" in r.stderr
    r = session.execute_command("cp /bin/true /tmp/t && chmod +x /tmp/t && /tmp/t")
    assert r.exit_code == 126 and "Permission denied" in r.stderr


def test_no_writable_mount_runs_binaries(session) -> None:
    """Wherever the sandbox can write, it cannot execute (Podman adds /run and /var/tmp)."""
    code = ("import os, shutil, subprocess\n"
            "for line in open('/proc/mounts'):\n"
            "    point, opts = line.split()[1], line.split()[3].split(',')\n"
            "    if 'rw' not in opts or point.startswith(('/proc', '/sys')):\n"
            "        continue\n"
            "    target = os.path.join(point, 'sk-exec-probe')\n"
            "    try:\n"
            "        shutil.copy('/bin/true', target)\n"
            "        os.chmod(target, 0o755)\n"
            "    except OSError:\n"
            "        continue\n"
            "    try:\n"
            "        ran = subprocess.run([target]).returncode == 0\n"
            "    except OSError:\n"
            "        ran = False\n"
            "    os.unlink(target)\n"
            "    print(point, 'EXEC' if ran else 'noexec')\n")
    out = py(session, code).split()
    assert "EXEC" not in out, out
    assert "/sandbox" in out and "/tmp" in out  # the probe did write there


def test_only_loopback(session) -> None:
    assert session.execute_command(["ls", "/sys/class/net"]).stdout.split() == ["lo"]


def test_no_egress(session) -> None:
    code = (
        "import socket, errno\n"
        "for host, port in (('1.1.1.1', 443), ('172.17.0.1', 80), ('172.17.0.1', 2375),"
        " ('169.254.169.254', 80)):\n"
        "    s = socket.socket(); s.settimeout(3)\n"
        "    try:\n"
        "        s.connect((host, port)); print(host, port, 'CONNECTED')\n"
        "    except OSError as e:\n"
        "        print(host, port, errno.errorcode.get(e.errno, e))\n"
        "    finally:\n"
        "        s.close()\n"
    )
    assert py(session, code).splitlines() == [
        "1.1.1.1 443 ENETUNREACH",
        "172.17.0.1 80 ENETUNREACH",
        "172.17.0.1 2375 ENETUNREACH",
        "169.254.169.254 80 ENETUNREACH",
    ]


def test_no_dns(session) -> None:
    code = ("import socket\ntry:\n    print(socket.getaddrinfo('example.com', 443))\n"
            "except socket.gaierror as e:\n    print('gaierror')")
    assert py(session, code) == "gaierror\n"


def test_no_raw_sockets(session) -> None:
    code = ("import socket, errno\ntry:\n"
            "    socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)\n"
            "    print('RAW')\nexcept OSError as e:\n    print(errno.errorcode[e.errno])")
    assert py(session, code) == "EPERM\n"


def test_no_docker_socket(session) -> None:
    out = py(session, "import os\nprint([p for p in ('/var/run/docker.sock', '/run/docker.sock',"
                      " '/run/containerd/containerd.sock') if os.path.exists(p)])")
    assert out == "[]\n"
    mounts = session.execute_command(["cat", "/proc/self/mountinfo"]).stdout
    assert "docker.sock" not in mounts
    assert " /sandbox " in mounts  # the read worked


def test_host_environment_does_not_leak(monkeypatch, make_session, run_cell) -> None:
    monkeypatch.setenv("SANDBOX_CANARY", "s3cret-canary")
    monkeypatch.setenv("DOCKER_HOST_CANARY", "s3cret-canary")
    s = make_session()
    env = s.execute_command(["env"]).stdout
    assert "SANDBOX=1" in env  # the read worked
    # The processes of cell code cannot read init's or the agent's environment at all now;
    # the engine's view of the container's environment is the whole of it.
    config = "\n".join(s.backend.api.inspect_container(s.container_id)["Config"]["Env"])
    assert "PATH=" in config
    init_env = s.execute_command(["sh", "-c", "tr '\\0' '\\n' < /proc/1/environ"])
    assert "Permission denied" in init_env.stderr
    r, ev = run_cell(s, "import os\nprint(sorted(os.environ))")
    assert r.ok
    cell_env = "".join(e.get("text", "") for e in ev)
    assert "PATH" in cell_env
    for text in (env, config, cell_env):
        assert "s3cret-canary" not in text
        assert "CANARY" not in text


def test_container_configuration(manager, session) -> None:
    info = manager.backend.api.inspect_container(session.container_id)
    hc = info["HostConfig"]
    assert hc["ReadonlyRootfs"] is True
    # Podman's inspect lists what it dropped one by one: every capability it would grant
    added = {"CHOWN", "KILL", "SETGID", "SETPCAP", "SETUID"}  # the agent's, at its start
    if hc["CapDrop"] == ["ALL"]:
        assert set(hc["CapAdd"]) == added
    else:  # Podman: every default but the agent's dropped, and no CapAdd shown
        assert set(hc["CapDrop"]) >= PODMAN_DEFAULT_CAPS - added
        assert not added & set(hc["CapDrop"]) and set(hc["CapAdd"]) <= added
    no_new_privs, seccomp = hc["SecurityOpt"]
    assert no_new_privs in ("no-new-privileges:true", "no-new-privileges")  # Podman: bare
    assert seccomp.startswith("seccomp=") and "unconfined" not in seccomp
    assert hc["NetworkMode"] == "none"
    traits = manager.backend.check_runtime(manager.runtime)
    assert hc["PidsLimit"] == host_pids(Limits(), traits) >= 20
    assert hc["Memory"] == 512 * MiB
    assert hc["MemorySwap"] == 512 * MiB
    assert hc["NanoCpus"] == 1_000_000_000
    assert hc["Init"] is True
    assert hc["Privileged"] is False
    assert hc["AutoRemove"] is True
    # Podman lists the direct link's read-only mount as a bind too; nothing else is one.
    for bind in hc.get("Binds") or []:
        _, target, opts = bind.split(":", 2)
        assert target == AGENT_DIR and "ro" in opts.split(","), bind
    assert not hc.get("Devices")
    assert hc["PidMode"] in ("", "private") and hc["IpcMode"] in ("private", "shareable", "")
    assert set(hc["Tmpfs"]) - {"/run", "/var/tmp"} == {"/tmp", "/sandbox",  # Podman: +2, ro
                                                       "/opt/sandbox-packages"}
    for point, opts in hc["Tmpfs"].items():
        # live installs: exec for compiled extensions, but written only by the installer
        exec_ = "exec" if point == "/opt/sandbox-packages" else "noexec"
        assert {exec_, "nosuid", "nodev"} <= set(opts.split(","))
    ulimits = {u["Name"].removeprefix("RLIMIT_").lower(): (u["Soft"], u["Hard"])  # Podman: RLIMIT_X
               for u in hc["Ulimits"]}
    assert ulimits["core"] == (0, 0)
    assert ulimits["fsize"] == (1024**3, 1024**3)
    binds = [m for m in info["Mounts"] if m.get("Type") == "bind"]
    # One bind mount only: the direct link's directory, read-only (sandbox/direct.py).
    assert [(m["Destination"], m["RW"]) for m in binds] == [(AGENT_DIR, False)]
    assert "/sandbox-kernel-links/" in binds[0]["Source"]
    assert all("docker.sock" not in str(m.get("Source")) for m in info["Mounts"])
    assert info["Config"]["User"] == "0:0"  # the agent drops it at once
    assert info["Config"]["Env"] == [e for e in info["Config"]["Env"]
                                     if not e.startswith(("JUPYTER", "DOCKER", "SANDBOX_CANARY"))]
    assert "SANDBOX=1" in info["Config"]["Env"]
    labels = info["Config"]["Labels"]
    assert labels["sandbox_kernel.session"] == session.session_id
    assert labels["sandbox_kernel.owner_pid"] == str(manager.owner.pid)
