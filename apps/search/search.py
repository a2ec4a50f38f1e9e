"""Post search: words and "quoted phrases" over indexed posts, newest first, with a keyset cursor.

Words match whole tokens, case-insensitively, as ClickHouse splits text (on ASCII punctuation and
spaces), through the `posts_text_tokens` bloom-filter index. A phrase matches its words in that
order. Words in scripts written without spaces (Chinese, Japanese, Thai) match as substrings,
which the index cannot narrow.

The index is used on the raw table (no FINAL, which would turn skip indexes off or make them
unsafe), so candidates are then checked against the latest version of each post: a deleted or
edited-away post never shows. Posts of accounts in `hidden_accounts` (deleted, taken down,
deactivated or suspended) are left out, as the feeds leave them out, until the account is active again.
"""

import datetime
import re

from django.db import connections

from skyline.atproto import identity
from skyline.atproto.syntax import utc_text

MAX_QUERY_CHARS = 512
MAX_TERMS = 16
MAX_LIMIT = 100
_SCAN_ROUNDS = 5
_SEPARATORS = re.compile(r"[\x00-\x2f\x3a-\x40\x5b-\x60\x7b-\x7f]+")
_UNSPACED = re.compile(r"[\u0e00-\u0e7f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LANG = re.compile(r"^[a-zA-Z]{2,3}(-[a-zA-Z0-9]{1,8})*$")
_CURSOR = re.compile(r"^(\d{1,19})::(at://[\x21-\x7e]{1,1000})$")
COLUMNS = "did, rkey, uri, text, langs, created_at, has_embedded_media, parent_uri, root_uri"


class SearchError(Exception):
    """Search parameters that cannot be used; the message says which and why."""


def _tokens(text):
    return [token for token in _SEPARATORS.split(text.lower()) if token]


def parse_query(q):
    """(words, phrases) of a query: phrases in double quotes, each a list of tokens."""
    if len(q) > MAX_QUERY_CHARS:
        raise SearchError(f"q must be at most {MAX_QUERY_CHARS} characters")
    phrases = []
    for quoted in re.findall(r'"([^"]*)"', q):
        tokens = _tokens(quoted)
        if len(tokens) > 1:
            phrases.append(tokens)
        elif tokens:
            q += " " + tokens[0]
    words = list(dict.fromkeys(_tokens(re.sub(r'"[^"]*"', " ", q).replace('"', " "))))
    if len(words) + sum(map(len, phrases)) > MAX_TERMS:
        raise SearchError(f"q may have at most {MAX_TERMS} words")
    return words, phrases


def match_sql(words, phrases):
    """SQL conditions and parameters for the words and phrases."""
    conditions, params = [], []
    for word in words + [token for phrase in phrases for token in phrase]:
        if _UNSPACED.search(word):
            conditions.append("positionUTF8(lowerUTF8(text), %s) > 0")
        else:
            conditions.append("hasToken(lowerUTF8(text), %s)")
        params.append(word)
    for phrase in phrases:
        conditions.append(
            "position(concat(' ', arrayStringConcat(splitByNonAlpha(lowerUTF8(text)), ' '), ' '), %s) > 0"
        )
        params.append(" " + " ".join(phrase) + " ")
    return conditions, params


def _parse_time(value, name):
    try:
        parsed = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise SearchError(
            f"{name} must be an ISO 8601 date or time, e.g. 2024-05-01 or 2024-05-01T12:00:00Z"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.timezone.utc)


def _author_did(author):
    author = author.strip().lstrip("@")
    if identity.is_did(author):
        return author
    if not identity.is_handle(author):
        raise SearchError("author must be a DID or a handle")
    try:
        return identity.resolve_handle(author)
    except identity.IdentityError as exc:
        raise SearchError(f"author {author} could not be resolved: {exc}") from None


def _cursor_sql(cursor):
    found = _CURSOR.fullmatch(cursor)
    if not found:
        raise SearchError("cursor is not one this API gave out")
    micros, uri = int(found.group(1)), found.group(2)
    try:
        at = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc) + datetime.timedelta(microseconds=micros)
    except OverflowError:
        raise SearchError("cursor is not one this API gave out") from None
    return "(created_at, uri) < (%s, %s)", [at, uri]


def _cursor_of(created_at, uri):
    epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
    delta = created_at - epoch
    return f"{(delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds}::{uri}"


def search_posts(q="", author="", lang="", since="", until="", limit=25, cursor=""):
    """{"posts": [...], "cursor"?: str}: posts matching all the words and phrases, newest first."""
    words, phrases = parse_query(q)
    if not words and not phrases and not author:
        raise SearchError("q must have a word to search for (or give author)")
    if not 1 <= limit <= MAX_LIMIT:
        raise SearchError(f"limit must be between 1 and {MAX_LIMIT}")
    conditions, params = match_sql(words, phrases)
    if author:
        conditions.append("did = %s")
        params.append(_author_did(author))
    if lang:
        if not _LANG.fullmatch(lang):
            raise SearchError("lang must be a language tag such as en or pt-BR")
        conditions.append("has(langs, %s)")
        params.append(lang)
    if since:
        conditions.append("created_at >= %s")
        params.append(_parse_time(since, "since"))
    if until:
        conditions.append("created_at < %s")
        params.append(_parse_time(until, "until"))
    position = _cursor_sql(cursor) if cursor else None

    found = []
    scan = max(2 * (limit + 1), 50)
    for _ in range(_SCAN_ROUNDS):
        where, where_params = list(conditions), list(params)
        if position:
            where.append(position[0])
            where_params += position[1]
        candidates = _candidates(where, where_params, scan)
        found += _latest(candidates, conditions, params)
        if len(found) > limit or len(candidates) < scan:
            break
        last = candidates[-1]
        position = ("(created_at, uri) < (%s, %s)", [last[2], last[3]])

    page = found[:limit]
    body = {"posts": [_post(row) for row in page]}
    if len(found) > limit:
        body["cursor"] = _cursor_of(page[-1][5], page[-1][2])
    elif position and len(candidates) == scan:
        # Scanned as far as one request may without filling the page: go on from there next time.
        body["cursor"] = _cursor_of(position[1][0], position[1][1])
    return body


def _candidates(where, params, scan):
    """(did, rkey, created_at, uri) of post versions matching, newest first (any version, index-assisted),
    of accounts that are not hidden."""
    sql = (
        "SELECT did, rkey, created_at, uri FROM posts "
        "WHERE deleted = 0 AND did NOT IN (SELECT did FROM hidden_accounts) AND "
        + " AND ".join(where)
        + " ORDER BY created_at DESC, uri DESC LIMIT 1 BY did, rkey LIMIT %s"
    )
    with connections["clickhouse"].cursor() as cursor:
        cursor.execute(sql, params + [scan])
        return cursor.fetchall()


def _latest(candidates, conditions, params):
    """The candidates whose latest version still exists and still matches, newest first."""
    if not candidates:
        return []
    keys = [(did, rkey) for did, rkey, _, _ in candidates]
    sql = (
        f"SELECT {COLUMNS} FROM posts FINAL WHERE (did, rkey) IN %s AND deleted = 0 AND "
        + " AND ".join(conditions)
        + " ORDER BY created_at DESC, uri DESC"
    )
    with connections["clickhouse"].cursor() as cursor:
        cursor.execute(sql, [tuple(keys)] + params)
        return cursor.fetchall()


def _post(row):
    did, rkey, uri, text, langs, created_at, has_media, parent_uri, root_uri = row
    return {
        "uri": uri,
        "did": did,
        "rkey": rkey,
        "text": text,
        "langs": list(langs),
        "created_at": utc_text(created_at),
        "has_embedded_media": bool(has_media),
        "parent_uri": parent_uri,
        "root_uri": root_uri,
    }
