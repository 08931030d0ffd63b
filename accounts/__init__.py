"""People who sign in and what is theirs: staff accounts, roles per site, sessions, the audit log.

It never imports Flask; it may import analytics/, recommender/ and tracking/ (DESIGN.md).
"""
