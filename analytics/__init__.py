"""What marketers read: daily rollups, recommendation performance and lift, sales and funnel.

It never imports Flask; it imports tracking/ only (DESIGN.md, "Packages").
"""
