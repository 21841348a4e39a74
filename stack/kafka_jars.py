"""Kafka's jars and the Java that runs them: fetch the broker jars from Maven Central (once, into
``.stack/kafka-<version>/libs``), check the Java version, build ``java ... <main class>`` command lines."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from stack.errors import StackError, ToolMissing, log
from stack.kafka_config import DEFAULT_KAFKA_VERSION, java_logging_flags, kafka_major
from stack.paths import POM, STACK_DIR, kafka_home, kafka_libs
from stack.processes import tail

FALLBACK_KAFKA_VERSION = "3.9.1"


def parse_java_version(text: str) -> int | None:
    """`java -version` output -> major version (1.8 -> 8, 17.0.15 -> 17)."""
    m = re.search(r'version "(\d+)(?:\.(\d+))?', text)
    if not m:
        return None
    major = int(m.group(1))
    if major == 1 and m.group(2):
        major = int(m.group(2))
    return major


def check_java(version: str) -> str:
    java = shutil.which("java")
    if not java:
        raise ToolMissing("java not found: install a JDK/JRE 17+ (e.g. `apt-get install -y openjdk-17-jre-headless`)")
    out = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    major = parse_java_version(out)
    need = 17 if kafka_major(version) >= 4 else 11
    if major is not None and major < need:
        raise StackError(f"Kafka {version} needs Java {need}+, found Java {major} ({java})")
    return java


def installed_kafka_version(libs: Path) -> str | None:
    for jar in libs.glob("kafka_2.13-*.jar"):
        m = re.match(r"kafka_2\.13-(.+)\.jar$", jar.name)
        if m and not m.group(1).endswith(("-sources", "-javadoc", "-test")):
            return m.group(1)
    return None


def fetch_kafka(version: str) -> Path:
    libs = kafka_libs(version)
    if installed_kafka_version(libs) == version and (libs / ".complete").exists():
        return libs
    mvn = shutil.which("mvn")
    if not mvn:
        raise ToolMissing("mvn not found: install Maven (e.g. `apt-get install -y maven`) to fetch Kafka's jars")
    tmp = libs.with_name("libs.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        mvn, "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
        "-DincludeScope=runtime", f"-DoutputDirectory={tmp}", f"-Dkafka.version={version}",
    ]  # fmt: skip
    if kafka_major(version) < 4:
        cmd.append("-Dkafka3")
    log(f"fetching Kafka {version} jars with Maven into {libs} (one time)")
    t0 = time.monotonic()
    logf = kafka_home(version) / "mvn.log"
    with open(logf, "wb") as out:
        rc = subprocess.call(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=str(STACK_DIR))
    if rc != 0 or installed_kafka_version(tmp) != version:
        print(tail(logf, 20), file=sys.stderr)
        shutil.rmtree(tmp, ignore_errors=True)
        raise StackError(f"Maven could not fetch Kafka {version} (exit {rc}, log: {logf})")
    shutil.rmtree(libs, ignore_errors=True)
    os.replace(tmp, libs)
    (libs / ".complete").write_text(version + "\n")
    log(f"fetched {len(list(libs.glob('*.jar')))} jars in {time.monotonic() - t0:.0f}s")
    return libs


def resolve_kafka_version(requested: str | None) -> tuple[str, Path]:
    """Explicit version (flag or KAFKA_VERSION): that one. Otherwise the default, falling back
    to 3.9.x when the default cannot be fetched."""
    explicit = requested or os.environ.get("KAFKA_VERSION")
    if explicit:
        return explicit, fetch_kafka(explicit)
    try:
        return DEFAULT_KAFKA_VERSION, fetch_kafka(DEFAULT_KAFKA_VERSION)
    except ToolMissing:
        raise
    except StackError as exc:
        log(f"{exc}; falling back to Kafka {FALLBACK_KAFKA_VERSION}")
        return FALLBACK_KAFKA_VERSION, fetch_kafka(FALLBACK_KAFKA_VERSION)


def java_cmd(version: str, main: str, *args: str, heap: str = "512m", tools: bool = False) -> list[str]:
    java = check_java(version)
    return [
        java, f"-Xmx{heap}", f"-Xms{heap}" if not tools else "-Xms64m",
        "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-Djava.awt.headless=true",
        *java_logging_flags(version, tools=tools),
        "-cp", f"{kafka_libs(version)}/*", main, *args,
    ]  # fmt: skip
