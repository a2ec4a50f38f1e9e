"""Read-side views the feeds use: the truth (FINAL, tombstones applied), never raw versions."""

from django.db import migrations

RECENT_POSTS = """
CREATE VIEW IF NOT EXISTS recent_posts AS
SELECT did, rkey, uri, created_at, indexed_at, text, langs, has_embedded_media, parent_uri, root_uri, time_us
FROM posts FINAL
WHERE deleted = 0 AND created_at > now64(6) - INTERVAL 72 HOUR
"""

# Likes of each post created within the last {hours} hours; undone likes are gone under FINAL.
POST_LIKE_COUNTS = """
CREATE VIEW IF NOT EXISTS post_like_counts AS
SELECT subject_uri, count() AS like_count
FROM likes FINAL
WHERE deleted = 0
  AND subject_collection = 'app.bsky.feed.post'
  AND created_at > now64(6) - toIntervalHour({hours:UInt32})
GROUP BY subject_uri
"""


class Migration(migrations.Migration):
    dependencies = [("indexer", "0001_initial")]

    operations = [
        migrations.RunSQL(RECENT_POSTS, "DROP VIEW IF EXISTS recent_posts", hints={"database": "clickhouse"}),
        migrations.RunSQL(
            POST_LIKE_COUNTS, "DROP VIEW IF EXISTS post_like_counts", hints={"database": "clickhouse"}
        ),
    ]
