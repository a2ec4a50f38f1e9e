"""Feeds chosen by rules: the `rules` kind and the JSON rules it reads."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('feeds', '0003_feed_listed'),
    ]

    operations = [
        migrations.AddField(
            model_name='feed',
            name='rules',
            field=models.JSONField(blank=True, default=dict, help_text='Rules feeds: the rules that choose its posts'),
        ),
        migrations.AlterField(
            model_name='feed',
            name='kind',
            field=models.CharField(choices=[('hot', 'Hot (likes decayed by age)'), ('top', 'Top (most liked in a window)'), ('label', 'Community (authors holding a label)'), ('static', 'Static (pinned posts)'), ('rules', 'Rules (words, hashtags, languages, authors…)')], max_length=16),
        ),
    ]
