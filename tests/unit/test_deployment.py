"""docker-compose.yaml, .env and Dockerfile agree with each other and with the engine
(no Docker engine runs here, so the files are checked, not started), and
deploy/secrets.sh, which every Airflow service of the compose file starts through, runs
in subprocesses with a temporary folder standing for the secrets volume."""

from __future__ import annotations

import base64
import json
import os
import posixpath
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml
from cryptography.fernet import Fernet

from a_la_mode import load

REPO = Path(__file__).parents[2]
AIRFLOW_SERVICES = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
    "airflow-worker": "celery worker",
}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yaml").read_text())


@pytest.fixture(scope="module")
def dotenv() -> dict[str, str]:
    lines = (REPO / ".env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def mounts(service: dict) -> dict[str, str]:
    """Container path -> source of each volume (read-only ones marked with a final ":ro")."""
    # "${AIRFLOW_PROJ_DIR:-.}/dags:/opt/airflow/dags": the target follows the last colon.
    found = {}
    for volume in service["volumes"]:
        volume, readonly = re.subn(r":ro$", "", volume)
        source, target = volume.rsplit(":", 1)
        found[target] = source + ":ro" * readonly
    return found


def default(value: str) -> str:
    """The default of a ${NAME:-default} value."""
    match = re.fullmatch(r"\$\{\w+:-(.*)\}", value)
    return match.group(1) if match else value


def test_the_official_topology_is_there(compose):
    services = compose["services"]
    assert {"postgres", "redis", "airflow-init", *AIRFLOW_SERVICES} <= set(services)
    for name, command in AIRFLOW_SERVICES.items():
        assert services[name]["command"] == command, name
        assert services[name]["image"] == "${AIRFLOW_IMAGE_NAME:-alamode-airflow:latest}"
        assert services[name]["build"] == "."


def test_executor_and_backends_point_at_services_that_exist(compose):
    env = compose["services"]["airflow-scheduler"]["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    hosts = {
        re.search(r"@(\w[\w-]*)", env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]).group(1),
        re.search(r"@(\w[\w-]*)", env["AIRFLOW__CELERY__BROKER_URL"]).group(1),
        re.search(r"//([\w-]+):", env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]).group(1),
    }
    assert hosts == {"postgres", "redis", "airflow-apiserver"}


def test_every_airflow_service_sees_the_same_dags_and_store(compose, dotenv):
    for name in AIRFLOW_SERVICES:
        service = compose["services"][name]
        env, mounted = service["environment"], mounts(service)
        dags = env["AIRFLOW__CORE__DAGS_FOLDER"]
        store = default(env["AIRFLOW__ALAMODE__STORAGE_ROOT"])
        assert mounted[dags].endswith("/dags"), name
        assert mounted[store] == "alamode-store", name
        assert store == dotenv["ALAMODE_STORAGE_ROOT"]
    assert "alamode-store" in compose["volumes"]


def test_the_example_runs_inside_a_mounted_folder(compose):
    service = compose["services"]["airflow-worker"]
    dags = service["environment"]["AIRFLOW__CORE__DAGS_FOLDER"]
    cwd = posixpath.normpath(posixpath.join(dags, load(REPO / "dags/collage.alamode").meta["cwd"]))
    assert any(cwd.startswith(target + "/") for target in mounts(service))
    source = mounts(service)[posixpath.dirname(cwd)].replace("${AIRFLOW_PROJ_DIR:-.}", ".")
    assert (REPO / source / posixpath.basename(cwd) / "collage.py").is_file()


def test_the_s3_profile_gives_the_engine_a_bucket_and_a_connection(compose, dotenv):
    """With ``--profile s3`` and the two settings .env names, outputs go to MinIO
    through the connection every Airflow service carries."""
    services = compose["services"]
    assert services["minio"]["profiles"] == ["s3"]
    assert "mc mb --ignore-existing store/alamode" in services["minio-init"]["command"][1]
    env = services["airflow-worker"]["environment"]
    assert default(env["AIRFLOW__ALAMODE__STORAGE_CONN_ID"]) == ""
    connection = json.loads(re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", env["AIRFLOW_CONN_ALAMODE_STORE"]))
    assert connection["conn_type"] == "aws"
    assert connection["extra"]["endpoint_url"] == "http://minio:9000"
    assert connection["login"] == dotenv["MINIO_ROOT_USER"]
    assert connection["password"] == dotenv["MINIO_ROOT_PASSWORD"]
    assert "ALAMODE_STORAGE_CONN_ID" in dotenv


def test_the_image_installs_this_package(dotenv):
    dockerfile = (REPO / "Dockerfile").read_text()
    assert re.search(r"^FROM \$\{AIRFLOW_IMAGE\}", dockerfile, re.M)
    assert "ARG AIRFLOW_IMAGE=apache/airflow:3.3.2" in dockerfile
    assert "[examples,s3,celery,postgres,openlineage]" in dockerfile
    for package in ("a_la_mode", "alamode_airflow", "setup.cfg", "constraints.txt"):
        assert package in dockerfile
    assert dotenv["AIRFLOW_IMAGE_NAME"] == "alamode-airflow:latest"


# The secrets: the Airflow variable each service needs, the .env setting that may set it,
# and the file of the shared volume that holds it otherwise.
SECRETS = {
    "AIRFLOW__API_AUTH__JWT_SECRET": ("AIRFLOW_JWT_SECRET", "jwt_secret"),
    "AIRFLOW__CORE__FERNET_KEY": ("AIRFLOW_FERNET_KEY", "fernet_key"),
    "AIRFLOW__API__SECRET_KEY": ("AIRFLOW_API_SECRET_KEY", "api_secret_key"),
}
SCRIPT = "/opt/alamode/deploy/secrets.sh"
VOLUME = "/opt/airflow/secrets"
AIRFLOW_UID = 50000


def starts_with(service: dict) -> str:
    """The command line a service's container runs: entrypoint, then command."""
    parts = []
    for key in ("entrypoint", "command"):
        value = service.get(key, [])
        parts += [value] if isinstance(value, str) else value
    return " ".join(parts)


def test_no_airflow_service_starts_without_the_shared_secrets(compose):
    """Each one waits for the step that writes them, mounts the volume they are in and
    starts Airflow through the script that reads them into Airflow's variables."""
    services = compose["services"]
    image = services["airflow-apiserver"]["image"]
    airflow = {name for name, s in services.items() if s.get("image") == image} - {
        "airflow-secrets"
    }
    assert airflow >= {*AIRFLOW_SERVICES, "airflow-init", "airflow-cli"}
    for name in airflow:
        service = services[name]
        wait = service["depends_on"]["airflow-secrets"]
        assert wait == {"condition": "service_completed_successfully"}, name
        assert mounts(service)[VOLUME] == "airflow-secrets:ro", name
        assert mounts(service)["/opt/alamode/deploy"] == "./deploy:ro", name
        assert re.search(rf"/bin/sh {SCRIPT} run /entrypoint\b", starts_with(service)), name
        for variable, (setting, _) in SECRETS.items():
            assert service["environment"][variable] == f"${{{setting}:-}}", name
    assert (REPO / "deploy" / "secrets.sh").is_file()
    assert "airflow-secrets" in compose["volumes"]


def test_one_step_writes_the_secrets_into_the_volume_as_root(compose):
    """Root, to hand the volume to the Airflow user the services run as."""
    service = compose["services"]["airflow-secrets"]
    assert starts_with(service) == f"/bin/sh {SCRIPT} init"
    assert mounts(service)[VOLUME] == "airflow-secrets"
    assert service["user"] == "0:0"
    assert service["environment"]["AIRFLOW_UID"] == "${AIRFLOW_UID:-50000}"
    assert compose["services"]["airflow-apiserver"]["user"] == "${AIRFLOW_UID:-50000}:0"
    for variable, (setting, _) in SECRETS.items():
        assert service["environment"][variable] == f"${{{setting}:-}}"
    assert "depends_on" not in service


def test_dotenv_ships_no_secret(dotenv):
    text = (REPO / ".env").read_text()
    for setting, _ in SECRETS.values():
        assert setting not in dotenv
        assert f"#{setting}=" in text
    assert not [value for value in dotenv.values() if value.startswith("change-me")]


@pytest.fixture
def volume():
    """A folder standing for the secrets volume, under a parent any user may traverse
    (as the volume's mount point is), so other users' attempts meet its own modes."""
    parent = Path(tempfile.mkdtemp())
    parent.chmod(0o711)
    yield parent / "secrets"
    shutil.rmtree(parent)


def secrets_sh(
    volume: Path, *args: str, env=None, user=None, stdin=None
) -> subprocess.CompletedProcess:
    """Run deploy/secrets.sh as a container would: only the compose file's variables set."""
    # The interpreter's folder first, for the python3 the script runs (another user may
    # not be able to run ours: the system's then).
    path = "/usr/bin:/bin" if user else f"{Path(sys.executable).parent}:{os.environ['PATH']}"
    environ = {"PATH": path, "ALAMODE_SECRETS_DIR": str(volume), "AIRFLOW_UID": str(AIRFLOW_UID)}
    return subprocess.run(
        ["sh", str(REPO / "deploy" / "secrets.sh"), *args],
        env={**environ, **(env or {})},
        user=user,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def start(volume: Path, env=None, user=None) -> dict[str, str]:
    """Start a service: the secrets its process sees."""
    result = secrets_sh(volume, "run", "printenv", *SECRETS, env=env, user=user)
    assert result.returncode == 0, result.stderr
    return dict(zip(SECRETS, result.stdout.splitlines(), strict=True))


def first_start(volume: Path, env=None) -> dict[str, str]:
    result = secrets_sh(volume, "init", env=env)
    assert result.returncode == 0, result.stderr
    return start(volume, env)


def refusal(volume: Path, env: dict[str, str]) -> str:
    """The error of both steps refusing to start; nothing may have started or been written."""
    init = secrets_sh(volume, "init", env=env)
    run = secrets_sh(volume, "run", "sh", "-c", "echo started", env=env)
    assert init.returncode != 0
    assert run.returncode != 0
    assert "started" not in run.stdout
    assert not volume.exists() or not os.listdir(volume)
    assert init.stderr == run.stderr
    return init.stderr


def test_the_first_start_generates_what_a_later_service_reads(volume):
    secrets = first_start(volume)
    assert start(volume) == secrets
    assert secrets_sh(volume, "init").returncode == 0
    assert start(volume) == secrets, "a second init replaced a secret"
    Fernet(secrets["AIRFLOW__CORE__FERNET_KEY"])
    assert len(secrets["AIRFLOW__API_AUTH__JWT_SECRET"]) >= 64
    assert len(set(secrets.values())) == 3
    assert first_start(volume.with_name("elsewhere")) != secrets, "not random"


AIRFLOW_SIGNS = """
import json
from airflow.api_fastapi.auth.tokens import JWTGenerator, get_signing_key
from airflow.models.crypto import get_fernet
def token(section, key):
    return JWTGenerator(secret_key=get_signing_key(section, key, False), private_key=None,
        algorithm="HS512", issuer=None, valid_for=60, audience="test").generate()
print(json.dumps({"fernet": get_fernet().encrypt(b"s3 keys").decode(),
    "jwt": token("api_auth", "jwt_secret"), "api": token("api", "secret_key")}))
"""
AIRFLOW_CHECKS = """
import json, sys
from airflow.api_fastapi.auth.tokens import JWTValidator, get_signing_key
from airflow.models.crypto import get_fernet
signed = json.load(sys.stdin)
def check(section, key, token):
    JWTValidator(secret_key=get_signing_key(section, key, False), algorithm="HS512",
        issuer=None, audience="test").validated_claims(token)
check("api_auth", "jwt_secret", signed["jwt"])
check("api", "secret_key", signed["api"])
print(get_fernet().decrypt(signed["fernet"].encode()).decode())
"""


def test_a_service_reads_what_another_signed_and_encrypted(volume, tmp_path):
    """Airflow itself, in two services: one accepts the task token and the log request the
    other signed, and decrypts the connection the other encrypted."""
    assert secrets_sh(volume, "init").returncode == 0
    home = {"AIRFLOW_HOME": str(tmp_path), "HOME": str(tmp_path)}
    signs = secrets_sh(volume, "run", sys.executable, "-c", AIRFLOW_SIGNS, env=home)
    assert signs.returncode == 0, signs.stderr
    checks = secrets_sh(
        volume, "run", sys.executable, "-c", AIRFLOW_CHECKS, env=home, stdin=signs.stdout
    )
    assert checks.returncode == 0, checks.stderr
    assert checks.stdout == "s3 keys\n"
    assert b"s3 keys" not in signs.stdout.encode(), "not encrypted"


def test_values_the_environment_sets_win_and_are_not_written(volume):
    generated = first_start(volume)
    files = {name: (volume / name).read_text() for _, name in SECRETS.values()}
    own = {
        "AIRFLOW__API_AUTH__JWT_SECRET": "my-own-jwt-secret",
        "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
        "AIRFLOW__API__SECRET_KEY": "",
    }
    assert start(volume, own) == {
        **own,
        "AIRFLOW__API__SECRET_KEY": generated["AIRFLOW__API__SECRET_KEY"],
    }
    assert {name: (volume / name).read_text() for name in files} == files

    fresh = volume.with_name("fresh")
    assert first_start(fresh, own)["AIRFLOW__CORE__FERNET_KEY"] == own["AIRFLOW__CORE__FERNET_KEY"]
    assert sorted(os.listdir(fresh)) == ["api_secret_key"]


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("AIRFLOW__API_AUTH__JWT_SECRET", "change-me-alamode-jwt-secret"),
        ("AIRFLOW__API_AUTH__JWT_SECRET", "change-me"),
        ("AIRFLOW__CORE__FERNET_KEY", "change-me-fernet"),
        ("AIRFLOW__API__SECRET_KEY", "change-me-too"),
    ],
)
def test_a_placeholder_is_refused_naming_the_setting(volume, variable, value):
    error = refusal(volume, {variable: value})
    assert f"{SECRETS[variable][0]} ({variable}) is a placeholder" in error
    assert "unset in .env to have one generated" in error


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("not-a-fernet-key", id="not-base64"),
        pytest.param(base64.urlsafe_b64encode(b"16 bytes only...").decode(), id="16-bytes"),
        pytest.param(f"{Fernet.generate_key().decode()},oops", id="one-of-a-pair"),
    ],
)
def test_an_invalid_fernet_key_is_refused(volume, key):
    error = refusal(volume, {"AIRFLOW__CORE__FERNET_KEY": key})
    assert "AIRFLOW_FERNET_KEY (AIRFLOW__CORE__FERNET_KEY) is not a valid Fernet key" in error
    assert key not in error, "a mistyped key is still a secret"


def test_a_rotation_pair_of_fernet_keys_is_accepted(volume):
    pair = f"{Fernet.generate_key().decode()},{Fernet.generate_key().decode()}"
    assert (
        first_start(volume, {"AIRFLOW__CORE__FERNET_KEY": pair})["AIRFLOW__CORE__FERNET_KEY"]
        == pair
    )


def test_no_service_starts_before_the_secrets_are_written(volume):
    result = secrets_sh(volume, "run", "sh", "-c", "echo started")
    assert result.returncode != 0
    assert "started" not in result.stdout
    assert "AIRFLOW_JWT_SECRET" in result.stderr
    assert "the airflow-secrets service writes it first" in result.stderr


def test_a_damaged_secret_file_is_refused(volume):
    first_start(volume)
    (volume / "fernet_key").chmod(0o600)
    (volume / "fernet_key").write_text("truncated\n")
    result = secrets_sh(volume, "run", "true")
    assert result.returncode != 0
    assert f"{volume}/fernet_key is not a valid Fernet key" in result.stderr


def test_generated_secrets_are_readable_by_the_airflow_user_alone(volume):
    first_start(volume)
    assert stat.S_IMODE(volume.stat().st_mode) == 0o700
    owner = AIRFLOW_UID if os.geteuid() == 0 else os.geteuid()
    for _, name in SECRETS.values():
        assert stat.S_IMODE((volume / name).stat().st_mode) == 0o400, name
        assert (volume / name).stat().st_uid == owner, name
    assert volume.stat().st_uid == owner


@pytest.mark.skipif(os.geteuid() != 0, reason="starting processes as other users needs root")
def test_the_airflow_user_starts_and_another_user_cannot_read(volume):
    secrets = first_start(volume)
    assert start(volume, user=AIRFLOW_UID) == secrets
    other = secrets_sh(volume, "run", "true", user=AIRFLOW_UID + 1)
    assert other.returncode != 0
    assert f"not readable by user {AIRFLOW_UID + 1}" in other.stderr
    for _, name in SECRETS.values():
        read = subprocess.run(
            ["cat", str(volume / name)], user=AIRFLOW_UID + 1, capture_output=True
        )
        assert read.returncode != 0, name
        assert not read.stdout, name


def test_concurrent_first_starts_agree_on_one_value(volume):
    """Services racing through a first start (init, then run) all see the same secrets,
    never an empty or replaced one."""
    script = REPO / "deploy" / "secrets.sh"
    both = f'sh "{script}" init >/dev/null && exec sh "{script}" run printenv {" ".join(SECRETS)}'
    env = {
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "ALAMODE_SECRETS_DIR": str(volume),
    }
    starts = [
        subprocess.Popen(
            ["sh", "-c", both], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(16)
    ]
    seen = [process.communicate(timeout=120) for process in starts]
    assert [process.returncode for process in starts] == [0] * len(starts), seen
    assert len({out for out, _ in seen}) == 1, seen
    assert sorted(os.listdir(volume)) == sorted(name for _, name in SECRETS.values())
