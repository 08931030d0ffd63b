"""What we learn from recorded behaviour and serve: recommendations and customer value models.

Filled in by the recommender issue; like tracking/, it never imports Flask.
"""
