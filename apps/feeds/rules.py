"""Feeds chosen by rules an operator writes in the admin: words, hashtags, languages, media, authors,
replies, likes and reposts, a time window and an order.

The rules are plain JSON on the feed (`Feed.rules`), checked by `validate` and turned into one
ClickHouse query by `_query`. The query reads the truth views like the other kinds (`recent_posts`,
`post_like_counts`, `hidden_accounts`), and matches words with the search's token conditions
(`apps.search.search.match_sql`), so the `posts_text_tokens` skip index narrows the granules read
(skip indexes apply under FINAL in exact mode). Hashtags are not stored apart from the text (the
indexer keeps no facets), so `#tag` is matched in the text: the token index finds the candidates
and a pattern checks the `#`.

A feed may also keep only the accounts its viewer follows (`followed_only`): one definition, a list
per viewer, computed on the viewer's first request and kept as that viewer's own snapshot.
"""

import hashlib
import re

import orjson
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import connections

from apps.accounts.models import ActorLabel, Label
from apps.search.search import SearchError, match_sql, parse_query
from skyline.atproto import identity

MAX_TERMS = 50
MAX_AUTHORS = 1000
MAX_HOURS = 72  # recent_posts holds the last 72 hours
MEDIA = ("any", "with", "without")
ORDERS = ("newest", "hot")
DEFAULTS = {
    "words": [], "hashtags": [], "languages": [], "media": "any", "labels": [], "accounts": [],
    "exclude_replies": False, "exclude_words": [], "min_likes": 0, "min_reposts": 0, "hours": 24,
    "order": "newest", "followed_only": False,
}
_HASHTAG = re.compile(r"^\w{1,64}$")
_LANG = re.compile(r"^[a-zA-Z]{2,3}(-[a-zA-Z0-9]{1,8})*$")
_HOT_SCORE = "greatest(l.like_count - 1, 0) / pow(intDiv(dateDiff('second', p.created_at, now64(6)), 3600) + 2, %s)"


class SignInRequired(Exception):
    """A feed of followed accounts asked for without a viewer."""


def term(text):
    """A word or phrase as the token index sees it: lower-case tokens joined by single spaces."""
    try:
        words, phrases = parse_query('"' + text.replace('"', " ") + '"')
    except SearchError:
        raise ValidationError(f"{text[:40]!r} is too long for one word or phrase.") from None
    return " ".join(phrases[0] if phrases else words)


def split_terms(text):
    """The words and "quoted phrases" typed in one box, as terms."""
    found = [quoted or word for quoted, word in re.findall(r'"([^"]*)"|([^\s"]+)', text)]
    return list(dict.fromkeys(filter(None, map(term, found))))


def validate(rules):
    """The rules with their defaults, or ValidationError({rule: message}) saying what is wrong."""
    if not isinstance(rules, dict):
        raise ValidationError({"rules": "Rules are a JSON object."})
    unknown = sorted(set(rules) - set(DEFAULTS))
    if unknown:
        raise ValidationError({"rules": f"Unknown rule {unknown[0]!r} (allowed: {', '.join(DEFAULTS)})."})
    rules = {**DEFAULTS, **rules}
    errors = {}
    for name, check in _CHECKS.items():
        try:
            check(name, rules[name])
        except ValidationError as exc:
            errors[name] = exc.messages
    if errors:
        raise ValidationError(errors)
    return rules


def _strings(name, value, pattern, what, limit=MAX_TERMS):
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValidationError(f"{name} is a list of strings.")
    if len(value) > limit:
        raise ValidationError(f"{name}: at most {limit}.")
    for item in value:
        if not pattern(item):
            raise ValidationError(f"{what}: {item!r}")


def _check_terms(name, value):
    _strings(name, value, lambda item: item and term(item) == item,
             "A word or phrase is lower-case words separated by single spaces")


def _check_hashtags(name, value):
    _strings(name, value, lambda item: _HASHTAG.fullmatch(item) and item == item.lower(),
             "A hashtag is lower-case letters, digits and _ (without the #)")


def _check_languages(name, value):
    _strings(name, value, _LANG.fullmatch, "A language is a tag such as en or pt-BR")


def _check_labels(name, value):
    _strings(name, value, bool, "A label is named")
    missing = sorted(set(value) - set(Label.objects.filter(name__in=value).values_list("name", flat=True)))
    if missing:
        raise ValidationError(f"No label named {missing[0]!r}.")


def _check_accounts(name, value):
    _strings(name, value, identity.is_did, "An account is a DID such as did:plc:…", MAX_AUTHORS)


def resolve_accounts(accounts):
    """The accounts as DIDs (kept in their order, once each): a handle becomes its account's DID,
    through the index first, else the resolver; ValidationError naming each one that cannot."""
    from apps.accounts.profiles import account_dids

    if len(accounts) > MAX_AUTHORS:  # before any is looked up
        raise ValidationError(f"accounts: at most {MAX_AUTHORS}.")
    found, failed = account_dids(accounts)
    if failed:
        raise ValidationError([f"No account found for {reason}" for reason in failed.values()])
    return list(dict.fromkeys(found[account] for account in accounts))


def _choice(choices):
    def check(name, value):
        if value not in choices:
            raise ValidationError(f"{name} is one of {', '.join(choices)}.")
    return check


def _flag(name, value):
    if not isinstance(value, bool):
        raise ValidationError(f"{name} is true or false.")


def _whole(low, high):
    def check(name, value):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValidationError(f"{name} must be a whole number from {low} to {high}.")
    return check


_CHECKS = {
    "words": _check_terms, "hashtags": _check_hashtags, "languages": _check_languages, "media": _choice(MEDIA),
    "labels": _check_labels, "accounts": _check_accounts, "exclude_replies": _flag, "exclude_words": _check_terms,
    "min_likes": _whole(0, 1_000_000), "min_reposts": _whole(0, 1_000_000), "hours": _whole(1, MAX_HOURS),
    "order": _choice(ORDERS), "followed_only": _flag,
}


def digest(rules, parameters):
    """A short name for one definition, so the lists of an edited feed are never mixed up with the old ones."""
    return hashlib.sha256(orjson.dumps([rules, parameters], option=orjson.OPT_SORT_KEYS)).hexdigest()[:12]


def _text_sql(terms):
    """One condition true when the text has any of `terms` (words or phrases), with its parameters."""
    parts, params = [], []
    for text in terms:
        tokens = text.split(" ")
        conditions, values = match_sql(tokens, []) if len(tokens) == 1 else match_sql([], [tokens])
        parts.append("(" + " AND ".join(conditions) + ")")
        params += values
    return "(" + " OR ".join(parts) + ")", params


def _hashtag_sql(tags):
    """Any of `tags` written as #tag: the token index finds the candidates, a pattern checks the # and the end."""
    prefilter, params = _text_sql(tags)
    # Tags are word characters only (validated), so they are safe in the pattern as they are.
    pattern = "#(?:" + "|".join(tags) + r")(?:[^\pL\pN_]|$)"
    return f"({prefilter} AND match(lowerUTF8(text), %s))", params + [pattern]


def _authors(rules, ttl):
    """The DIDs the feed is limited to (label members and accounts), or None when it is not."""
    if not rules["labels"] and not rules["accounts"]:
        return None
    key = "feeds:rules-members:" + ",".join(sorted(rules["labels"]))
    members = cache.get(key) if rules["labels"] else frozenset()
    if members is None:
        members = frozenset(ActorLabel.objects.filter(label__name__in=rules["labels"]).values_list("did", flat=True))
        cache.set(key, members, ttl)
    return members | set(rules["accounts"])


def _query(rules, parameters, viewer):
    """(FROM ... WHERE ... sql, params) of the posts the rules choose, or None when none can match."""
    joins, join_params = [], []
    conditions = [
        "p.created_at > now64(6) - toIntervalHour(%s)",
        "p.created_at <= now64(6)",  # a post dated ahead (clients set createdAt) waits for its time
        "p.did NOT IN (SELECT did FROM hidden_accounts)",
    ]
    params = [rules["hours"]]
    if rules["min_likes"] or rules["order"] == "hot":
        joins.append("LEFT JOIN post_like_counts(hours = %s) AS l ON l.subject_uri = p.uri")
        join_params.append(rules["hours"])
    if rules["min_reposts"]:
        joins.append(
            "LEFT JOIN (SELECT subject_uri, count() AS repost_count FROM reposts FINAL"
            " WHERE deleted = 0 AND subject_collection = 'app.bsky.feed.post'"
            " AND created_at > now64(6) - toIntervalHour(%s) GROUP BY subject_uri) AS r ON r.subject_uri = p.uri"
        )
        join_params.append(rules["hours"])
    if rules["words"] or rules["hashtags"]:
        chosen = [_text_sql(rules["words"])] if rules["words"] else []
        chosen += [_hashtag_sql(rules["hashtags"])] if rules["hashtags"] else []
        conditions.append("(" + " OR ".join(sql for sql, _ in chosen) + ")")
        params += [value for _, values in chosen for value in values]
    if rules["exclude_words"]:
        sql, values = _text_sql(rules["exclude_words"])
        conditions.append(f"NOT {sql}")
        params += values
    if rules["languages"]:
        conditions.append("hasAny(p.langs, %s)")
        params.append(rules["languages"])
    if rules["media"] != "any":
        conditions.append("p.has_embedded_media = %s")
        params.append(int(rules["media"] == "with"))
    if rules["exclude_replies"]:
        conditions.append("p.parent_uri = '' AND p.root_uri = ''")
    authors = _authors(rules, parameters["refresh_seconds"])
    if authors is not None:
        if not authors:
            return None
        conditions.append("p.did IN %s")
        params.append(tuple(sorted(authors)))
    if viewer is not None:
        conditions.append("p.did IN (SELECT target_did FROM follows FINAL WHERE actor_did = %s AND deleted = 0)")
        params.append(viewer)
    if rules["min_likes"]:
        conditions.append("l.like_count >= %s")
        params.append(rules["min_likes"])
    if rules["min_reposts"]:
        conditions.append("r.repost_count >= %s")
        params.append(rules["min_reposts"])
    sql = "FROM recent_posts AS p " + " ".join(joins) + " WHERE " + "\n  AND ".join(conditions)
    return sql, join_params + params


def statement(rules, parameters, viewer=None, limit=None):
    """(sql, params) of the uris the (validated) rules choose, best first, or None when none can match."""
    query = _query(rules, parameters, viewer)
    if query is None:
        return None
    sql, params = query
    if rules["order"] == "hot":
        order, params = f"{_HOT_SCORE} DESC, p.created_at DESC, p.uri DESC", params + [parameters["gravity"]]
    else:
        order = "p.created_at DESC, p.uri DESC"
    return f"SELECT p.uri {sql}\nORDER BY {order}\nLIMIT %s", params + [limit or parameters["max_posts"]]


def matching(rules, parameters, viewer=None, limit=None):
    """[{"post": uri}] chosen by the (validated) rules, best first, at most `limit` or max_posts."""
    found = statement(rules, parameters, viewer, limit)
    if found is None:
        return []
    with connections["clickhouse"].cursor() as cursor:
        cursor.execute(*found)
        return [{"post": uri} for (uri,) in cursor.fetchall()]


def count_matching(rules, parameters):
    """How many posts the rules choose now (before max_posts cuts the list)."""
    query = _query(rules, parameters, None)
    if query is None:
        return 0
    with connections["clickhouse"].cursor() as cursor:
        cursor.execute(f"SELECT count() {query[0]}", query[1])
        return cursor.fetchone()[0]


def compute(spec):
    """The rules feed `spec`: the list its viewer sees (everyone's, when the spec names no viewer)."""
    return matching(validate(spec.rules or {}), spec.parameters, spec.viewer)
