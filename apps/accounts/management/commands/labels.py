"""`manage.py labels add|remove|list --label L [DID or handle ...]`: community membership from scripts."""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from apps.accounts.models import Label, MembershipError


class Command(BaseCommand):
    help = "Add accounts to a label, remove them, or list its members (DIDs or handles)."

    def add_arguments(self, parser):
        actions = parser.add_subparsers(dest="action", required=True)
        for action, helptext in [("add", "give the label to accounts"), ("remove", "take the label from accounts"),
                                 ("list", "list the label's members: DID, handle, when added")]:
            command = actions.add_parser(action, help=helptext)
            command.add_argument("--label", required=True, help="the label (e.g. mpls) or a feed alias (a-mpls)")
            if action == "add":
                command.add_argument("--create", action="store_true", help="create the label if it does not exist")
            if action != "list":
                command.add_argument("accounts", nargs="+", help="DIDs or handles")

    def handle(self, *args, action, label, create=False, accounts=(), **options):
        found = Label.objects.for_feed_name(label)
        if found is None and create:
            found = Label(name=label)
            try:
                found.full_clean()
            except ValidationError as exc:
                raise CommandError(f"--label {label!r}: {'; '.join(exc.messages)}") from None
            found.save()
            self.stdout.write(f"created label {label}")
        if found is None:
            raise CommandError(f"no label named {label!r} (create it in the admin, or use add --create)")
        if action == "list":
            for member in found.members.order_by("did"):
                self.stdout.write(f"{member.did}\t{member.handle}\t{member.created_at:%Y-%m-%dT%H:%M:%SZ}")
            return
        failed = 0
        for account in accounts:
            try:
                self.stdout.write(self._apply(found, action, account))
            except MembershipError as exc:
                failed += 1
                self.stderr.write(str(exc))
        if failed:
            raise CommandError(f"{failed} of {len(accounts)} account(s) failed")

    def _apply(self, label, action, account):
        if action == "add":
            member, created = label.add(account, added_by="manage.py labels")
            state = "added" if created else "already a member"
            return f"{state}: {member.did} {member.handle}".rstrip()
        removed = label.remove(account)
        return f"{'removed' if removed else 'not a member'}: {account}"
