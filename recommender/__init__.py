"""What we learn from recorded behaviour and serve: "customers like you bought".

Like tracking/, it never imports Flask; it imports tracking/ only.
"""
