"""Kestra's @Example flows of the FTP, FTPS and SFTP plug-ins (kestra-io/plugin-fs
src/main/java/io/kestra/plugin/fs/{ftp,ftps,sftp}/*.java, as written there) go through
`podium validate`. The Downloads examples carry `interval: PT10S`, which Downloads has no
property for (it was copied from the Trigger's): they are refused for that alone, as
Kestra's own validation refuses an unknown property, and validate without it."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.app.cli import main as cli
from tests.harness import problems

# (package, port as each example writes it, the trigger examples' port, password)
PROTOCOLS = {
    "ftp": ("21", "21", "\"{{ secret('FTP_PASSWORD') }}\""),
    "ftps": ("990", "990", "\"{{ secret('FTPS_PASSWORD') }}\""),
    "sftp": ('"22"', "6622", "\"{{ secret('SFTP_PASSWORD') }}\""),
}


def connection(pkg: str, port: str, password: str, indent: int) -> str:
    pad = " " * indent
    return (
        f"{pad}host: localhost\n{pad}port: {port}\n{pad}username: foo\n{pad}password: {password}\n"
    )


def task_examples(pkg: str) -> dict[str, str]:
    port, _, password = PROTOCOLS[pkg]
    conn = connection(pkg, port, password, 4)

    def one(name: str, flow_id: str, body: str, inputs: str = "") -> str:
        return (
            f"id: {flow_id}\nnamespace: company.team\n{inputs}\ntasks:\n"
            f"  - id: {name.lower()}\n    type: io.kestra.plugin.fs.{pkg}.{name}\n{conn}{body}"
        )

    file_input = "\ninputs:\n  - id: file\n    type: FILE\n"
    two_inputs = "\ninputs:\n  - id: file1\n    type: FILE\n  - id: file2\n    type: FILE\n"
    examples = {
        "List": one(
            "List",
            f"fs_{pkg}_list",
            '    from: "/upload/dir1/"\n    regExp: ".*\\\\/dir1\\\\/.*.(yaml|yml)"\n',
        ),
        "Download": one("Download", f"fs_{pkg}_download", '    from: "/in/file.txt"\n'),
        "Upload": one(
            "Upload",
            f"fs_{pkg}_upload",
            '    from: "{{ inputs.file }}"\n    to: "/upload/dir2/file.txt"\n',
            file_input,
        ),
        "Uploads": one(
            "Uploads",
            f"fs_{pkg}_uploads",
            '    from:\n      - "{{ inputs.file1 }}"\n      - "{{ inputs.file2 }}"\n'
            '    to: "/upload/dir2"\n',
            two_inputs,
        ),
        "Delete": one("Delete", f"fs_{pkg}_delete", '    uri: "/upload/dir1/file.txt"\n'),
        "Move": one(
            "Move",
            f"fs_{pkg}_move",
            '    from: "/upload/dir1/file.txt"\n    to: "/upload/dir2/file.txt"\n',
        ),
    }
    if pkg == "sftp":
        examples["Uploads (map)"] = one(
            "Uploads",
            "fs_sftp_uploads_with_names",
            '    from:\n      report.csv: "{{ inputs.file1 }}"\n'
            '      data.json: "{{ inputs.file2 }}"\n'
            '    to: "/upload/dir2"\n',
            two_inputs,
        )
    return examples


def downloads_example(pkg: str) -> str:
    port, _, password = PROTOCOLS[pkg]
    return (
        f"id: fs_{pkg}_downloads\nnamespace: company.team\n\ntasks:\n"
        f"  - id: downloads\n    type: io.kestra.plugin.fs.{pkg}.Downloads\n"
        f"{connection(pkg, port, password, 4)}"
        '    from: "/in/"\n    interval: PT10S\n    action: MOVE\n    moveDirectory: "/archive/"\n'
    )


def trigger_examples(pkg: str) -> list[str]:
    _, port, password = PROTOCOLS[pkg]
    conn = connection(pkg, port, password, 4)
    head = "namespace: company.team\n\ntasks:\n"
    each_path = (
        "  - id: for_each_file\n    type: io.kestra.plugin.core.flow.ForEach\n"
        '    values: "{{ trigger.files }}"\n    tasks:\n      - id: return\n'
        "        type: io.kestra.plugin.core.debug.Return\n"
        "        format: \"{{ taskrun.value | jq('.path') }}\"\n"
    )
    delete = (
        "  - id: for_each_file\n    type: io.kestra.plugin.core.flow.ForEach\n"
        '    values: "{{ trigger.files }}"\n    tasks:\n      - id: return\n'
        "        type: io.kestra.plugin.core.debug.Return\n"
        "        format: \"{{ taskrun.value | jq('.name') }}\"\n"
        f"      - id: delete\n        type: io.kestra.plugin.fs.{pkg}.Delete\n"
        f"{connection(pkg, port, password, 8)}"
        "        uri: \"/in/{{ taskrun.value | jq('.name') }}\"\n"
    )
    trigger = f"\ntriggers:\n  - id: watch\n    type: io.kestra.plugin.fs.{pkg}.Trigger\n{conn}"
    quoted = trigger.replace(f"port: {port}", 'port: "' + port + '"')  # the third writes "21"
    return [
        f"id: {pkg}_trigger_flow\n{head}{each_path}{trigger}"
        '    from: "/in/"\n    interval: PT10S\n    action: MOVE\n    moveDirectory: "/archive/"\n',
        f"id: {pkg}_trigger_flow\n{head}{delete}{trigger}"
        '    from: "/in/"\n    interval: PT10S\n    action: NONE\n',
        f"id: ftp_wait_for_csv_in_mydir\n{head}{each_path.replace('for_each_file', 'each')}"
        f"{quoted}"
        '    from: "mydir/"\n    regExp: ".*.csv"\n    action: MOVE\n'
        '    moveDirectory: "archive/"\n    interval: PT10S\n',
    ]


@pytest.mark.parametrize("pkg", sorted(PROTOCOLS))
def test_podium_validate_accepts_kestras_examples(
    pkg: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every task's and the Trigger's @Example of the protocol validates; the triggers' use
    ForEach, which Kestra 2.0 replaced: podium says so, as a warning."""
    sources = [*task_examples(pkg).values(), *trigger_examples(pkg)]
    sources.append(downloads_example(pkg).replace("    interval: PT10S\n", ""))
    for i, source in enumerate(sources):
        (tmp_path / f"example_{i}.yaml").write_text(source, encoding="utf-8")
    assert cli(["validate", str(tmp_path)]) == 0, capsys.readouterr()
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == len(sources)
    warnings = err.splitlines()
    assert len(warnings) == 3
    assert all("type 'io.kestra.plugin.core.flow.ForEach' is deprecated" in w for w in warnings)


@pytest.mark.parametrize("pkg", sorted(PROTOCOLS))
def test_kestras_downloads_example_is_refused_for_its_interval_only(pkg: str) -> None:
    (found,) = problems(downloads_example(pkg), "downloads.yaml")
    assert found == "downloads.yaml:12:15: tasks[0].interval: unknown property 'interval'", found
