"""A realistic, deterministic Jetstream v1 event stream, for the tests and the ingest benchmark.

The mix (MIX) is an estimate of the network's shares, not a measurement kept in this repository:
about 55 % likes, 10 % posts, then reposts, follows, blocks, other lexicons, deletes and updates of
earlier records, identity and account events. Activity and popularity are heavy-tailed (a few accounts do much of the acting and a few
posts get most of the likes), attention goes to what is recent (so a stream spread over days
trends hour by hour, as the feeds expect), posts have replies, languages and media, and `time_us`
is not monotonic. The same seed always gives the same stream; every DID is made up.
"""

import datetime
import random
from bisect import bisect_left
from itertools import accumulate

import orjson

from skyline.atproto.syntax import BLOCK, FOLLOW, LIKE, POST, REPOST, tid, utc_text

_BASE32 = "abcdefghijklmnopqrstuvwxyz234567"
_WORDS = (
    "the a of to and in is it you that for on with this was are be at have not but what all were we when "
    "your can said there use an each which she do how their if will up other about out many then them these "
    "so some her would make like him into time has look two more write go see number no way could people my "
    "than first water been call who oil its now find long down day did get come made may part sky bluesky "
    "feed post morning coffee cat dog music game art photo news today tonight weekend city rain sun"
).split()
_LANGS = (["en"], ["en"], ["en"], ["ja"], ["pt"], ["de"], ["es"], ["ko"], [], ["en", "es"])
_OTHER_COLLECTIONS = ("app.bsky.graph.listitem", "app.bsky.feed.threadgate", "fm.teal.alpha.feed.play")
_INACTIVE_STATUSES = ("deleted", "takendown", "deactivated", "suspended")

# (share of events, kind); the shares add up to 1.
MIX = (
    (0.55, "like"),
    (0.10, "post"),
    (0.08, "repost"),
    (0.12, "follow"),
    (0.02, "block"),
    (0.04, "other"),
    (0.05, "delete"),
    (0.015, "update"),
    (0.015, "identity"),
    (0.01, "account"),
)



class EventGenerator:
    def __init__(self, seed=0, accounts=20_000, start_time_us=1_783_000_000_000_000, rate=350.0,
                 jitter_seconds=0.01, attention_hours=0.5):
        """`rate` events a second from `start_time_us`, each time_us off by up to ~`jitter_seconds`;
        likes, reposts and replies go to posts made or liked within the last `attention_hours`."""
        self.rng = random.Random(seed)
        self.start_time_us = start_time_us
        self.step_us = 1_000_000 / rate
        self.jitter_us = jitter_seconds * 1_000_000 / 3
        self.dids = ["did:plc:" + "".join(self.rng.choices(_BASE32, k=24)) for _ in range(accounts)]
        # Zipf-like activity and follow-popularity: account i acts (and is followed) ~ 1/(i+1).
        self._account_weights = list(accumulate(1 / (rank + 1) for rank in range(accounts)))
        self._kinds = [kind for _, kind in MIX]
        self._kind_weights = list(accumulate(share for share, _ in MIX))
        self.posts = []  # (did, rkey, uri, root_uri)
        self._post_times = []  # time_us of each post, in the order of self.posts
        self._attention = []  # (time_us, post index), once per like or reply: preferential attachment
        self._attention_us = attention_hours * 3_600_000_000
        self._now = start_time_us
        self.records = []  # (did, collection, rkey) of live records, for deletes
        self._seq = 31_000_000_000
        self._clock = 0

    def lines(self, count):
        """`count` events as JSON lines (bytes ending in a newline)."""
        for event in self.events(count):
            yield orjson.dumps(event) + b"\n"

    def events(self, count):
        for index in range(count):
            time_us = int(self.start_time_us + index * self.step_us + self.rng.gauss(0, self.jitter_us))
            self._now = time_us
            kind = self._kinds[bisect_left(self._kind_weights, self.rng.random() * self._kind_weights[-1])]
            yield getattr(self, f"_{kind}")(self._actor(), time_us)

    def _actor(self):
        return self.dids[bisect_left(self._account_weights, self.rng.random() * self._account_weights[-1])]

    def _rkey(self, time_us):
        self._clock += 1
        return tid(time_us, self._clock)

    def _cid(self):
        return "bafyrei" + "".join(self.rng.choices(_BASE32, k=52))

    def _created_at(self, time_us):
        lag = self.rng.uniform(0, 2_000_000)
        if self.rng.random() < 0.005:
            lag = self.rng.uniform(0, 400 * 86_400_000_000)  # backdated, as imports are
        moment = datetime.datetime.fromtimestamp((time_us - lag) / 1_000_000, datetime.timezone.utc)
        return utc_text(moment, "milliseconds")

    def _commit(self, did, time_us, operation, collection, rkey, record=None):
        commit = {"rev": self._rkey(time_us), "operation": operation, "collection": collection, "rkey": rkey}
        if record is not None:
            commit["record"] = record
            commit["cid"] = self._cid()
        return {"did": did, "time_us": time_us, "kind": "commit", "commit": commit}

    def _created(self, did, time_us, collection, record):
        rkey = self._rkey(time_us)
        self.records.append((did, collection, rkey))
        record = {"$type": collection, "createdAt": self._created_at(time_us), **record}
        return self._commit(did, time_us, "create", collection, rkey, record)

    def _popular_post(self):
        """A recent post, chosen mostly in proportion to the attention it has had lately."""
        since = self._now - self._attention_us
        recent_attention = bisect_left(self._attention, (since,))
        if recent_attention > len(self._attention) // 2:  # keep only what can still be chosen
            del self._attention[:recent_attention]
            recent_attention = 0
        # A recent post (any post when none is recent; the list is in stream order).
        first_recent = min(bisect_left(self._post_times, since), len(self.posts) - 1)
        if recent_attention < len(self._attention) and self.rng.random() < 0.8:
            index = self._attention[self.rng.randrange(recent_attention, len(self._attention))][1]
        else:
            index = self.rng.randrange(first_recent, len(self.posts))
        if index >= first_recent:  # an old post gets a like now and then, but does not trend again
            self._attention.append((self._now, index))
        return self.posts[index]

    def _strong_ref(self, post):
        return {"cid": self._cid(), "uri": post[2]}

    def _blob(self, mime_type):
        return {"$type": "blob", "ref": {"$link": "bafkrei" + "".join(self.rng.choices(_BASE32, k=52))},
                "mimeType": mime_type, "size": self.rng.randrange(10_000, 900_000)}

    def _embed(self):
        roll = self.rng.random()
        images = {"$type": "app.bsky.embed.images",
                  "images": [{"alt": "", "image": self._blob("image/jpeg")} for _ in range(self.rng.randint(1, 4))]}
        if roll < 0.15:
            return images
        if roll < 0.19:
            return {"$type": "app.bsky.embed.video", "video": self._blob("video/mp4")}
        if roll < 0.27:
            return {"$type": "app.bsky.embed.external",
                    "external": {"uri": "https://example.com/" + self.rng.choice(_WORDS), "title": "A link",
                                 "description": "", "thumb": self._blob("image/jpeg")}}
        if self.posts and roll < 0.31:
            return {"$type": "app.bsky.embed.record", "record": self._strong_ref(self._popular_post())}
        if self.posts and roll < 0.34:
            return {"$type": "app.bsky.embed.recordWithMedia", "media": images,
                    "record": {"record": self._strong_ref(self._popular_post())}}
        return None

    def _post_record(self):
        text = " ".join(self.rng.choices(_WORDS, k=self.rng.randint(1, 40)))
        record = {"text": text, "langs": self.rng.choice(_LANGS)}
        if not record["langs"]:
            del record["langs"]
        embed = self._embed()
        if embed is not None:
            record["embed"] = embed
        return record

    def _post(self, did, time_us):
        record = self._post_record()
        root_uri = ""
        if self.posts and self.rng.random() < 0.3:
            parent = self._popular_post()
            root = parent[3] or parent[2]
            root_uri = root
            record["reply"] = {"parent": self._strong_ref(parent), "root": {"cid": self._cid(), "uri": root}}
        event = self._created(did, time_us, POST, record)
        rkey = event["commit"]["rkey"]
        self.posts.append((did, rkey, f"at://{did}/{POST}/{rkey}", root_uri))
        self._post_times.append(time_us)
        return event

    def _like(self, did, time_us):
        if not self.posts:
            return self._post(did, time_us)
        return self._created(did, time_us, LIKE, {"subject": self._strong_ref(self._popular_post())})

    def _repost(self, did, time_us):
        if not self.posts:
            return self._post(did, time_us)
        return self._created(did, time_us, REPOST, {"subject": self._strong_ref(self._popular_post())})

    def _follow(self, did, time_us):
        return self._created(did, time_us, FOLLOW, {"subject": self._actor()})

    def _block(self, did, time_us):
        return self._created(did, time_us, BLOCK, {"subject": self._actor()})

    def _other(self, did, time_us):
        collection = self.rng.choice(_OTHER_COLLECTIONS)
        if collection == "app.bsky.graph.listitem":
            record = {"list": f"at://{did}/app.bsky.graph.list/{self._rkey(time_us)}", "subject": self._actor()}
        elif collection == "app.bsky.feed.threadgate" and self.posts:
            record = {"post": self.posts[-1][2], "allow": [{"$type": "app.bsky.feed.threadgate#followingRule"}]}
        else:
            record = {"trackName": " ".join(self.rng.choices(_WORDS, k=3)), "duration": self.rng.randrange(90, 400)}
        return self._created(did, time_us, collection, record)

    def _delete(self, did, time_us):
        if not self.records:
            return self._like(did, time_us)
        index = self.rng.randrange(len(self.records))
        self.records[index], self.records[-1] = self.records[-1], self.records[index]
        owner, collection, rkey = self.records.pop()
        return self._commit(owner, time_us, "delete", collection, rkey)

    def _update(self, did, time_us):
        if self.posts and self.rng.random() < 0.5:
            owner, rkey, _, _ = self.rng.choice(self.posts)
            record = {"$type": POST, "createdAt": self._created_at(time_us), **self._post_record()}
            return self._commit(owner, time_us, "update", POST, rkey, record)
        record = {"$type": "app.bsky.actor.profile", "displayName": " ".join(self.rng.choices(_WORDS, k=2)),
                  "description": " ".join(self.rng.choices(_WORDS, k=8)), "avatar": self._blob("image/jpeg")}
        return self._commit(did, time_us, "update", "app.bsky.actor.profile", "self", record)

    def _moment(self, time_us):
        return datetime.datetime.fromtimestamp(time_us / 1_000_000, datetime.timezone.utc).isoformat()

    def _identity(self, did, time_us):
        self._seq += 1
        identity = {"did": did, "seq": self._seq, "time": self._moment(time_us)}
        if self.rng.random() < 0.5:
            identity["handle"] = f"user-{did[8:16]}.bsky.social"
        return {"did": did, "time_us": time_us, "kind": "identity", "identity": identity}

    def _account(self, did, time_us):
        self._seq += 1
        account = {"active": True, "did": did, "seq": self._seq, "time": self._moment(time_us)}
        if self.rng.random() < 0.3:
            account["active"] = False
            account["status"] = self.rng.choice(_INACTIVE_STATUSES)
        return {"did": did, "time_us": time_us, "kind": "account", "account": account}
