"""Journals that survive: a write killed between its renames is finished by the next command
in a project moved or copied since, never in another folder, whoever reuses the dead pid; runs
left RUNNING are closed by the next holder of the project lock, whatever host made them."""

from __future__ import annotations

import json
import shutil
import socket

import mlflow
import pytest

from pipeline import lock, outputs, processes, tracking
from pipeline.errors import CvmError
from tests.pipeline.test_outputs import _contents, _killed_writer, _old


@pytest.fixture
def killed(tmp_path):
    """A project whose write of ``a.txt`` and ``d/`` was killed between its two renames."""
    project = tmp_path / "project"
    project.mkdir()
    _old(project)
    _killed_writer(project, "outputs:renamed:1")
    assert _contents(project) == ("new", "old")
    (journal,) = (project / "state").glob("commit*.json")
    return project, journal


def test_a_journal_names_its_files_relative_to_the_project(killed):
    _, journal = killed
    for move in json.loads(journal.read_text())["moves"]:
        assert all(not path.startswith("/") and path.startswith("../") for path in move)


def test_a_project_moved_after_a_kill_finishes_its_own_write(killed, tmp_path):
    project, _ = killed
    moved = tmp_path / "moved"
    project.rename(moved)
    assert outputs.recover(moved / "state", [moved])
    assert _contents(moved) == ("new", "new")
    assert list((moved / "state").iterdir()) == []


def test_a_copy_finishes_its_own_write_and_leaves_the_original_alone(killed, tmp_path):
    project, journal = killed
    copy = tmp_path / "copy"
    shutil.copytree(project, copy, symlinks=True)
    outputs.recover(copy / "state", [copy])
    assert _contents(copy) == ("new", "new")
    assert _contents(project) == ("new", "old") and journal.is_file()  # untouched


def test_a_journal_naming_files_outside_the_project_is_refused(killed, tmp_path):
    project, journal = killed
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("kept")
    moves = [[str(elsewhere / ".keep.tmp"), str(elsewhere / "keep.txt")]]
    journal.write_text(json.dumps({"moves": moves}))  # as an absolute journal of another project
    with pytest.raises(CvmError, match="not among this project's outputs") as refused:
        outputs.recover(project / "state", [project])
    assert str(journal) in str(refused.value)
    assert (elsewhere / "keep.txt").read_text() == "kept" and journal.is_file()


def test_a_reused_pid_does_not_keep_a_journal_unfinished(killed):
    """The journal's pid now names a running process (this one) started at another time."""
    project, journal = killed
    me = processes.identity()
    reused = journal.with_name(f"commit.cvm-{me.split('-')[0]}-1-1.json")
    journal.rename(reused)
    assert processes.running(me) and not processes.running(f"{me.split('-')[0]}-1")
    assert outputs.recover(project / "state", [project]) == [f"completed {reused.name}"]
    assert _contents(project) == ("new", "new")


def test_a_journal_of_a_running_writer_is_left_to_it(killed):
    project, journal = killed
    mine = journal.with_name(f"commit.cvm-{processes.identity()}-1.json")
    journal.rename(mine)
    done = outputs.recover(project / "state", [project])
    assert not [step for step in done if step.startswith("completed")]
    assert mine.is_file() and _contents(project) == ("new", "old")


def _running_run(uri: str, **tags: str) -> str:
    client = mlflow.MlflowClient(uri)
    experiment = client.create_experiment("cvm")
    return client.create_run(experiment, tags=tags).info.run_id


def test_a_run_left_by_another_host_is_closed_by_the_next_lock_holder(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    other = {"cvm.host": "another-host", "cvm.pid": "1", "cvm.process": "1-1"}
    killed = _running_run(uri, **other, **{"cvm.lock": "an-earlier-holder"})
    unowned = mlflow.MlflowClient(uri).create_run("1").info.run_id  # no owner: never closed
    client = mlflow.MlflowClient(uri)
    assert tracking.close_orphans(client, "1") == []  # without the lock, another host's run
    with lock.exclusive(tmp_path / "lock", "test") as held:
        mine = client.create_run("1", tags=tracking.owner_tags()).info.run_id
        assert tracking.owner_tags()["cvm.lock"] == held["token"]
        assert tracking.close_orphans(client, "1") == [killed]
    assert client.get_run(killed).info.status == "KILLED"
    assert {client.get_run(r).info.status for r in (unowned, mine)} == {"RUNNING"}


def test_a_run_of_a_dead_process_of_this_host_is_closed_without_the_lock(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    me = processes.identity()
    host = socket.gethostname()
    dead = _running_run(
        uri,
        **{"cvm.host": host, "cvm.pid": me.split("-")[0]},
        **{
            "cvm.process": f"{me.split('-')[0]}-1"  # this pid, another start: a reused pid
        },
    )
    client = mlflow.MlflowClient(uri)
    alive = client.create_run("1", tags=tracking.owner_tags()).info.run_id
    assert tracking.close_orphans(client, "1") == [dead]
    assert client.get_run(alive).info.status == "RUNNING"


def test_a_journal_kept_in_a_subfolder_names_the_project_s_files_relative_to_it(
    tmp_path, monkeypatch
):
    """``paths.state`` inside a subfolder: the outputs beside it still move with the project."""
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    monkeypatch.chdir(project)
    state = project / "artifacts" / "state"
    with outputs.atomic_outputs(project / "data" / "a.txt", state=state) as (a,):
        a.write_text("new")
        moved = outputs.stored(project / "data" / "a.txt", state)
    assert moved == "../../data/a.txt"
    assert outputs.located(moved, state) == project / "data" / "a.txt"
