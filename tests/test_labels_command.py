"""`manage.py labels add|remove|list`: community membership from scripts."""

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.accounts.models import ActorLabel, Label

pytestmark = pytest.mark.django_db

ALICE = "did:plc:aliceaaaaaaaaaaaaaaaaaaa"
BOB = "did:plc:bobbbbbbbbbbbbbbbbbbbbbb"


def test_add_list_and_remove_by_did_and_handle(plc, capsys):
    plc.add(ALICE, handle="alice.test")
    plc.add(BOB, handle="bob.test")
    mpls = Label.objects.create(name="mpls")
    call_command("labels", "add", "--label", "mpls", "alice.test", BOB)
    assert capsys.readouterr().out == f"added: {ALICE} alice.test\nadded: {BOB} bob.test\n"
    call_command("labels", "add", "--label", "a-mpls", ALICE)
    assert capsys.readouterr().out == f"already a member: {ALICE} alice.test\n"
    assert mpls.members.get(did=ALICE).added_by == "manage.py labels"

    call_command("labels", "list", "--label", "mpls")
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[:2] for line in lines] == [[ALICE, "alice.test"], [BOB, "bob.test"]]

    call_command("labels", "remove", "--label", "mpls", "bob.test", ALICE, "did:plc:neverwasamemberxxxxxxxxx")
    assert capsys.readouterr().out == (
        f"removed: bob.test\nremoved: {ALICE}\nnot a member: did:plc:neverwasamemberxxxxxxxxx\n"
    )
    assert not ActorLabel.objects.exists()


def test_failures_are_named_the_rest_applied_and_the_exit_is_an_error(plc, capsys):
    plc.add(ALICE, handle="alice.test")
    Label.objects.create(name="mpls")
    with pytest.raises(CommandError, match="1 of 2 account"):
        call_command("labels", "add", "--label", "mpls", "nobody.test", "alice.test")
    captured = capsys.readouterr()
    assert "nobody.test: the handle nobody.test does not resolve" in captured.err
    assert captured.out == f"added: {ALICE} alice.test\n"


def test_an_unknown_label_is_refused_unless_created(plc, capsys):
    plc.add(ALICE, handle="alice.test")
    with pytest.raises(CommandError, match="no label named 'tqsp'"):
        call_command("labels", "add", "--label", "tqsp", ALICE)
    call_command("labels", "add", "--label", "tqsp", "--create", ALICE)
    assert capsys.readouterr().out == f"created label tqsp\nadded: {ALICE} alice.test\n"
    with pytest.raises(CommandError, match="the following arguments are required: accounts"):
        call_command("labels", "remove", "--label", "tqsp")


def test_a_label_created_from_the_command_line_must_be_a_valid_name(plc):
    with pytest.raises(CommandError, match=r"^--label 'Foo Bar': Enter a valid “slug”"):
        call_command("labels", "add", "--label", "Foo Bar", "--create", ALICE)
    assert not Label.objects.exists()
