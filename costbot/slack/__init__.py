"""Slack: Block Kit builders, posting summaries, and the bolt app that takes decisions."""
